// A move is done when the driver confirmed its share, not when it wrote it. Unconfirmed (nginx
// not answering, or nothing sampled) is recorded, exits 1, starts no dwell and blocks further
// steps; the same command re-applies and confirms. A rollback that cannot be confirmed exits 1
// too unless --no-confirm accepts it. Real nginx on loopback between two stand-ins.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startNginx, type NginxInstance } from '../src/adapters/nginx.js';
import { renderNginxConf, type NginxConfOptions } from '../src/core/render.js';
import { runCli } from './helpers/cli.js';
import { freePort, nginxOrSkip, startStandin, tempDir, type Standin } from './helpers/gateway.js';
import { DAY, manualClock, writeReports } from './helpers/rollout-fixtures.js';

const { skip } = nginxOrSkip();
const tmp = tempDir('embedctl-rollout-confirm-');
afterAll(() => tmp.cleanup());

let seq = 0;
let cwd: string;
let prefix: string;
let confPath: string;
let self: Standin;
let hosted: Standin;
let nginx: NginxInstance | undefined;
let clock: ReturnType<typeof manualClock>;

beforeEach(async () => {
  if (skip) return;
  cwd = join(tmp.dir, `p${++seq}`);
  prefix = join(cwd, '.embedctl', 'nginx');
  mkdirSync(prefix, { recursive: true });
  [self, hosted] = await Promise.all([startStandin('selfhosted'), startStandin('hosted')]);
  const options: Omit<NginxConfOptions, 'selfHostedPercent'> = {
    listen: { host: '127.0.0.1', port: await freePort() },
    selfHosted: [`127.0.0.1:${self.port}`],
    hostedUrl: `${hosted.url}/v1/embeddings`,
    splitDir: join(prefix, 'split'),
    workerProcesses: 1,
    errorLog: 'error.log',
    accessLog: 'access.log',
  };
  confPath = join(prefix, 'nginx.conf');
  writeFileSync(confPath, renderNginxConf({ ...options, selfHostedPercent: 0 }));
  nginx = await startNginx({ confPath, prefix });
  writeFileSync(join(cwd, '.embedctl', 'deploy.json'), JSON.stringify({ version: 1, source: 'test', nginx: { confPath, prefix, options } }));
  clock = manualClock(new Date());
  writeReports(cwd, clock.now());
});

afterEach(async () => {
  if (skip) return;
  await nginx?.stop();
  await Promise.all([self.stop(), hosted.stop()]);
});

const rollout = (args: string[]) => runCli(['rollout', ...args], { cwd, now: clock.now, env: { EMBEDCTL_USER: 'erin@ops' } });
const state = () => JSON.parse(readFileSync(join(cwd, '.embedctl', 'rollout.json'), 'utf8'));
const live = async () => ((await (await fetch(`${nginx!.url}/health`)).json()) as { selfHostedPercent: number }).selfHostedPercent;
const errorLines = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('embedctl: error:'));
const later = (ms: number) => {
  clock.advance(ms);
  writeReports(cwd, clock.now());
};

