import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CloudWatchClient, GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { collectEvidence } from '../src/adapters/evidence.js';
import { DEFAULT_GATES, evaluateGates } from '../src/core/rollout/gates.js';
import { delta, histogramQuantile, parsePrometheus, snapshot } from '../src/core/rollout/prometheus.js';
import { runCli } from './helpers/cli.js';
import { startRuntime, type RuntimeHandle } from './helpers/runtime.js';
import { tempProject, writeReports } from './helpers/rollout-fixtures.js';

const now = new Date('2026-03-02T09:00:00Z');
let cwd: string;
afterEach(() => cwd && rmSync(cwd, { recursive: true, force: true }));

describe('Prometheus text -> error rate and p95', () => {
  const text = (ok: number, err: number, fast: number, slow: number) => `
# HELP embedctl_requests_total Requests
# TYPE embedctl_requests_total counter
embedctl_requests_total{route="/v1/embeddings",status="200"} ${ok}
embedctl_requests_total{route="/v1/embeddings",status="500"} ${err}
embedctl_requests_total{route="/health",status="200"} 5000
embedctl_request_duration_seconds_bucket{route="/v1/embeddings",le="0.05"} ${fast}
embedctl_request_duration_seconds_bucket{route="/v1/embeddings",le="0.1"} ${fast}
embedctl_request_duration_seconds_bucket{route="/v1/embeddings",le="0.5"} ${fast + slow}
embedctl_request_duration_seconds_bucket{route="/v1/embeddings",le="+Inf"} ${fast + slow}
embedctl_request_duration_seconds_bucket{route="/health",le="0.05"} 5000
embedctl_request_duration_seconds_bucket{route="/health",le="+Inf"} 5000
`;

  it('ignores health checks, counts 5xx as errors and interpolates p95 like histogram_quantile', () => {
    const s = snapshot(parsePrometheus(text(90, 10, 100, 0)));
    expect(s).toMatchObject({ total: 100, errors: 10 });
    // all 100 in the first bucket: rank 95 of 100 -> 0.05 * 0.95
    expect(histogramQuantile(0.95, s.buckets)).toBeCloseTo(0.0475, 6);
  });

  it('computes the window between two scrapes, and survives a restart', () => {
    const a = snapshot(parsePrometheus(text(90, 10, 100, 0)));
    const b = snapshot(parsePrometheus(text(180, 30, 100, 110)));
    const w = delta(a, b);
    expect(w).toMatchObject({ total: 110, errors: 20 });
    // the 110 new requests all sit in (0.1, 0.5]: rank 104.5 -> 0.1 + 0.4 * 104.5/110
    expect(histogramQuantile(0.95, w.buckets)).toBeCloseTo(0.1 + (0.4 * 104.5) / 110, 6);
    const restarted = snapshot(parsePrometheus(text(5, 0, 5, 0)));
    expect(delta(b, restarted).total).toBe(5);
    expect(histogramQuantile(0.95, [])).toBeNull();
  });
});

