// A one-off `rollout check --metrics-url` judged the runtime's lifetime counters: after days at
// 0 % errors, an hour at 30 % passed a 5 % gate. The rate must come from two scrapes: a kept
// earlier one inside the window, or a second one a moment later; one scrape alone is no rate.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { collectEvidence, type EvidenceOptions } from '../src/adapters/evidence.js';
import { SCRAPES_FILE } from '../src/adapters/prometheus.js';
import { DEFAULT_GATES, evaluateGates } from '../src/core/rollout/gates.js';
import { runCli } from './helpers/cli.js';
import { tempProject, writeReports } from './helpers/rollout-fixtures.js';

/**
 * /metrics of a runtime that served a million requests without an error, and now fails: every
 * scrape shows 100 more requests, 30 of them 500s taking up to a second.
 */
let scrapes = 0;
let server: Server;
let metricsUrl: string;
beforeAll(async () => {
  server = createServer((_req, res) => {
    const n = scrapes++;
    const ok = 1_000_000 + 70 * n;
    const bad = 30 * n;
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    res.end(
      [
        `embedctl_requests_total{route="/v1/embeddings",status="200"} ${ok}`,
        `embedctl_requests_total{route="/v1/embeddings",status="500"} ${bad}`,
        `embedctl_request_duration_seconds_bucket{route="/v1/embeddings",le="0.05"} ${ok}`,
        `embedctl_request_duration_seconds_bucket{route="/v1/embeddings",le="1"} ${ok + bad}`,
        `embedctl_request_duration_seconds_bucket{route="/v1/embeddings",le="+Inf"} ${ok + bad}`,
        '',
      ].join('\n'),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  metricsUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

let cwd: string;
let evidenceDir: string;
beforeEach(() => {
  scrapes = 0;
  cwd = tempProject();
  evidenceDir = writeReports(cwd, new Date());
});
afterEach(() => rmSync(cwd, { recursive: true, force: true }));

const t0 = new Date('2026-03-02T09:00:00Z');
async function live(o: Partial<EvidenceOptions>) {
  const now = o.now ?? t0;
  const got = await collectEvidence({ evidenceDir, metricsUrl, now, ...o });
  const gates = evaluateGates(got.evidence, DEFAULT_GATES, now);
  return { errorRate: gates.find((g) => g.name === 'errorRate')!, p95: gates.find((g) => g.name === 'p95LatencyMs')!, snapshot: got.snapshot, observed: got.evidence.errorRate! };
}

describe('one-off check against /metrics', () => {
  it('rollout check: 30 % errors now fail the 5 % gate although the lifetime counters are at 0.003 % (exit 3)', async () => {
    const r = await runCli(['rollout', 'check', '--json', '--metrics-url', metricsUrl, '--window', '1s'], { cwd });
    expect(r.code, r.stderr).toBe(3);
    const gates = r.json<{ gates: Array<{ name: string; status: string; value: number; source: string }> }>().gates;
    expect(gates[0]).toMatchObject({ name: 'errorRate', status: 'fail', value: 0.3 });
    expect(gates[0]!.source).toMatch(/between two scrapes/);
    expect(gates[0]!.source).not.toMatch(/since runtime start/);
    expect(gates[1]).toMatchObject({ name: 'p95LatencyMs', status: 'fail' });
    expect(scrapes).toBe(2);
  });

  it('--metrics-settle 0: one scrape and no pause, so the live gates are inconclusive (exit 3), never a pass; a bad value is exit 2', async () => {
    const r = await runCli(['rollout', 'check', '--json', '--metrics-url', metricsUrl, '--metrics-settle', '0'], { cwd });
    expect(r.code, r.stderr).toBe(3);
    const gates = r.json<{ gates: Array<{ name: string; status: string }> }>().gates;
    expect(gates.find((g) => g.name === 'errorRate')!.status).toBe('inconclusive');
    expect(scrapes).toBe(1);
    const bad = await runCli(['rollout', 'check', '--metrics-url', metricsUrl, '--metrics-settle', 'soon'], { cwd });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--metrics-settle/);
  });

  it('without an earlier scrape, a second one after the settle pause gives the rate; the pause is bounded by the window and by 60 s', async () => {
    const slept: number[] = [];
    const sleep = async (ms: number) => void slept.push(ms);
    const a = await live({ settleMs: 2000, sleep, windowMs: 300_000 });
    expect(a.errorRate).toMatchObject({ status: 'fail', value: 0.3 });
    expect(a.observed.note).toBe('30/100 requests failed');
    await live({ settleMs: 2000, sleep, windowMs: 500 });
    await live({ settleMs: 3_600_000, sleep, windowMs: 7_200_000 });
    expect(slept).toEqual([2000, 500, 60_000]);
  });

  it('settleMs 0 and nothing kept: inconclusive, naming the lifetime counters, never a pass', async () => {
    const r = await live({ settleMs: 0 });
    expect(r.errorRate).toMatchObject({ status: 'inconclusive', value: null });
    expect(r.errorRate.note).toMatch(/no earlier scrape of .* within the last 5m: its counters are totals since the runtime started, not a rate/);
    expect(r.p95.status).toBe('inconclusive');
    expect(scrapes).toBe(1);
  });

  it('each scrape is kept next to the rollout state; a later check measures from the oldest one inside the window', async () => {
    const stateDir = join(cwd, '.embedctl');
    const first = await live({ stateDir, settleMs: 0, now: t0 });
    expect(first.errorRate.status).toBe('inconclusive');
    expect(first.errorRate.note).toMatch(/this scrape is kept, check again within the window/);
    const file = JSON.parse(readFileSync(join(stateDir, SCRAPES_FILE), 'utf8')) as { version: number; scrapes: Array<{ url: string; at: string; total: number }> };
    expect(file).toMatchObject({ version: 1, scrapes: [{ url: metricsUrl, at: t0.toISOString(), total: 1_000_000 }] });

    const later = await live({ stateDir, settleMs: 0, now: new Date(t0.getTime() + 60_000) });
    expect(later.errorRate).toMatchObject({ status: 'fail', value: 0.3, ageSeconds: 0 });
    expect(later.errorRate.source).toBe(`${metricsUrl} (last 1m: since the scrape at ${t0.toISOString()})`);
    // Two minutes in, still from the first scrape: 200 requests, not the 100 since the last check.
    const wider = await live({ stateDir, settleMs: 0, now: new Date(t0.getTime() + 120_000) });
    expect(wider.observed.note).toBe('60/200 requests failed');

    // Every kept scrape is older than the window: no rate, and no pass.
    const stale = await live({ stateDir, settleMs: 0, now: new Date(t0.getTime() + 3600_000) });
    expect(stale.errorRate.status).toBe('inconclusive');
    expect(JSON.parse(readFileSync(join(stateDir, SCRAPES_FILE), 'utf8')).scrapes).toHaveLength(4);
  });

  it('a corrupt scrapes file is no baseline and is replaced', async () => {
    const stateDir = join(cwd, '.embedctl');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(stateDir, SCRAPES_FILE), '{"version":1,"scrapes":[{"url":');
    const r = await live({ stateDir, settleMs: 0 });
    expect(r.errorRate.status).toBe('inconclusive');
    expect(existsSync(join(stateDir, SCRAPES_FILE))).toBe(true);
    expect(JSON.parse(readFileSync(join(stateDir, SCRAPES_FILE), 'utf8')).scrapes).toHaveLength(1);
  });

  it('the watch passes its previous snapshot: the window is the interval, with no pause', async () => {
    const previous = (await live({ settleMs: 0 })).snapshot!;
    const slept: number[] = [];
    const r = await live({ previous, sleep: async (ms) => void slept.push(ms) });
    expect(r.errorRate).toMatchObject({ status: 'fail', value: 0.3 });
    expect(r.errorRate.source).toMatch(/since last scrape/);
    expect(slept).toEqual([]);
  });
});

describe('a window with no live requests', () => {
  // A runtime nobody calls: 0 % self-hosted before the first step, or a breaker holding clients off it.
  let idle: Server;
  let idleUrl: string;
  beforeAll(async () => {
    idle = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(
        [
          'embedctl_requests_total{route="/v1/embeddings",status="200"} 500',
          'embedctl_request_duration_seconds_bucket{route="/v1/embeddings",le="0.05"} 500',
          'embedctl_request_duration_seconds_bucket{route="/v1/embeddings",le="+Inf"} 500',
          '',
        ].join('\n'),
      );
    });
    await new Promise<void>((r) => idle.listen(0, '127.0.0.1', r));
    idleUrl = `http://127.0.0.1:${(idle.address() as AddressInfo).port}/metrics`;
  });
  afterAll(() => new Promise<void>((r) => idle.close(() => r())));

  it('a one-off check judges the load-test report instead, and says so', async () => {
    const sleep = async () => {};
    const a = await live({ metricsUrl: idleUrl, settleMs: 1000, sleep, windowMs: 300_000 });
    expect(a.errorRate).toMatchObject({ status: 'pass', value: 0.002 });
    expect(a.p95).toMatchObject({ status: 'pass', value: 45 });
    expect(a.observed.note).toMatch(/no requests at .* in the window; from the load-test report/);
    expect(a.observed.source).toMatch(/load-test\.json$/);
  });

  it('without a load-test report it stays inconclusive', async () => {
    rmSync(join(evidenceDir, 'load-test.json'));
    const a = await live({ metricsUrl: idleUrl, settleMs: 1000, sleep: async () => {}, windowMs: 300_000 });
    expect(a.errorRate).toMatchObject({ status: 'inconclusive', value: null });
  });

  it("a watch's silent interval stays silent: no load-test figure stands in for live traffic", async () => {
    const first = await collectEvidence({ evidenceDir, metricsUrl: idleUrl, now: t0, settleMs: 0 });
    const tick = await live({ metricsUrl: idleUrl, previous: first.snapshot, now: new Date(t0.getTime() + 1000), windowMs: 1000 });
    expect(tick.errorRate.value).toBeNull();
    expect(tick.observed.note).toBe('no requests in the window');
  });
});
