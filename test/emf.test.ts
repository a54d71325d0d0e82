// The EMF reporter is the only thing that puts the service's numbers into CloudWatch: the error
// rate and p95 alarms, cost-report --actual and rollout --cloudwatch all read what it writes. So:
// the lines must be valid EMF, the deltas exact, the percentiles right, and a real runtime must
// write them with the names the readers ask for.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { emfRecord, readSnapshot, startEmfReporter, type EmfRecord } from '../runtime/hooks/emf.js';
import { RuntimeMetrics } from '../runtime/hooks/metrics.js';
import { SERVICE_METRICS } from '../src/core/service-metrics.js';
import { runtimeEntry, startRuntime } from './helpers/runtime.js';

const dir = mkdtempSync(join(tmpdir(), 'embedctl-emf-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const UNITS = new Set(['Seconds', 'Microseconds', 'Milliseconds', 'Bytes', 'Kilobytes', 'Megabytes', 'Gigabytes', 'Terabytes', 'Bits', 'Kilobits', 'Megabits', 'Gigabits', 'Terabits', 'Percent', 'Count', 'Bytes/Second', 'Kilobytes/Second', 'Megabytes/Second', 'Gigabytes/Second', 'Terabytes/Second', 'Bits/Second', 'Kilobits/Second', 'Megabits/Second', 'Gigabits/Second', 'Terabits/Second', 'Count/Second', 'None']);

/** The specification's rules, checked one by one (a line that breaks one is dropped by CloudWatch). */
function checkEmf(rec: unknown): asserts rec is EmfRecord {
  const r = rec as EmfRecord;
  expect(Number.isInteger(r._aws.Timestamp)).toBe(true);
  expect(r._aws.Timestamp).toBeGreaterThan(1e12); // milliseconds since the epoch, not seconds
  expect(r._aws.CloudWatchMetrics.length).toBeGreaterThan(0);
  for (const d of r._aws.CloudWatchMetrics) {
    expect(d.Namespace).toMatch(/^[^:].{0,254}$/);
    for (const set of d.Dimensions) {
      expect(set.length).toBeLessThanOrEqual(30);
      for (const key of set) expect(typeof r[key]).toBe('string');
    }
    expect(d.Metrics.length).toBeLessThanOrEqual(100);
    for (const m of d.Metrics) {
      expect(UNITS.has(m.Unit)).toBe(true);
      expect(typeof r[m.Name]).toBe('number');
      expect(Number.isFinite(r[m.Name] as number)).toBe(true);
    }
  }
}

const metricNames = (r: EmfRecord) => r._aws.CloudWatchMetrics[0]!.Metrics.map((m) => m.Name);

function fed() {
  const m = new RuntimeMetrics(() => undefined);
  const ok = { route: '/v1/embeddings', status: '200' };
  m.requests.inc(ok, 88);
  m.requests.inc({ route: '/embeddings', status: '200' }, 2);
  m.requests.inc({ route: '/v1/embeddings', status: '500' }, 4);
  m.requests.inc({ route: '/v1/embeddings', status: '503' }, 1);
  m.requests.inc({ route: '/v1/embeddings', status: '429' }, 3);
  m.requests.inc({ route: '/v1/embeddings', status: '400' }, 2);
  // Health checks and scrapes are not traffic: they must not dilute anything.
  m.requests.inc({ route: '/health', status: '200' }, 500);
  m.requests.inc({ route: '/metrics', status: '500' }, 7);
  for (let i = 0; i < 90; i++) m.duration.observe({ route: '/v1/embeddings' }, 0.02);
  for (let i = 0; i < 10; i++) m.duration.observe({ route: '/v1/embeddings' }, 0.7);
  for (let i = 0; i < 50; i++) m.duration.observe({ route: '/health' }, 3);
  m.inputs.inc(250);
  m.tokens.inc(4321);
  return m;
}

describe('EMF lines from the runtime metrics', () => {
  it('are valid EMF with counts of the embeddings routes and p50/p95 interpolated inside the buckets', async () => {
    const m = fed();
    const zero = await readSnapshot(new RuntimeMetrics(() => undefined));
    const rec = emfRecord(zero, await readSnapshot(m), { deployment: 'prod-eu', timestamp: 1_767_225_600_000 });
    checkEmf(rec);
    expect(rec._aws.CloudWatchMetrics[0]).toMatchObject({ Namespace: 'Embedctl', Dimensions: [['Deployment']] });
    expect(rec.Deployment).toBe('prod-eu');
    expect(rec._aws.Timestamp).toBe(1_767_225_600_000);
    expect(rec).toMatchObject({ Requests: 100, Errors: 5, Throttled: 3, Embeddings: 250, Tokens: 4321 });
    // 90 requests in (0.01, 0.025], 10 in (0.5, 1]: rank 50 -> 0.01 + 0.015 * 50/90; rank 95 -> 0.5 + 0.5 * 5/10.
    expect(rec.RequestLatencyP50).toBeCloseTo(18.333, 3);
    expect(rec.RequestLatencyP95).toBe(750);
    const units = Object.fromEntries(rec._aws.CloudWatchMetrics[0]!.Metrics.map((x) => [x.Name, x.Unit]));
    expect(units).toEqual({ Requests: 'Count', Errors: 'Count', Throttled: 'Count', Embeddings: 'Count', Tokens: 'Count', RequestLatencyP50: 'Milliseconds', RequestLatencyP95: 'Milliseconds' });
    expect(Object.values(SERVICE_METRICS).sort()).toEqual(Object.keys(units).sort());
  });

  it('carry only what happened since the previous line; a quiet interval is zeros without latency', async () => {
    const m = fed();
    const first = await readSnapshot(m);
    for (let i = 0; i < 10; i++) {
      m.requests.inc({ route: '/v1/embeddings', status: '200' });
      m.duration.observe({ route: '/v1/embeddings' }, 0.003);
    }
    m.inputs.inc(12);
    m.tokens.inc(99);
    const second = await readSnapshot(m);
    const rec = emfRecord(first, second, { deployment: 'main', timestamp: Date.now() });
    checkEmf(rec);
    expect(rec).toMatchObject({ Requests: 10, Errors: 0, Throttled: 0, Embeddings: 12, Tokens: 99 });
    // All ten in (0.0025, 0.005]: rank 9.5 -> 2.5 + 2.5 * 9.5/10 ms; the earlier 0.7 s ones are not in this interval.
    expect(rec.RequestLatencyP95).toBeCloseTo(4.875, 6);

    const quiet = emfRecord(second, await readSnapshot(m), { deployment: 'main', timestamp: Date.now() });
    checkEmf(quiet);
    expect(quiet).toMatchObject({ Requests: 0, Errors: 0, Embeddings: 0, Tokens: 0 });
    expect(metricNames(quiet)).not.toContain('RequestLatencyP95');
    expect(quiet).not.toHaveProperty('RequestLatencyP95');
  });

  it('p95 crosses 500 ms exactly when more than 5% of requests took longer than 0.5 s (the alarm threshold)', async () => {
    const p95With = async (slow: number) => {
      const m = new RuntimeMetrics(() => undefined);
      for (let i = 0; i < 100 - slow; i++) m.duration.observe({ route: '/v1/embeddings' }, 0.1);
      for (let i = 0; i < slow; i++) m.duration.observe({ route: '/v1/embeddings' }, 0.9);
      const zero = await readSnapshot(new RuntimeMetrics(() => undefined));
      return emfRecord(zero, await readSnapshot(m), { deployment: 'main', timestamp: Date.now() }).RequestLatencyP95 as number;
    };
    expect(await p95With(5)).toBeLessThanOrEqual(500);
    expect(await p95With(6)).toBeGreaterThan(500);
  });
});

describe('EMF reporter', () => {
  it('appends one line per flush, and the lines add up to the totals', async () => {
    const path = join(dir, 'sub', 'runtime-1.emf.log');
    const m = new RuntimeMetrics(() => undefined);
    let t = 1_767_225_600_000;
    const rep = startEmfReporter({ metrics: m, path, intervalMs: 3_600_000, deployment: 'main', now: () => t });
    m.requests.inc({ route: '/v1/embeddings', status: '200' }, 3);
    t += 60_000;
    await rep.flush();
    m.requests.inc({ route: '/v1/embeddings', status: '502' }, 2);
    m.inputs.inc(7);
    t += 30_000;
    // stop() writes the last, partial interval so a drained shutdown loses nothing.
    await rep.stop();
    await rep.stop();
    const lines = readFileSync(path, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as EmfRecord);
    expect(lines).toHaveLength(2);
    lines.forEach(checkEmf);
    expect(lines.map((l) => [l.Requests, l.Errors, l.Embeddings, l.IntervalSeconds, l._aws.Timestamp])).toEqual([
      [3, 0, 0, 60, 1_767_225_660_000],
      [2, 2, 7, 30, 1_767_225_690_000],
    ]);
  });

  it('renames a full file to .1 and starts a new one, so it never fills the disk', async () => {
    const path = join(dir, 'rotate.emf.log');
    const m = new RuntimeMetrics(() => undefined);
    const rep = startEmfReporter({ metrics: m, path, intervalMs: 3_600_000, deployment: 'main', maxBytes: 1200 });
    for (let i = 1; i <= 7; i++) {
      m.requests.inc({ route: '/v1/embeddings', status: '200' }, i);
      await rep.flush();
    }
    await rep.stop();
    const read = (p: string) => readFileSync(p, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as EmfRecord);
    const current = read(path);
    const previous = read(`${path}.1`);
    expect(statSync(path).size).toBeLessThanOrEqual(1200);
    expect(statSync(`${path}.1`).size).toBeLessThanOrEqual(1200);
    // The newest lines, in order, with nothing lost between the two files (the oldest .1 is dropped).
    const requests = [...previous, ...current].map((l) => l.Requests);
    expect(requests).toEqual([1, 2, 3, 4, 5, 6, 7, 0].slice(8 - requests.length));
    expect(current.length).toBeGreaterThan(0);
  });

  it('writes on its own timer', async () => {
    const path = join(dir, 'timer.emf.log');
    const m = new RuntimeMetrics(() => undefined);
    const rep = startEmfReporter({ metrics: m, path, intervalMs: 50, deployment: 'main' });
    m.requests.inc({ route: '/v1/embeddings', status: '200' });
    await new Promise((r) => setTimeout(r, 400));
    await rep.stop();
    const lines = readFileSync(path, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as EmfRecord);
    expect(lines.length).toBeGreaterThanOrEqual(3);
    expect(lines.reduce((a, l) => a + (l.Requests as number), 0)).toBe(1);
  });

  it('a failed write is reported once, never thrown, and its counts arrive with the next line', async () => {
    const blocker = join(dir, 'blocker');
    writeFileSync(blocker, 'a file where a directory should be');
    const path = join(blocker, 'emf.log');
    const m = new RuntimeMetrics(() => undefined);
    const errors: string[] = [];
    const rep = startEmfReporter({ metrics: m, path, intervalMs: 3_600_000, deployment: 'main', onError: (e) => errors.push(e.message) });
    m.requests.inc({ route: '/v1/embeddings', status: '200' }, 4);
    await rep.flush();
    await rep.flush();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/ENOTDIR|EEXIST/);
    rmSync(blocker);
    m.requests.inc({ route: '/v1/embeddings', status: '200' }, 1);
    await rep.stop();
    const lines = readFileSync(path, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as EmfRecord);
    expect(lines.map((l) => l.Requests)).toEqual([5]);
  });
});

describe('EMF from the real runtime process', () => {
  it('is off by default, and with EMBEDCTL_EMF_LOG counts real requests, faults and tokens', async () => {
    const path = join(dir, 'real', 'runtime-1.emf.log');
    const rt = await startRuntime({
      model: 'tiny-bert',
      env: { EMBEDCTL_EMF_LOG: path, EMBEDCTL_EMF_INTERVAL: '0.2', EMBEDCTL_DEPLOYMENT: 'blue-1', EMBEDCTL_FAULT_INJECTION: '1' },
    });
    let tokens = 0;
    try {
      const embed = (input: string | string[]) =>
        fetch(`${rt.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input }) });
      expect((await embed('hello world')).status).toBe(200);
      expect((await embed(['one', 'two', 'three'])).status).toBe(200);
      await fetch(`${rt.url}/health`);
      const fault = await fetch(`${rt.url}/admin/fault`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"status":500,"rate":1}' });
      expect(fault.status).toBe(200);
      expect((await embed('fails')).status).toBe(500);
      const text = await (await fetch(`${rt.url}/metrics`)).text();
      tokens = Number(/^embedctl_tokens_total (\d+)/m.exec(text)![1]);
      expect(rt.events().find((e) => e.event === 'emf')).toMatchObject({ path, intervalSeconds: 0.2, deployment: 'blue-1' });
    } finally {
      await rt.stop();
    }
    const lines = readFileSync(path, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as EmfRecord);
    lines.forEach(checkEmf);
    const sum = (k: string) => lines.reduce((a, l) => a + ((l[k] as number | undefined) ?? 0), 0);
    expect(new Set(lines.map((l) => l.Deployment))).toEqual(new Set(['blue-1']));
    expect([sum('Requests'), sum('Errors'), sum('Embeddings')]).toEqual([3, 1, 4]);
    expect(tokens).toBeGreaterThan(0);
    expect(sum('Tokens')).toBe(tokens);
    expect(lines.some((l) => typeof l.RequestLatencyP95 === 'number' && (l.RequestLatencyP95 as number) > 0)).toBe(true);

    // Without the variable nothing is written and no reporter starts.
    const quiet = await startRuntime({ model: 'tiny-bert', env: { EMBEDCTL_EMF_LOG: '' } });
    await quiet.stop();
    expect(quiet.events().some((e) => e.event === 'emf')).toBe(false);
  });

  it('a bad --emf-interval or --deployment is a usage error (exit 2) naming the flag', () => {
    for (const [args, flag] of [
      [['--emf-log', join(dir, 'x.log'), '--emf-interval', '0'], '--emf-interval: must be between'],
      [['--emf-log', join(dir, 'x.log'), '--deployment', 'has space'], '--deployment: expected a deployment name'],
    ] as const) {
      const r = spawnSync(process.execPath, [runtimeEntry, '--model', 'tiny-bert', '--port', '0', ...args], { encoding: 'utf8', timeout: 20_000 });
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(flag);
      expect(r.stderr).toContain('--emf-log <path>');
    }
  });
});