describe('evidence from reports', () => {
  it('judges each report by its own timestamp, names a missing field, rejects another schema', async () => {
    cwd = tempProject();
    const dir = writeReports(cwd, new Date(now.getTime() - 3600_000), { cosineMin: 0.991, overlap: 86 });
    writeFileSync(join(dir, 'load-test.json'), JSON.stringify({ schema: 'embedctl.load-test/v1', generatedAt: now.toISOString(), latencyMs: { p95: 40 } }));
    writeFileSync(join(dir, 'rag-overlap.json'), JSON.stringify({ schema: 'embedctl.verify-consistency/v1', overlap: { mean: 0.9 } }));
    const { evidence } = await collectEvidence({ evidenceDir: dir, now });
    const gates = evaluateGates(evidence, DEFAULT_GATES, now);
    const by = Object.fromEntries(gates.map((g) => [g.name, g]));
    expect(by.consistency).toMatchObject({ status: 'pass', value: 0.991, ageSeconds: 3600, onTarget: false });
    expect(by.errorRate!.status).toBe('inconclusive');
    expect(by.errorRate!.note).toMatch(/load-test\.json has no errorRate; produce it with: embedctl load-test/);
    // An incomplete report is not evidence at all: its p95 is not trusted either.
    expect(by.p95LatencyMs).toMatchObject({ status: 'inconclusive', value: null });
    expect(by.overlap!.note).toMatch(/has schema embedctl\.verify-consistency\/v1, expected embedctl\.rag-overlap\/v1/);
    // cost-report's shape: monthly.<option>.total for the recommended option
    expect(by.monthlyCost).toMatchObject({ status: 'pass', value: 310 });
  });

  it('a re-index rag-overlap report is judged on its nDCG ratio, not on overlap with the old index', async () => {
    cwd = tempProject();
    const dir = writeReports(cwd, now);
    writeFileSync(join(dir, 'rag-overlap.json'), JSON.stringify({ schema: 'embedctl.rag-overlap/v1', generatedAt: now.toISOString(), queries: 50, corpus: 200, reindex: true, overlap: { mean: 0.12, min: 0 }, quality: { ratio: 0.97 } }));
    const g = evaluateGates((await collectEvidence({ evidenceDir: dir, now })).evidence, DEFAULT_GATES, now).find((x) => x.name === 'overlap')!;
    expect(g).toMatchObject({ status: 'pass', value: 0.97 });
    expect(g.note).toMatch(/re-index/);
  });

  it('a report without generatedAt is not evidence: its file date does not make it fresh', async () => {
    cwd = tempProject();
    const dir = join(cwd, 'r');
    mkdirSync(dir);
    const file = join(dir, 'verify-consistency.json');
    writeFileSync(file, JSON.stringify({ schema: 'embedctl.verify-consistency/v1', count: 10, cosine: { min: 0.999, mean: 0.9995 }, belowWarn: 0, verdict: 'pass' }));
    const gates = evaluateGates((await collectEvidence({ evidenceDir: dir, now })).evidence, DEFAULT_GATES, now);
    const c = gates.find((g) => g.name === 'consistency')!;
    expect(c).toMatchObject({ status: 'inconclusive', value: null });
    expect(c.note).toMatch(/verify-consistency\.json has no generatedAt/);
  });

  it('an unreachable /metrics is inconclusive, never a pass', async () => {
    cwd = tempProject();
    const dir = writeReports(cwd, now);
    const { evidence } = await collectEvidence({ evidenceDir: dir, now, metricsUrl: 'http://127.0.0.1:9/metrics', timeoutMs: 2000 });
    const g = evaluateGates(evidence, DEFAULT_GATES, now).find((x) => x.name === 'errorRate')!;
    expect(g.status).toBe('inconclusive');
    expect(g.note).toMatch(/GET http:\/\/127\.0\.0\.1:9\/metrics failed/);
  });
});

