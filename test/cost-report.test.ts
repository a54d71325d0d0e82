import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildReport } from '../src/core/loadtest.js';
import { runCli } from './helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'embedctl-cost-'));
writeFileSync(join(dir, 'cap.json'), JSON.stringify({ schema: 'embedctl.load-test/v1', embeddingsPerMinute: 20_000 }));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

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
  it('sizes the fleet from a load-test report and takes its p95 for the latency trigger', async () => {
    const report = join(dir, 'load.json');
    writeFileSync(report, JSON.stringify({ schema: 'embedctl.load-test/v1', embeddingsPerMinute: 1000, latency: { p95: 620 }, target: 'http://127.0.0.1:1' }));
    // 2e10 / 256 = 7.8125e7 texts -> 1,783.7/min avg -> 5,351/min peak / 1,000 per instance -> 6 instances
    const d = await json(['--tokens-per-month', '2e10', '--capacity-from', 'load.json', '--pricing', 'reserved']);
    const rs = d.monthly.reserved as { instances: number; compute: number };
    expect(rs.instances).toBe(6);
    expect(rs.compute).toBeCloseTo(6 * 0.331 * 730, 6);
    expect(Object.keys(d.breakEven)).toEqual(['reserved']);
    expect(d.instance.capacityPerInstance).toBe(1000);
    expect(d.triggers.find((t) => t.id === 'p95Ms')).toMatchObject({ fired: true, value: 620 });
    expect(d.triggers.find((t) => t.id === 'embeddingsPerMinute')!.fired).toBe(true);
    expect(d.assumptions.find((a) => a.name.startsWith('capacity per'))!.source).toMatch(/--capacity-from load\.json \(measured embeddingsPerMinute/);
  });

  it('reads a report as load-test writes it (its buildReport, saved with the schema key)', async () => {
    // 1,000 good requests x batch 8 in 60 s = 8,000 embeddings/min; p95 650 ms
    const report = buildReport(
      { generatedAt: new Date('2026-11-20T00:00:00Z'), engine: 'autocannon', target: 'http://127.0.0.1:8080', shape: 'openai', batch: 8, stages: [{ durationMs: 60_000, target: 10 }], thresholds: [], maxRequests: 10_000 },
      { durationMs: 60_000, requests: 1000, succeeded: 1000, errorsByStatus: {}, latencyMs: { p50: 300, p90: 600, p95: 650, p99: 700, max: 900, mean: 350 }, checks: [] },
    );
    writeFileSync(join(dir, 'real-load.json'), JSON.stringify({ schema: 'embedctl.load-test/v1', ...report }));
    const d = await json(['--tokens-per-month', '1e10', '--capacity-from', 'real-load.json', '--pricing', 'on-demand']);
    expect(d.instance.capacityPerInstance).toBe(8000);
    // 1e10 / 256 = 3.906e7 texts -> 891.8/min avg -> 2,675/min peak -> 1 instance of 8,000
    expect((d.monthly.onDemand as { instances: number }).instances).toBe(1);
    expect(d.triggers.find((t) => t.id === 'p95Ms')).toMatchObject({ fired: true, value: 650 });
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