describe.skipIf(skip)('rollout: an unconfirmed move is not done', () => {
  it('the same command re-applies it (not "already at"), `next` confirms it before going further, and the dwell starts at the confirmation', { timeout: 60_000 }, async () => {
    await nginx!.stop();
    nginx = undefined;
    const first = await rollout(['to', '10']);
    expect(first.code).toBe(1);
    expect(first.stderr).toMatch(/^embedctl: error: traffic: the driver applied 10% but could not confirm it: .*no sample got an X-Embedctl-Backend header/m);
    expect(first.stderr).toMatch(/hint: recorded as not confirmed: the step's dwell has not started and nothing moves further; check the gateway, then re-run `embedctl rollout to 10` \(it re-applies\)/);
    expect(state()).toMatchObject({ percent: 10, stepStartedAt: null });
    expect(state().history.at(-1)).toMatchObject({ action: 'set', from: 0, to: 10, confirmed: false });

    // Re-run while the gateway is still down: it re-applies (and still cannot confirm), exit 1.
    later(DAY);
    const again = await rollout(['to', '10']);
    expect(again.code).toBe(1);
    expect(again.stdout).not.toMatch(/already at/);
    expect(errorLines(again.stderr)).toHaveLength(1);
    expect(state().history).toHaveLength(2);
    expect(state().history.at(-1)).toMatchObject({ action: 'set', from: 10, to: 10, confirmed: false, reason: expect.stringMatching(/^re-applied: the move of .* was not confirmed$/) });
    expect(state().stepStartedAt).toBeNull();

    // Nothing moves further forward from a step nobody saw, not even with --force.
    const skipAhead = await rollout(['to', '25', '--force', '--reason', 'in a hurry']);
    expect(skipAhead.code).toBe(2);
    expect(skipAhead.stderr).toMatch(/^embedctl: error: the 10% step is not done: its move \(.*\) was never confirmed, so nothing moves further forward\n  hint: re-run `embedctl rollout to 10` \(it re-applies and confirms\), or `embedctl rollout rollback`\n$/);
    const status = await rollout(['status']);
    expect(status.stdout).toMatch(/next: the 10% move was not confirmed, so its dwell has not started: embedctl rollout to 10/);

    // The gateway is back: `next` finishes the step it is on (10 %), it does not advance to 25 %.
    nginx = await startNginx({ confPath, prefix });
    later(DAY);
    const confirmedAt = clock.now().toISOString();
    const next = await rollout(['next', '--json']);
    expect(next.code, next.stderr).toBe(0);
    expect(next.json()).toMatchObject({ action: 'move', moved: true, reapplied: true, from: 10, to: 10, confirmed: true });
    expect(await live()).toBe(10);
    expect(state()).toMatchObject({ percent: 10, stepStartedAt: confirmedAt });
    expect(state().history.at(-1)).toMatchObject({ from: 10, to: 10, confirmed: true });

    // Confirmed now: the same command is a no-op, and the week counts from the confirmation.
    const noop = await rollout(['to', '10']);
    expect(noop.code).toBe(0);
    expect(noop.stdout).toBe('already at 10% self-hosted; nothing to do\n');
    later(6 * DAY); // 8 days after the first attempt, 6 after the confirmation
    const early = await rollout(['next']);
    expect(early.code).toBe(2);
    expect(early.stderr).toMatch(/the 10% step's dwell ends .* \(in 1d\)/);
    later(DAY + 60_000);
    const onward = await rollout(['next']);
    expect(onward.code, onward.stderr).toBe(0);
    expect(await live()).toBe(25);
  });
});

describe.skipIf(skip)('rollout: a share the driver could not confirm (nothing sampled)', () => {
  it('a rollback with --samples 0 exits 1 with a one-line error and how to confirm or opt out; --no-confirm accepts it (exit 0, recorded unconfirmed)', { timeout: 60_000 }, async () => {
    expect((await rollout(['to', '10'])).code).toBe(0);
    const rb = await rollout(['rollback', '--reason', 'drill', '--samples', '0']);
    expect(rb.code).toBe(1);
    expect(errorLines(rb.stderr)).toEqual([expect.stringMatching(/^embedctl: error: traffic: the driver applied 0% but could not confirm it: .*10% -> 0% self-hosted, no reload; not sampled \(--samples 0\)$/)]);
    expect(rb.stderr).toMatch(/\n  hint: recorded as not confirmed; let it sample the gateway \(--nginx-url, --samples above 0\), then run `embedctl rollout rollback` again, or accept 0% unconfirmed with --no-confirm\n$/);
    expect(rb.stderr).not.toMatch(/\n\s+at /);
    expect(await live()).toBe(0);
    expect(state().percent).toBe(0);
    expect(state().history.at(-1)).toMatchObject({ action: 'rollback', to: 0, confirmed: null });

    const accepted = await rollout(['rollback', '--reason', 'drill', '--no-confirm', '--json']);
    expect(accepted.code, accepted.stderr).toBe(0);
    expect(accepted.json()).toMatchObject({ action: 'rollback', to: 0, confirmed: null });
    expect(accepted.stderr).toMatch(/warning: 0% is applied but not confirmed \(.*not sampled \(--samples 0\)\); recorded as unconfirmed \(--no-confirm\)/);
    expect(state().history.at(-1)).toMatchObject({ action: 'rollback', to: 0, confirmed: null });

    const both = await rollout(['rollback', '--no-confirm', '--samples', '10']);
    expect(both.code).toBe(2);
    expect(errorLines(both.stderr)).toEqual(['embedctl: error: --samples: cannot be used with --no-confirm, which samples nothing']);
  });

  it('a forward move with --samples 0 is not confirmed: exit 1, no dwell, and --no-confirm is refused for it', { timeout: 60_000 }, async () => {
    const refused = await rollout(['to', '10', '--no-confirm']);
    expect(refused.code).toBe(2);
    expect(errorLines(refused.stderr)).toEqual([expect.stringMatching(/^embedctl: error: --no-confirm: only applies to a rollback/)]);
    const r = await rollout(['to', '10', '--samples', '0', '--json']);
    expect(r.code).toBe(1);
    expect(r.json()).toMatchObject({ moved: true, to: 10, confirmed: null });
    expect(r.stderr).toMatch(/could not confirm it: .*not sampled \(--samples 0\)\n  hint: recorded as not confirmed: the step's dwell has not started .*let it sample the gateway \(--nginx-url, --samples above 0\), then re-run `embedctl rollout to 10`/);
    expect(state()).toMatchObject({ percent: 10, stepStartedAt: null });
    const next = await rollout(['next', '--json']);
    expect(next.code, next.stderr).toBe(0);
    expect(next.json()).toMatchObject({ reapplied: true, to: 10, confirmed: true });
    expect(state().stepStartedAt).toBe(clock.now().toISOString());
  });
});

/** The runtime's /metrics while every other answer is a 500: counters that grow on each scrape. */
async function failingMetrics(): Promise<{ url: string; close(): Promise<void> }> {
  let n = 0;
  const server: Server = createServer((req, res) => {
    req.resume();
    n += 100;
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    res.end(
      [
        `embedctl_requests_total{status="200",route="/v1/embeddings"} ${n}`,
        `embedctl_requests_total{status="500",route="/v1/embeddings"} ${n}`,
        `embedctl_request_duration_seconds_bucket{route="/v1/embeddings",le="0.05"} ${2 * n}`,
        `embedctl_request_duration_seconds_bucket{route="/v1/embeddings",le="+Inf"} ${2 * n}`,
      ].join('\n') + '\n',
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

describe.skipIf(skip)('rollout watch: its automatic rollback follows the same rule', () => {
  it('an automatic rollback that cannot be confirmed exits 1, not 4; with --no-confirm it exits 4', { timeout: 60_000 }, async () => {
    const metrics = await failingMetrics();
    try {
      const watch = (extra: string[]) => rollout(['watch', '--interval', '100ms', '--max-duration', '10s', '--failure-limit', '1', '--metrics-url', metrics.url, ...extra]);
      expect((await rollout(['to', '10'])).code).toBe(0);
      const blind = await watch(['--samples', '0']);
      expect(blind.code).toBe(1);
      expect(errorLines(blind.stderr)).toEqual([expect.stringMatching(/^embedctl: error: traffic: the driver applied 0% but could not confirm it: .*not sampled \(--samples 0\)$/)]);
      expect(blind.stderr).toMatch(/or accept 0% unconfirmed with --no-confirm/);
      expect(await live()).toBe(0);
      expect(state().history.at(-1)).toMatchObject({ action: 'auto-rollback', to: 0, confirmed: null });

      expect((await rollout(['to', '10'])).code).toBe(0);
      const accepted = await watch(['--no-confirm']);
      expect(accepted.code, accepted.stderr).toBe(4);
      expect(accepted.stderr).toMatch(/recorded as unconfirmed \(--no-confirm\)/);
      expect(accepted.stderr).toMatch(/rolled back by rollout watch/);
      expect(await live()).toBe(0);
    } finally {
      await metrics.close();
    }
  });
});