describe('evidence from CloudWatch (real client, mocked transport)', () => {
  const cw = mockClient(CloudWatchClient);
  afterAll(() => cw.restore());

  it('asks GetMetricData for requests, errors and p95, and turns them into gates', async () => {
    cwd = tempProject();
    const dir = writeReports(cwd, now);
    const at = new Date(now.getTime() - 60_000);
    cw.on(GetMetricDataCommand).resolves({
      MetricDataResults: [
        { Id: 'requests', Timestamps: [at], Values: [1000] },
        { Id: 'errors', Timestamps: [at], Values: [80] },
        { Id: 'p95', Timestamps: [at], Values: [140] },
      ],
    });
    const r = await runCli(['rollout', 'check', '--json', '--cloudwatch', '--cloudwatch-region', 'eu-west-1', '--cloudwatch-dimension', 'Service=embeddings'], { cwd, now: () => now });
    expect(r.code).toBe(3);
    const input = cw.commandCalls(GetMetricDataCommand)[0]!.args[0].input;
    // The names runtime/emf.ts publishes; RequestLatencyP95 is already a p95 per runtime, so its Maximum.
    expect(input.MetricDataQueries!.map((q) => `${q.MetricStat!.Metric!.Namespace}/${q.MetricStat!.Metric!.MetricName}/${q.MetricStat!.Stat}`)).toEqual([
      'Embedctl/Requests/Sum',
      'Embedctl/Errors/Sum',
      'Embedctl/RequestLatencyP95/Maximum',
    ]);
    expect(input.MetricDataQueries![0]!.MetricStat!.Metric!.Dimensions).toEqual([{ Name: 'Service', Value: 'embeddings' }]);
    const gates = r.json<{ gates: Array<{ name: string; value: number; status: string; source: string; ageSeconds: number }> }>().gates;
    expect(gates[0]).toMatchObject({ name: 'errorRate', value: 0.08, status: 'fail', source: 'cloudwatch:Embedctl (eu-west-1)', ageSeconds: 60 });
    expect(gates[1]).toMatchObject({ name: 'p95LatencyMs', value: 140, status: 'pass' });
    const noRegion = await runCli(['rollout', 'check', '--cloudwatch'], { cwd, now: () => now, env: { AWS_REGION: '' } });
    expect(noRegion.code).toBe(2);
    expect(noRegion.stderr).toMatch(/--cloudwatch: needs a region/);
  });

  it('without --cloudwatch-dimension asks for the Deployment the runtime and the alarms use', async () => {
    cw.reset();
    cw.on(GetMetricDataCommand).resolves({ MetricDataResults: [] });
    const dims = async (env: Record<string, string>) => {
      cw.resetHistory();
      const r = await runCli(['rollout', 'check', '--json', '--cloudwatch', '--cloudwatch-region', 'eu-west-1'], { cwd, now: () => now, env });
      expect(r.code).not.toBe(2);
      const input = cw.commandCalls(GetMetricDataCommand)[0]!.args[0].input;
      return input.MetricDataQueries!.map((q) => q.MetricStat!.Metric!.Dimensions);
    };
    expect(await dims({})).toEqual(Array(3).fill([{ Name: 'Deployment', Value: 'main' }]));
    expect(await dims({ EMBEDCTL_DEPLOYMENT: 'blue' })).toEqual(Array(3).fill([{ Name: 'Deployment', Value: 'blue' }]));
  });
});

describe('evidence from the real runtime /metrics', () => {
  let rt: RuntimeHandle;
  beforeAll(async () => {
    rt = await startRuntime({ model: 'tiny-bert' });
  });
  afterAll(async () => rt?.stop());

  it('rollout --check reads live error rate and p95 from the runtime, over two scrapes while traffic flows', async () => {
    cwd = tempProject();
    writeReports(cwd, new Date());
    const embed = async (i: number) => {
      const res = await fetch(`${rt.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: [`hello ${i}`], model: 'tiny-bert' }) });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    };
    for (let i = 0; i < 20; i++) await embed(i);
    // The requests before the check are lifetime counters, not a rate: the check measures the
    // second (--window 1s) between its two scrapes, so users must be sending then.
    let stop = false;
    const traffic = (async () => {
      for (let i = 20; !stop; i++) await embed(i);
    })();
    const r = await runCli(['rollout', 'check', '--json', '--metrics-url', `${rt.url}/metrics`, '--window', '1s'], { cwd });
    stop = true;
    await traffic;
    expect(r.code).toBe(0);
    const gates = r.json<{ gates: Array<{ name: string; value: number; status: string; source: string }> }>().gates;
    expect(gates[0]).toMatchObject({ name: 'errorRate', value: 0, status: 'pass' });
    expect(gates[0]!.source).toContain(`${rt.url}/metrics`);
    expect(gates[0]!.source).toMatch(/between two scrapes/);
    expect(gates[1]!.name).toBe('p95LatencyMs');
    expect(gates[1]!.value).toBeGreaterThan(0);
    expect(gates[1]!.value).toBeLessThan(10_000);
  });
});
