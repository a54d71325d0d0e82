import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';
import { manualClock, tempProject, writeReports } from './helpers/rollout-fixtures.js';

/**
 * rollout.json under damage and contention (issue 14): corrupt or invalid files, stale and live
 * locks, and the emergency rollback that works through all of them. Env driver, injected clock.
 */
let cwd: string;
let clock: ReturnType<typeof manualClock>;
const env = { EMBEDCTL_USER: 'alice@ops' };

const statePath = () => join(cwd, '.embedctl', 'rollout.json');
const state = () => JSON.parse(readFileSync(statePath(), 'utf8'));
const trafficEnv = () => readFileSync(join(cwd, '.embedctl', 'traffic.env'), 'utf8');
const cli = (args: string[], extraEnv: Record<string, string> = {}) =>
  runCli(['rollout', ...args, '--driver', 'env'], { cwd, now: clock.now, env: { ...env, ...extraEnv } });

beforeEach(() => {
  cwd = tempProject();
  clock = manualClock();
  writeReports(cwd, clock.now());
});

describe('rollout: state file safety', () => {
  it('a corrupt state file stops every verb but rollback, and is left untouched', async () => {
    mkdirSync(join(cwd, '.embedctl'), { recursive: true });
    writeFileSync(statePath(), '{"version":1, "percent": 10,');
    for (const args of [['to', '10'], ['status'], ['next'], ['pause']]) {
      const r = await cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/rollout\.json is not valid JSON .* left untouched/);
    }
    expect(readFileSync(statePath(), 'utf8')).toBe('{"version":1, "percent": 10,');
    expect(existsSync(join(cwd, '.embedctl', 'traffic.env'))).toBe(false);
  });

  it('values out of range or null where required: one line naming the field, and how to get out', async () => {
    expect((await cli(['to', '10'])).code).toBe(0);
    const good = state();
    for (const [patch, field] of [
      [{ percent: 250 }, /rollout\.json: percent: must be <= 100/],
      [{ driver: 'carrier-pigeon' }, /rollout\.json: driver: .*"nginx"/],
      [{ steps: null }, /rollout\.json: steps: (missing|.*null)/],
      [{ history: [{ ...good.history[0], user: null }] }, /rollout\.json: history\.0\.user: (missing|.*null)/],
    ] as const) {
      writeFileSync(statePath(), JSON.stringify({ ...good, ...patch }));
      for (const verb of ['status', 'next']) {
        const r = await cli([verb]);
        expect(r.code, `${verb} ${JSON.stringify(patch)}`).toBe(2);
        expect(r.stderr).toMatch(field);
        expect(r.stderr).toMatch(/; it was left untouched\n  hint: .*`embedctl rollout rollback` works regardless/);
        expect(r.stderr.trim().split('\n')).toHaveLength(2);
      }
    }
  });

  it('a 0-byte lock plus a corrupt rollout.json: rollback still sets 0 % first (exit 0) and says what it repaired', async () => {
    expect((await cli(['to', '10'])).code).toBe(0);
    expect(trafficEnv()).toBe('SELF_HOSTED_TRAFFIC_PERCENT=10\n');
    // What kill -9 mid-write (or a full disk) leaves behind.
    writeFileSync(`${statePath()}.lock`, '');
    writeFileSync(statePath(), '{"version":1, "percent": 10, "ste');
    const r = await cli(['rollback', '--reason', 'drill under damage', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(trafficEnv()).toBe('SELF_HOSTED_TRAFFIC_PERCENT=0\n');
    const doc = r.json<{ to: number; confirmed: boolean; repaired: string[]; driver: string }>();
    expect(doc).toMatchObject({ to: 0, confirmed: true, driver: 'env' });
    expect(doc.repaired).toHaveLength(2);
    expect(doc.repaired[0]).toMatch(/took over a stale lock \(empty lock file\)/);
    expect(doc.repaired[1]).toMatch(/moved the unusable state file aside to .*rollout\.json\.corrupt-.* \(.*is not valid JSON/);
    // The damaged file is kept for a post-mortem, the lock is gone, the new state is valid and says why.
    const aside = readdirSync(join(cwd, '.embedctl')).filter((f) => f.startsWith('rollout.json.corrupt-'));
    expect(aside).toHaveLength(1);
    expect(readFileSync(join(cwd, '.embedctl', aside[0]!), 'utf8')).toBe('{"version":1, "percent": 10, "ste');
    expect(existsSync(`${statePath()}.lock`)).toBe(false);
    expect(state()).toMatchObject({ percent: 0, lastRollback: { reason: 'drill under damage' } });
    expect(state().history.at(-1)).toMatchObject({ action: 'rollback', to: 0, repaired: doc.repaired });
    const text = await cli(['rollback']);
    expect(text.code).toBe(0);
    expect(text.stdout).not.toMatch(/repaired/);
    // status works again
    expect((await cli(['status'])).code).toBe(0);
  });

  it('rollback is not delayed by a live holder: traffic moves first, the record waits for the lock', async () => {
    expect((await cli(['to', '10'])).code).toBe(0);
    const lock = `${statePath()}.lock`;
    writeFileSync(lock, JSON.stringify({ pid: process.pid, host: hostname(), user: 'bob@ci', since: new Date().toISOString(), token: 'x' }));
    const pending = cli(['rollback', '--reason', 'pager']);
    for (let i = 0; i < 100 && trafficEnv() !== 'SELF_HOSTED_TRAFFIC_PERCENT=0\n'; i++) await new Promise((res) => setTimeout(res, 20));
    expect(trafficEnv()).toBe('SELF_HOSTED_TRAFFIC_PERCENT=0\n');
    expect(state().percent).toBe(10); // not recorded yet: the holder still works on the state
    rmSync(lock);
    const r = await pending;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/traffic is at 0%; waiting for the other rollout command to record it/);
    expect(state()).toMatchObject({ percent: 0 });
  });

  it('a state file from a newer embedctl is reported and left untouched', async () => {
    mkdirSync(join(cwd, '.embedctl'), { recursive: true });
    const newer = JSON.stringify({ version: 2, percent: 50, steps: [50, 100], history: [] });
    writeFileSync(statePath(), newer);
    const r = await cli(['next']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/newer embedctl \(rollout state v2; this one reads up to v1\)/);
    expect(readFileSync(statePath(), 'utf8')).toBe(newer);
  });

  it('a second rollout command while one holds the lock fails at once, naming the holder', async () => {
    mkdirSync(join(cwd, '.embedctl'), { recursive: true });
    // A live holder: this very process, as another embedctl would be.
    writeFileSync(`${statePath()}.lock`, JSON.stringify({ pid: process.pid, host: hostname(), user: 'bob@ci', since: '2026-03-02T08:59:00Z', command: 'embedctl rollout --next' }));
    const r = await cli(['to', '10']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/another embedctl command holds the rollout lock \(pid \d+ .*bob@ci.*"embedctl rollout --next"\)/);
    expect(existsSync(statePath())).toBe(false);
  });

  it('two concurrent moves: exactly one wins, the other fails clearly', async () => {
    // A slow kubectl keeps the first command inside the lock while the second starts.
    const bin = join(cwd, 'bin');
    mkdirSync(bin);
    const kubectl = join(bin, 'kubectl');
    writeFileSync(kubectl, `#!/bin/sh\necho "$@" >> "${join(cwd, 'kubectl.log')}"\ncase "$1" in get) echo 1000;; *) sleep 1;; esac\n`);
    chmodSync(kubectl, 0o755);
    const args = ['rollout', 'to', '10', '--driver', 'k8s'];
    const o = { cwd, now: clock.now, env: { ...env, PATH: `${bin}:${process.env.PATH}` } };
    const first = runCli(args, o);
    await new Promise((r) => setTimeout(r, 300));
    const second = await runCli(args, o);
    const a = await first;
    expect(a.code).toBe(0);
    expect(second.code).toBe(2);
    expect(second.stderr).toMatch(/holds the rollout lock .*embedctl rollout to 10/);
    expect(state().history).toHaveLength(1);
  });

  it('--dry-run prints the change and touches nothing', async () => {
    const r = await cli(['to', '10', '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/dry run: 0% -> 10%; gates pass; would write SELF_HOSTED_TRAFFIC_PERCENT=10 to .*traffic\.env/);
    expect(existsSync(statePath())).toBe(false);
    expect(existsSync(join(cwd, '.embedctl', 'traffic.env'))).toBe(false);
    const rb = await cli(['rollback', '--dry-run', '--json']);
    expect(rb.json()).toMatchObject({ action: 'rollback', dryRun: true, to: 0 });
    expect(existsSync(statePath())).toBe(false);
  });
});

afterEach(() => rmSync(cwd, { recursive: true, force: true }));
