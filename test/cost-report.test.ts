import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildReport, buildThresholds, type Measurement } from '../src/core/loadtest.js';
import type { StepMeasurement } from '../src/core/loadtest-capacity.js';
import { runCli } from './helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'embedctl-cost-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * A load-test report as `load-test --out` writes it: load-test's own buildReport, saved with the
 * schema key. Steps of 10 s at constant concurrency; `succeeded x batch 8 x 6` embeddings/min each.
 */
function loadTest(
  file: string,
  o: { steps: StepMeasurement[]; p95: number; slo?: number; tokensPerText?: number; errorsByStatus?: Record<string, number>; checks?: Measurement['checks'] },
) {
  const requests = o.steps.reduce((a, s) => a + s.requests, 0);
  const succeeded = o.steps.reduce((a, s) => a + s.succeeded, 0);
  const report = buildReport(
    {
      generatedAt: new Date('2026-11-20T00:00:00Z'),
      engine: 'autocannon',
      target: 'http://127.0.0.1:8080/v1/embeddings',
      shape: 'openai',
      batch: 8,
      stages: [{ durationMs: o.steps.length * 10_000, target: 8 }],
      thresholds: buildThresholds(o.slo ?? 500, 0.05),
      maxRequests: 1e6,
      texts: o.tokensPerText === undefined ? undefined : { source: 'texts.jsonl', count: 100, tokensPerText: o.tokensPerText, tokenEstimate: 'estimateTokens' },
    },
    {
      durationMs: o.steps.length * 10_000,
      requests,
      succeeded,
      errorsByStatus: o.errorsByStatus ?? (requests > succeeded ? { '503': requests - succeeded } : {}),
      latencyMs: { p50: o.p95 / 2, p90: o.p95 * 0.9, p95: o.p95, p99: o.p95 * 1.1, max: o.p95 * 1.2, mean: o.p95 / 2 },
      // Each answer gets the three response checks; a non-2xx fails all three.
      checks: o.checks ?? ['status is 200', 'data length == batch', 'embedding dimensions == expected'].map((name) => ({ name, passes: succeeded, fails: requests - succeeded })),
      steps: o.steps,
    },
  );
  writeFileSync(join(dir, file), JSON.stringify({ schema: 'embedctl.load-test/v1', ...report }));
  return report;
}
const step = (connections: number, succeeded: number, p95Ms: number, requests = succeeded): StepMeasurement => ({ stage: 0, connections, durationMs: 10_000, requests, succeeded, p95Ms });

// 20,000 embeddings/min (500 requests x 8 in 12 s) of 256-token texts: the priced length, so no conversion.
loadTest('cap.json', { steps: [{ ...step(4, 500, 80), durationMs: 12_000 }], p95: 80, tokensPerText: 256 });

const GUIDE = ['--queries-per-month', '1M', '--tokens-per-query', '10', '--corpus-tokens', '100M', '--churn', '10%'];

interface Doc {
  schema: string;
  workload: { tokensPerMonth: number; embeddingsPerMonth: number; peakEmbeddingsPerMinute: number };
  hosted: { monthly: number; initialIndexing: number; model: string };
  breakEven: Record<string, number | null>;
  monthly: Record<string, { total: number; instances: number; compute: number; egress: number } | number>;
  volumes: Array<Record<string, number | boolean>>;
  triggers: Array<{ id: string; fired: boolean | null; value: number | null }>;
  recommendation: { decision: string; reason: string };
  assumptions: Array<{ name: string; value: unknown; unit: string; source: string }>;
  instance: { type: string; capacityPerInstance: number };
}

async function json(args: string[], o: Parameters<typeof runCli>[1] = {}) {
  const r = await runCli(['cost-report', ...args, '--json'], { cwd: dir, ...o });
  expect(r.code, r.stderr).toBe(0);
  return r.json<Doc>();
}

function oneLineError(r: { code: number; stderr: string; stdout: string }, field: RegExp) {
  expect(r.code).toBe(2);
  // Under --json the failure is the error document on stdout; otherwise stdout stays empty.
  if (r.stdout) expect(JSON.parse(r.stdout)).toMatchObject({ schema: 'embedctl.error/v1', error: { exitCode: 2 } });
  const first = r.stderr.trim().split('\n')[0]!;
  expect(first).toMatch(field);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
}

