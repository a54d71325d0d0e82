// Locks under contention (issue 14): a stale lock (dead owner, empty file, too old) is taken over
// by exactly one of many racers, and no update is lost. Real processes, a real filesystem.
import { execa } from 'execa';
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { staleReason } from '../src/util/fs.js';
import { runCli } from './helpers/cli.js';
import { writeReports } from './helpers/rollout-fixtures.js';

const fsModule = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'src', 'util', 'fs.js')).href;
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'embedctl-lock-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A pid that certainly belonged to a process of this host and is now gone. */
async function deadPid(): Promise<number> {
  const p = execa(process.execPath, ['-e', '0']);
  const pid = p.pid!;
  await p;
  return pid;
}

// One worker: take the lock (waiting for live holders), check nobody else is inside, bump the
// counter with a read-modify-write slow enough to lose updates if two were inside at once.
const WORKER = `
import { acquireLock } from ${JSON.stringify(fsModule)};
import { openSync, closeSync, rmSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
const [dir] = process.argv.slice(1);
const lock = await acquireLock(dir + '/counter', { what: 'test', command: 'worker ' + process.pid, waitMs: 60000 });
try {
  try { closeSync(openSync(dir + '/inside', 'wx')); } catch { appendFileSync(dir + '/overlaps', process.pid + '\\n'); }
  const n = Number(readFileSync(dir + '/counter', 'utf8'));
  await new Promise((r) => setTimeout(r, 5));
  writeFileSync(dir + '/counter', String(n + 1));
  rmSync(dir + '/inside', { force: true });
  if (lock.tookOver.length) appendFileSync(dir + '/takeovers', lock.tookOver.join(';') + '\\n');
} finally {
  await lock.release();
}
`;

describe('stale lock takeover', () => {
  for (const [name, stale] of [
    ['a dead owner', async () => JSON.stringify({ pid: await deadPid(), host: hostname(), user: 'x', since: new Date().toISOString(), token: 't' })],
    ['a 0-byte lock file', async () => ''],
  ] as const) {
    it(`20 concurrent processes against ${name}: one takes it over, all 20 updates land, never two inside`, { timeout: 60_000 }, async () => {
      writeFileSync(join(dir, 'counter'), '0');
      writeFileSync(join(dir, 'counter.lock'), await stale());
      const runs = await Promise.all(Array.from({ length: 20 }, () => execa(process.execPath, ['--input-type=module', '-e', WORKER, dir], { reject: false })));
      for (const r of runs) expect(r.exitCode, r.stderr).toBe(0);
      expect(readFileSync(join(dir, 'counter'), 'utf8')).toBe('20');
      expect(existsSync(join(dir, 'overlaps'))).toBe(false);
      expect(readFileSync(join(dir, 'takeovers'), 'utf8').trim().split('\n')).toHaveLength(1);
      expect(existsSync(join(dir, 'counter.lock'))).toBe(false);
      expect(existsSync(join(dir, 'counter.lock.takeover'))).toBe(false);
    });
  }
});

describe('what makes a lock stale', () => {
  const now = Date.now();
  it('empty, unreadable, ownerless, dead owner or not refreshed within the bound', async () => {
    expect(staleReason('', now, now)).toBe('empty lock file');
    expect(staleReason('{"pid":', now, now)).toBe('unreadable lock file');
    expect(staleReason('{}', now, now)).toBe('lock file without an owner');
    const dead = await deadPid();
    expect(staleReason(JSON.stringify({ pid: dead, host: hostname() }), now, now)).toBe(`owner pid ${dead} is gone`);
    const elsewhere = JSON.stringify({ pid: 1, host: 'another-host' });
    expect(staleReason(elsewhere, now - 60_000, now)).toBeUndefined();
    expect(staleReason(elsewhere, now - 180_000, now)).toMatch(/not refreshed for 180s \(owner 1 on another-host\)/);
  });
  it('a live owner whose pid was reused by another process is stale', () => {
    const me = JSON.stringify({ pid: process.pid, host: hostname(), procStart: '1' });
    expect(staleReason(me, now, now)).toMatch(/now belongs to another process/);
    expect(staleReason(JSON.stringify({ pid: process.pid, host: hostname() }), now, now)).toBeUndefined();
  });
});

describe('rollout commands against a stale lock', () => {
  it('20 concurrent rollbacks: each one is recorded, none lost', { timeout: 60_000 }, async () => {
    writeReports(dir, new Date());
    const env = { EMBEDCTL_USER: 'ops' };
    expect((await runCli(['rollout', 'to', '10', '--driver', 'env'], { cwd: dir, env })).code).toBe(0);
    const lock = join(dir, '.embedctl', 'rollout.json.lock');
    writeFileSync(lock, JSON.stringify({ pid: await deadPid(), host: hostname(), user: 'killed', since: '2026-01-01T00:00:00Z', token: 'gone' }));
    utimesSync(lock, new Date(), new Date());
    const runs = await Promise.all(Array.from({ length: 20 }, (_, i) => runCli(['rollout', 'rollback', '--reason', `r${i}`, '--json'], { cwd: dir, env })));
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    // The racer that removed the dead lock may lose the next link(2) to another and then wait like
    // the rest: at most one reports the takeover.
    const repaired = runs.flatMap((r) => r.json<{ repaired: string[] }>().repaired);
    expect(repaired.every((x) => /took over a stale lock \(owner pid \d+ is gone\)/.test(x))).toBe(true);
    expect(repaired.length).toBeLessThanOrEqual(1);
    expect(existsSync(lock)).toBe(false);
    const s = JSON.parse(readFileSync(join(dir, '.embedctl', 'rollout.json'), 'utf8'));
    expect(s.history).toHaveLength(21);
    expect(new Set(s.history.slice(1).map((h: { reason: string }) => h.reason)).size).toBe(20);
    expect(readFileSync(join(dir, '.embedctl', 'rollout.history.jsonl'), 'utf8').trim().split('\n')).toHaveLength(21);
  });
});