describe('cost-report: the migration guide example', () => {
  it('1M queries x 10 tokens + 10% of 100M re-indexed = 20M tokens/month, at Jina and OpenAI prices', async () => {
    const jina = await json(GUIDE);
    expect(jina.schema).toBe('embedctl.cost-report/v1');
    expect(jina.workload.tokensPerMonth).toBe(2e7); // 1e6 x 10 + 1e8 x 0.1
    expect(jina.hosted.model).toBe('jina-embeddings-v3');
    expect(jina.hosted.monthly).toBeCloseTo(0.4, 10); // 20 x $0.02
    expect(jina.hosted.initialIndexing).toBeCloseTo(2, 10); // 100M once: 100 x $0.02
    const openai = await json([...GUIDE, '--provider', 'openai', '--model', 'text-embedding-3-large']);
    expect(openai.hosted.monthly).toBeCloseTo(2.6, 10); // 20 x $0.13
    expect(openai.hosted.initialIndexing).toBeCloseTo(13, 10);
    // self-hosted g4dn.xlarge on-demand: 383.98 compute + 8 EBS + 5 snapshot + 1.30 monitoring = 398.28,
    // egress: 1,039,062.5 texts x 384 x 20.8 B = 8.3 GB, inside the free 100 GB
    const od = openai.monthly.onDemand as { total: number; instances: number; egress: number };
    expect(od.total).toBeCloseTo(398.28, 6);
    expect(od.instances).toBe(1);
    expect(od.egress).toBe(0);
    // break-even for the guide's mix (0.051953 texts per token, 1 instance up to 4.2B):
    // each 1M tokens returns 51,953 texts x 384 x 20.8 B = 0.41496 GB, so egress is free up to
    // 100 / 0.41496 = 241M tokens and costs 0.41496 x 0.09 = $0.037346 per 1M beyond.
    // 398.28 + 0.037346 V - 9.0 = 0.13 V  (V in millions) -> V = 389.28 / 0.092654 = 4,201.4M
    expect(openai.breakEven.onDemand! / 1e9).toBeCloseTo(4.2014, 3);
    // at Jina's $0.02 the egress alone ($0.0373 per 1M) exceeds the hosted price: never
    expect(jina.breakEven.onDemand).toBeNull();
    expect(jina.recommendation.reason).toMatch(/never breaks even/);
    const q = jina.triggers.find((t) => t.id === 'queriesPerMonth')!;
    expect(q).toMatchObject({ fired: true, value: 1e6 });
    // indexed data: 1e8 / 256 chunks x 1024 dims x 4 B = 1.6 GB
    expect(jina.triggers.find((t) => t.id === 'indexedDataGb')!.value).toBeCloseTo(1.6, 10);
  });

  it('prints a table, a chart, the breakdown, triggers, a recommendation and sourced assumptions', async () => {
    const r = await runCli(['cost-report', ...GUIDE], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^20M \(yours\)\s+1\s+\$0\.40\s+\$398\.28\s+\$255\.93\s+\$167\.60$/m);
    expect(r.stdout).toMatch(/Monthly cost \(log scale\)/);
    expect(r.stdout).toMatch(/legend: # hosted, = on-demand, \* reserved 1y, \+ spot/);
    expect(r.stdout).toMatch(/Recommendation: (STAY HOSTED|HYBRID|MIGRATE): /);
    expect(r.stdout).toMatch(/queries per month\s+1000000\s+queries\/month\s+--queries-per-month/);
    expect(r.stdout).not.toMatch(/\x1b\[/); // CI=true: no colour
    expect(r.stderr).toBe('');
  });
});

describe('cost-report: colour', () => {
  it('colours the chart only on a TTY without NO_COLOR/CI', async () => {
    const tty = await runCli(['cost-report', '--tokens-per-month', '1e9'], { cwd: dir, isTTY: true, env: { CI: '' } });
    expect(tty.stdout).toMatch(/\x1b\[33m#+\x1b\[39m/);
    const noColor = await runCli(['cost-report', '--tokens-per-month', '1e9'], { cwd: dir, isTTY: true, env: { CI: '', NO_COLOR: '1' } });
    expect(noColor.stdout).not.toMatch(/\x1b\[/);
    expect(noColor.stdout).toMatch(/\|#+ +\$20\.00/);
  });
});

describe('cost-report: sizing and options', () => {
  it('sizes the fleet from the capacity at the SLO of a load-test report written by load-test', async () => {
    // 125 good requests x batch 8 in 10 s = 6,000 embeddings/min at p95 90 ms, of 256-token texts
    loadTest('load.json', { steps: [step(2, 125, 90)], p95: 90, tokensPerText: 256 });
    // 2e10 / 256 = 7.8125e7 texts -> 1,783.7/min avg -> 5,351/min peak / 6,000 per instance -> 1 instance
    const d = await json(['--tokens-per-month', '2e10', '--capacity-from', 'load.json', '--pricing', 'reserved']);
    const rs = d.monthly.reserved as { instances: number; compute: number };
    expect(d.instance.capacityPerInstance).toBe(6000);
    expect(rs.instances).toBe(1);
    expect(rs.compute).toBeCloseTo(0.331 * 730, 6);
    expect(Object.keys(d.breakEven)).toEqual(['reserved']);
    expect(d.triggers.find((t) => t.id === 'embeddingsPerMinute')!.fired).toBe(true);
    expect(d.assumptions.find((a) => a.name.startsWith('capacity per'))!.source).toMatch(/--capacity-from load\.json \(measured capacity at the SLO, best step at the SLO \(p95 < 500 ms, errors < 0\.05\): 2 connections/);
  });

  it('refuses a load test in which no request succeeded (every answer a 503), instead of sizing from requests/s', async () => {
    // The audit's run: 8,609 requests in 4 s, all 503, p95 2.8 ms; requests/s x batch x 60 came to 1,003,372.8/min.
    const r = loadTest('all-503.json', { steps: [step(1, 0, 3.6, 894), step(2, 0, 5.1, 1121), step(3, 0, 3.4, 2565), step(4, 0, 1.2, 4029)], p95: 2.79, tokensPerText: 45 });
    expect(r.verdict.gatesPass).toBe(false);
    expect(r.requestsPerSecond).toBeGreaterThan(0);
    const out = await runCli(['cost-report', '--tokens-per-month', '1e10', '--capacity-from', 'all-503.json', '--json'], { cwd: dir });
    oneLineError(out, /^embedctl: error: --capacity-from: .*all-503\.json: the load test measured no capacity at the SLO \(none of the 8609 requests succeeded.*error rate 100 %, gates FAILED \(http_req_failed rate<0\.05, checks rate>0\.95\)\)/);
    expect(out.stderr).toMatch(/hint: fix the errors the load test reports, then re-run `embedctl load-test --out <file>` at a load/);
  });

  it('refuses a load test where no step met the SLO: raw throughput past the knee is not capacity', async () => {
    // Every step answers, but at p95 900 ms and more against a 500 ms SLO.
    const r = loadTest('past-knee.json', { steps: [step(8, 400, 900), step(16, 500, 1400)], p95: 1300, tokensPerText: 256 });
    expect(r.embeddingsPerMinute).toBeGreaterThan(0);
    expect(r.capacity.embeddingsPerMinute).toBeNull();
    oneLineError(
      await runCli(['cost-report', '--tokens-per-month', '1e10', '--capacity-from', 'past-knee.json'], { cwd: dir }),
      /--capacity-from: .*no capacity at the SLO \(no step met the SLO \(p95 < 500 ms, errors < 0\.05\): lower the load or raise --p95/,
    );
  });

  it('a run past the knee still rates at its best step that met the SLO, and says its gates failed', async () => {
    // 2 connections: 200 x 8 / 10 s = 9,600/min at p95 120 ms; 8 connections at 900 ms push the run's p95 over 500.
    loadTest('knee.json', { steps: [step(2, 200, 120), step(8, 300, 900)], p95: 850, tokensPerText: 256 });
    const r = await runCli(['cost-report', '--tokens-per-month', '1e10', '--capacity-from', 'knee.json', '--json'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.json<Doc>().instance.capacityPerInstance).toBe(9600);
    expect(r.stderr).toMatch(/warning: --capacity-from: the load test failed its gates over the whole run \(http_req_duration p\(95\)<500\); the capacity is its best step that met the SLO/);
  });

  it('feeds the hosted latency trigger from --hosted-p95-ms only; the load test p95 is reported as the self-hosted p95', async () => {
    // The audit's slow self-hosted endpoint: p95 ~795 ms, under its --p95 2000 SLO.
    loadTest('slow.json', { steps: [step(4, 100, 725), step(8, 160, 796)], p95: 795, slo: 2000, tokensPerText: 256 });
    const args = ['--tokens-per-month', '1e10', '--capacity-from', 'slow.json', '--pricing', 'on-demand'];
    const d = await json(args);
    expect(d.triggers.find((t) => t.id === 'p95Ms')).toMatchObject({ fired: null, value: null, basis: expect.stringMatching(/not evaluated: pass --hosted-p95-ms/) });
    expect(d.recommendation.reason).not.toMatch(/p95 latency > 500 ms/);
    expect((d as unknown as { selfHosted: { latency: unknown } }).selfHosted.latency).toEqual({ p95Ms: 795, sloP95Ms: 2000, meetsSlo: true });
    expect(d.assumptions.find((a) => a.name.startsWith('self-hosted p95'))).toMatchObject({ value: 795, unit: 'ms', source: expect.stringMatching(/latencyMs\.p95 of slow\.json: meets its SLO p95 < 2000 ms; not the hosted latency trigger/) });

    const hosted = await json([...args, '--hosted-p95-ms', '620']);
    expect(hosted.triggers.find((t) => t.id === 'p95Ms')).toMatchObject({ fired: true, value: 620, basis: '--hosted-p95-ms' });
    const fast = await json([...args, '--hosted-p95-ms', '120']);
    expect(fast.triggers.find((t) => t.id === 'p95Ms')).toMatchObject({ fired: false, value: 120 });

    // A whole run over its SLO says so.
    loadTest('slow-over.json', { steps: [step(4, 100, 725), step(8, 160, 1900)], p95: 1500, slo: 1000, tokensPerText: 256 });
    const over = await json(['--tokens-per-month', '1e10', '--capacity-from', 'slow-over.json', '--pricing', 'on-demand']);
    expect((over as unknown as { selfHosted: { latency: unknown } }).selfHosted.latency).toEqual({ p95Ms: 1500, sloP95Ms: 1000, meetsSlo: false });
    expect(over.triggers.find((t) => t.id === 'p95Ms')!.fired).toBeNull();
  });

  it('converts capacity measured on short texts to the priced tokens per text, by tokens/min', async () => {
    // 9,600 embeddings/min of ~37.5-token texts = 360,000 tokens/min.
    loadTest('short.json', { steps: [step(2, 200, 120)], p95: 120, tokensPerText: 37.5 });
    const args = ['--tokens-per-month', '1e10', '--capacity-from', 'short.json', '--pricing', 'on-demand'];
    const r = await runCli(['cost-report', ...args, '--json'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    const d = r.json<Doc & { selfHosted: { capacity: Record<string, unknown> } }>();
    // 360,000 / 256 (the default --tokens-per-text) = 1,406.25 -> 1,406.3 embeddings/min per instance
    expect(d.instance.capacityPerInstance).toBe(1406.3);
    expect(d.selfHosted.capacity).toMatchObject({ embeddingsPerMinute: 9600, tokensPerText: 37.5, tokensPerMinute: 360_000 });
    expect(d.assumptions.find((a) => a.name.startsWith('measured capacity'))).toMatchObject({ value: 9600, unit: 'embeddings/min of ~37.5-token texts' });
    expect(d.assumptions.find((a) => a.name.startsWith('measured tokens'))).toMatchObject({ value: 360_000, unit: 'tokens/min' });
    expect(d.assumptions.find((a) => a.name.startsWith('capacity per'))).toMatchObject({ value: 1406.3, unit: 'embeddings/min of 256-token texts' });
    // 1e10 / 256 = 3.906e7 texts -> 2,675/min peak -> 2 instances of 1,406 (one of 9,600 unscaled)
    expect((d.monthly.onDemand as { instances: number }).instances).toBe(2);
    expect(r.stderr).toMatch(/warning: --capacity-from: capacity measured on ~37\.5-token texts is scaled by tokens to 256-token texts/);

    const text = await runCli(['cost-report', ...args], { cwd: dir });
    expect(text.stdout).toMatch(/1,406\.3 embeddings\/min each\)\nCapacity: .*9,600 embeddings\/min of ~37\.5-token texts = 360,000 tokens\/min; \/ 256 tokens per text = 1,406\.3 embeddings\/min/);

    // The same report priced at its own length: no conversion, no warning.
    const same = await runCli(['cost-report', ...args, '--tokens-per-text', '37.5', '--json'], { cwd: dir });
    expect(same.json<Doc>().instance.capacityPerInstance).toBe(9600);
    expect(same.stderr).not.toMatch(/scaled by tokens/);
  });

  it('refuses a report that does not record the tokens per text it sent', async () => {
    loadTest('no-tokens.json', { steps: [step(2, 200, 120)], p95: 120 });
    const r = await runCli(['cost-report', '--tokens-per-month', '1e10', '--capacity-from', 'no-tokens.json'], { cwd: dir });
    oneLineError(r, /--capacity-from: .*no-tokens\.json: the report does not record the tokens per text it sent, so its 9,600 embeddings\/min cannot be converted to 256-token texts \(--tokens-per-text\)/);
    expect(r.stderr).toMatch(/hint: re-run `embedctl load-test --out <file>` with this embedctl/);
    // A hand-written report with only embeddingsPerMinute (the old fallback) is refused the same way, naming what is missing.
    writeFileSync(join(dir, 'bare.json'), JSON.stringify({ schema: 'embedctl.load-test/v1', generatedAt: '2026-11-20T00:00:00Z', errorRate: 0, latencyMs: { p95: 50 }, embeddingsPerMinute: 20_000, requestsPerSecond: 50, batch: 8 }));
    oneLineError(await runCli(['cost-report', '--tokens-per-month', '1e10', '--capacity-from', 'bare.json'], { cwd: dir }), /--capacity-from: .*bare\.json: the report has no capacity at the SLO/);
  });

  it('--instances fixes the fleet; --load-balancer, engineering and EBS flags reach the total', async () => {
    const r3 = await runCli(['cost-report', '--tokens-per-month', '1e9', '--instances', '3', '--load-balancer', '--maintenance-hours', '2', '--hourly-rate', '150', '--ebs-gb', '50', '--pricing', 'on-demand', '--json'], { cwd: dir });
    const d = r3.json<Doc>();
    const od = d.monthly.onDemand as Record<string, number>;
    expect(od.instances).toBe(3);
    expect(od.ebs).toBeCloseTo(3 * 50 * 0.08, 10);
    expect(od.maintenance).toBe(300);
    expect(od.loadBalancer).toBeGreaterThan(730 * 0.0225);
    expect(r3.stderr).toBe('');
    expect(od.total).toBeCloseTo(od.compute! + od.ebs! + od.snapshots! + od.egress! + od.loadBalancer! + od.monitoring! + od.maintenance!, 9);
  });

  it('--encoding, --egress-share and --months reach egress and the horizon', async () => {
    // 2.56e10 / 256 = 1e8 texts x 384 dims x 16/3 B (base64) = 204.8 GB; (204.8 - 100) x 0.09 = 9.432
    const b64 = await json(['--tokens-per-month', '2.56e10', '--encoding', 'base64', '--pricing', 'spot', '--months', '24']);
    const spot = b64.monthly.spot as { egress: number; total: number };
    expect(spot.egress).toBeCloseTo(9.432, 6);
    const horizon = (b64 as unknown as { horizon: { months: number; spot: { selfHosted: number } } }).horizon;
    expect(horizon.months).toBe(24);
    expect(horizon.spot.selfHosted).toBeCloseTo(24 * spot.total, 6); // no set-up hours, no corpus
    const inRegion = await json(['--tokens-per-month', '2.56e10', '--egress-share', '0', '--pricing', 'spot']);
    expect((inRegion.monthly.spot as { egress: number }).egress).toBe(0);
  });

  it('warns when a fixed --instances cannot carry the peak', async () => {
    // 1e11 / 256 = 3.906e8 texts -> 8,918/min avg -> 26,755/min peak; 1 x 20,000 is short
    const r = await runCli(['cost-report', '--tokens-per-month', '1e11', '--instances', '1', '--capacity-from', 'cap.json'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: --instances 1 carry 20,000 embeddings\/min but the peak needs 26,755/);
  });

  it('a corpus re-indexed monthly with no queries leaves the queries trigger unevaluated', async () => {
    const d = await json(['--corpus-tokens', '1B', '--churn', '0.5']);
    expect(d.workload.tokensPerMonth).toBe(5e8);
    expect(d.triggers.find((t) => t.id === 'queriesPerMonth')!.fired).toBeNull();
  });

  it('reads the cost: section of embedctl.yaml and EMBEDCTL_* env, recording each source', async () => {
    const proj = mkdtempSync(join(dir, 'proj-'));
    writeFileSync(join(proj, 'embedctl.yaml'), 'cost:\n  tokensPerMonth: 500M\n  instanceType: g5.xlarge\n  peakFactor: 2\n');
    const d = await json([], { cwd: proj, env: { EMBEDCTL_INSTANCE_TYPE: 'g6.xlarge' } });
    expect(d.workload.tokensPerMonth).toBe(5e8);
    expect(d.instance.type).toBe('g6.xlarge'); // env beats the file
    const src = Object.fromEntries(d.assumptions.map((a) => [a.name, a.source]));
    expect(src['tokens per month']).toBe('embedctl.yaml: cost.tokensPerMonth');
    expect(src['peak factor (busiest minute / average minute)']).toBe('embedctl.yaml: cost.peakFactor');
    expect(src['engineering hourly rate']).toMatch(/^default: /);
    // a flag beats both; and a flag workload form beats the file's other form
    const f = await json(['--queries-per-month', '1000', '--tokens-per-query', '10'], { cwd: proj });
    expect(f.workload.tokensPerMonth).toBe(10_000);
  });

  it('--csv prints a parseable table of cost by volume', async () => {
    const r = await runCli(['cost-report', '--tokens-per-month', '3e9', '--csv'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    const rows = r.stdout.trim().split('\n').map((l) => l.split(','));
    expect(rows[0]).toEqual(['tokens_per_month', 'yours', 'instances', 'hosted_usd', 'on_demand_usd', 'reserved_usd', 'spot_usd']);
    expect(rows.slice(1).map((x) => Number(x[0]))).toEqual([1e6, 1e7, 1e8, 1e9, 3e9, 1e10]);
    const mine = rows.find((x) => x[1] === 'yes')!;
    expect(Number(mine[3])).toBeCloseTo(60, 4); // 3,000 x $0.02
    for (const row of rows.slice(1)) for (const cell of [row[3], row[4], row[5], row[6]]) expect(Number.isFinite(Number(cell))).toBe(true);
  });

  it('--html writes a self-contained report with an SVG line per series', async () => {
    const out = join(dir, 'sub', 'report.html');
    const r = await runCli(['cost-report', ...GUIDE, '--provider', 'openai', '--model', 'text-embedding-3-large', '--html', out], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/wrote .*report\.html/);
    const html = readFileSync(out, 'utf8');
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).not.toMatch(/<script|src="http|href="http/); // nothing to fetch
    const svg = html.slice(html.indexOf('<svg'), html.indexOf('</svg>'));
    const series = [...svg.matchAll(/<path d="M[^"]+" [^>]*data-series="([^"]+)"/g)].map((m) => m[1]);
    expect(series).toEqual([
      'hosted (text-embedding-3-large)',
      'self-hosted g4dn.xlarge on-demand',
      'self-hosted g4dn.xlarge reserved 1y',
      'self-hosted g4dn.xlarge spot',
    ]);
    expect(svg).toMatch(/your volume 20M/);
    expect(svg).toMatch(/break-even on-demand/);
    expect(html).toMatch(/<caption>Assumptions<\/caption>/);
  });

  it('--html: the legend and the marker labels sit clear of the data lines', async () => {
    const out = join(dir, 'placement.html');
    const r = await runCli(['cost-report', ...GUIDE, '--html', out], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    const svg = readFileSync(out, 'utf8').match(/<svg[\s\S]*<\/svg>/)![0];
    // Every vertex of every data line, and the plot's top and bottom edges (the grid lines).
    const ys = [...svg.matchAll(/<path d="([^"]+)"/g)].flatMap((m) => [...m[1]!.matchAll(/[ML][\d.]+,([\d.]+)/g)].map((p) => Number(p[1])));
    expect(ys.length).toBeGreaterThan(10);
    const gridYs = [...svg.matchAll(/<line x1="70" y1="([\d.]+)" x2="[\d.]+" y2="[\d.]+" class="grid"\/>/g)].map((m) => Number(m[1]));
    const plotTop = Math.min(...gridYs);
    const plotBottom = Math.max(...gridYs);
    expect(Math.min(...ys)).toBeGreaterThanOrEqual(plotTop - 0.1);
    expect(Math.max(...ys)).toBeLessThanOrEqual(plotBottom + 0.1);
    const legend = [...svg.matchAll(/<text x="[\d.]+" y="([\d.]+)"[^>]*class="legend">([^<]+)</g)];
    expect(legend.map((m) => m[2])).toHaveLength(4);
    for (const m of legend) expect(Number(m[1]), m[2]).toBeGreaterThan(plotBottom + 20); // below the axis labels
    const labels = [...svg.matchAll(/<text x="[\d.]+" y="([\d.]+)"[^>]*class="marker-label">([^<]+)</g)];
    expect(labels.length).toBeGreaterThan(0);
    for (const m of labels) expect(Number(m[1]), m[2]).toBeLessThan(plotTop);
    // One row each: no two labels share a line.
    expect(new Set(labels.map((m) => m[1])).size).toBe(labels.length);
  });
});

describe('cost-report: bad input is one line naming the field, exit 2', () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['negative', ['--tokens-per-month', '-5'], /--tokens-per-month: must be >= 0/],
    ['non-numeric', ['--tokens-per-month', 'lots'], /--tokens-per-month: expected a number/],
    ['zero workload', ['--tokens-per-month', '0'], /--tokens-per-month: .*0 tokens\/month/],
    ['no workload', [], /--tokens-per-month: no workload given/],
    ['both workload forms', ['--tokens-per-month', '1e9', '--queries-per-month', '1000', '--tokens-per-query', '5'], /--tokens-per-month: conflicts with --queries-per-month/],
    ['queries without tokens per query', ['--queries-per-month', '1000'], /--tokens-per-query: required with --queries-per-month/],
    ['churn without corpus', ['--queries-per-month', '1000', '--tokens-per-query', '5', '--churn', '0.1'], /--corpus-tokens: required with --churn/],
    ['unknown instance type', ['--tokens-per-month', '1e9', '--instance-type', 'p5.48xlarge'], /--instance-type: unknown instance type "p5\.48xlarge"; the built-in table knows g4dn\.xlarge, g4dn\.2xlarge, g5\.xlarge/],
    ['region without live pricing', ['--tokens-per-month', '1e9', '--region', 'eu-west-1'], /--region: the built-in price table is for us-east-1 only/],
    ['custom provider without price', ['--tokens-per-month', '1e9', '--provider', 'custom'], /--price-per-million: required with --provider custom/],
    ['unknown provider', ['--tokens-per-month', '1e9', '--provider', 'cohere'], /--provider: expected one of jina, openai, custom/],
    ['unknown hosted model', ['--tokens-per-month', '1e9', '--provider', 'openai', '--model', 'gpt-embed-9'], /--model: no built-in price for openai model "gpt-embed-9"/],
    ['bad pricing option', ['--tokens-per-month', '1e9', '--pricing', 'cheap'], /--pricing: expected one of on-demand, reserved, spot, all/],
    ['fractional instances', ['--tokens-per-month', '1e9', '--instances', '1.5'], /--instances: expected a whole number/],
    ['egress share over 1', ['--tokens-per-month', '1e9', '--egress-share', '2'], /--egress-share: must be a fraction/],
    ['missing capacity report', ['--tokens-per-month', '1e9', '--capacity-from', 'nope.json'], /--capacity-from: no such file/],
    ['csv and json', ['--tokens-per-month', '1e9', '--csv', '--json'], /--csv: choose one of --json and --csv/],
  ];
  for (const [name, args, re] of cases) {
    it(name, async () => oneLineError(await runCli(['cost-report', ...args], { cwd: dir }), re));
  }

  it('a report that is not a load-test report', async () => {
    writeFileSync(join(dir, 'wrong.json'), JSON.stringify({ schema: 'embedctl.verify-consistency/v1' }));
    oneLineError(await runCli(['cost-report', '--tokens-per-month', '1e9', '--capacity-from', 'wrong.json'], { cwd: dir }), /--capacity-from: .*embedctl\.load-test\/v1/);
  });

  it('EMBEDCTL_MODEL (the model a deployment serves) leaves the hosted model alone; EMBEDCTL_HOSTED_MODEL picks it', async () => {
    const served = await json(['--tokens-per-month', '1e9'], { env: { EMBEDCTL_MODEL: 'BAAI/bge-small-en-v1.5' } });
    expect(served.hosted.model).toBe('jina-embeddings-v3');
    // A priced hosted name left in EMBEDCTL_MODEL (where it used to go) is not priced silently.
    const old = await runCli(['cost-report', '--tokens-per-month', '1e9'], { cwd: dir, env: { EMBEDCTL_MODEL: 'jina-embeddings-v4' } });
    expect(old.code, old.stderr).toBe(0);
    expect(old.stderr).toContain('warning: EMBEDCTL_MODEL=jina-embeddings-v4 is the model a deployment serves; cost-report prices the hosted model from --model / EMBEDCTL_HOSTED_MODEL / cost.model, here jina-embeddings-v3');
    const hosted = await json(['--tokens-per-month', '1e9'], { env: { EMBEDCTL_MODEL: 'default', EMBEDCTL_HOSTED_MODEL: 'jina-embeddings-v4' } });
    expect(hosted.hosted.model).toBe('jina-embeddings-v4');
    oneLineError(await runCli(['cost-report', '--tokens-per-month', '1e9'], { cwd: dir, env: { EMBEDCTL_HOSTED_MODEL: 'nope' } }), /EMBEDCTL_HOSTED_MODEL: no built-in price for jina model "nope"/);
  });

  it('a bad value from the environment names the variable', async () => {
    oneLineError(await runCli(['cost-report', '--tokens-per-month', '1e9'], { cwd: dir, env: { EMBEDCTL_PEAK_FACTOR: 'high' } }), /EMBEDCTL_PEAK_FACTOR: expected a number/);
  });

  it('the same workload form from flag and env at different levels: the flag wins, no error', async () => {
    const d = await json(['--tokens-per-month', '1e9'], { env: { EMBEDCTL_QUERIES_PER_MONTH: '5000', EMBEDCTL_TOKENS_PER_QUERY: '3' } });
    expect(d.workload.tokensPerMonth).toBe(1e9);
  });
});

describe('cost-report: --out evidence for rollout', () => {
  it('writes the same document as --json, dated by the injected clock', async () => {
    const when = new Date('2027-01-04T09:00:00Z');
    const r = await runCli(['cost-report', '--tokens-per-month', '2B', '--json', '--out', 'reports/cost.json'], { cwd: dir, now: () => when });
    expect(r.code).toBe(0);
    const written = JSON.parse(readFileSync(join(dir, 'reports', 'cost.json'), 'utf8')) as Record<string, unknown>;
    expect(written).toEqual(r.json());
    expect(written.schema).toBe('embedctl.cost-report/v1');
    expect(written.generatedAt).toBe(when.toISOString());
  });
});
