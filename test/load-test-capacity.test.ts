// load-test -> cost-report --capacity-from, end to end against a stand-in embeddings server on
// 127.0.0.1: the report records what its capacity holds for (texts of a measured length, at the
// SLO), and cost-report sizes a fleet only from that, converted to the priced texts by tokens.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { capacityAtSlo } from '../src/core/loadtest-capacity.js';
import { buildThresholds, type LoadTestReport } from '../src/core/loadtest.js';
import { runCli } from './helpers/cli.js';
import { startFakeEmbeddings } from './helpers/fake-embeddings.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'embedctl-lt-capacity-'));
  // Two texts: 40 characters (40/4 + 1 = 11 tokens) and 200 (200/4 + 1 = 51): ~31 tokens each on average.
  writeFileSync(join(dir, 'texts.txt'), `${'a'.repeat(40)}\n${'b'.repeat(200)}\n`);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(stops.splice(0).map((s) => s()));
});
async function server(o: Parameters<typeof startFakeEmbeddings>[0] = {}) {
  const s = await startFakeEmbeddings(o);
  stops.push(s.stop);
  return s;
}

// One 3 s step at 1 connection: long enough (>= 2 s, >= 20 requests) to rate.
const LOAD = ['load-test', '--engine', 'autocannon', '--stages', '3s:1', '--batch', '4', '--texts', 'texts.txt'];
const saved = (file: string) => JSON.parse(readFileSync(join(dir, file), 'utf8')) as LoadTestReport;

describe('load-test records what its capacity holds for', () => {
  it('the mean tokens per text it sent and the capacity in tokens/min; cost-report converts by them', async () => {
    const s = await server();
    const r = await runCli([...LOAD, '--target', s.url, '--out', 'ok.json'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    const rep = saved('ok.json');
    expect(rep.texts).toMatchObject({ count: 2, tokensPerText: 31, source: join(dir, 'texts.txt') });
    const epm = rep.capacity.embeddingsPerMinute!;
    expect(epm).toBeGreaterThan(0);
    expect(rep.capacity.tokensPerMinute).toBe(Math.round(epm * 31));
    expect(r.stdout).toMatch(/texts sent\s+2 from .*texts\.txt, ~31 tokens each \(estimate\)/);
    expect(r.stdout).toMatch(/capacity at the SLO \(cost-report --capacity-from\)\s+[\d,]+ embeddings\/min = [\d,]+ tokens\/min/);

    // Priced at 62 tokens per text, twice the length sent: half the embeddings/min per instance.
    const c = await runCli(['cost-report', '--tokens-per-month', '1e10', '--tokens-per-text', '62', '--capacity-from', 'ok.json', '--pricing', 'on-demand', '--json'], { cwd: dir });
    expect(c.code, c.stderr).toBe(0);
    const d = c.json<{ instance: { capacityPerInstance: number }; selfHosted: { capacity: { embeddingsPerMinute: number; tokensPerText: number; tokensPerMinute: number } } }>();
    expect(d.selfHosted.capacity).toMatchObject({ embeddingsPerMinute: epm, tokensPerText: 31, tokensPerMinute: rep.capacity.tokensPerMinute });
    expect(d.instance.capacityPerInstance).toBeCloseTo(rep.capacity.tokensPerMinute! / 62, 1);
  }, 30_000);

  it('a run where every request got 503 still writes its report, and cost-report refuses to size from it', async () => {
    const s = await server({ script: (_n, req) => (req.path === '/v1/embeddings' ? { status: 503 } : undefined) });
    const r = await runCli([...LOAD, '--target', s.url, '--out', 'all-503.json'], { cwd: dir });
    expect(r.code).toBe(3);
    const rep = saved('all-503.json');
    expect(rep.errorRate).toBe(1);
    expect(rep.requestsPerSecond).toBeGreaterThan(0);
    expect(rep.capacity).toMatchObject({ embeddingsPerMinute: null, tokensPerMinute: null, basis: `none of the ${rep.requests} requests succeeded: fix the endpoint's errors, then measure again` });

    const c = await runCli(['cost-report', '--tokens-per-month', '1e10', '--capacity-from', 'all-503.json'], { cwd: dir });
    expect(c.code).toBe(2);
    expect(c.stdout).toBe('');
    const [first, hint, ...rest] = c.stderr.trim().split('\n');
    expect(first).toMatch(/^embedctl: error: --capacity-from: .*all-503\.json: the load test measured no capacity at the SLO \(none of the \d+ requests succeeded.*error rate 100 %, gates FAILED/);
    expect(hint).toMatch(/^ {2}hint: fix the errors the load test reports, then re-run `embedctl load-test --out <file>`/);
    expect(rest).toEqual([]);
  }, 30_000);

  it('answers with status 200 and the wrong dimensions rate no capacity', async () => {
    const s = await server({ dim: 8 });
    const r = await runCli([...LOAD, '--target', s.url, '--dimensions', '16', '--out', 'wrong-dims.json'], { cwd: dir });
    expect(r.code).toBe(3);
    const rep = saved('wrong-dims.json');
    expect(rep.errorRate).toBe(0);
    expect(rep.capacity.embeddingsPerMinute).toBeNull();
    expect(rep.capacity.basis).toBe(`${rep.requests} answer(s) with status 2xx failed the response checks (data length or dimensions): fix the endpoint before rating its capacity`);
    const c = await runCli(['cost-report', '--tokens-per-month', '1e10', '--capacity-from', 'wrong-dims.json'], { cwd: dir });
    expect(c.code).toBe(2);
    expect(c.stderr).toMatch(/^embedctl: error: --capacity-from: .*no capacity at the SLO \(\d+ answer\(s\) with status 2xx failed the response checks/);
  }, 30_000);
});

describe('capacity at the SLO says why there is none', () => {
  const SLO = buildThresholds(2000, 0.05);
  it('steps under the SLO but too short to rate ask for longer stages, not less load', () => {
    // The audit's slow endpoint: 1.5 s steps of 4-36 requests at p95 ~725 ms, all under a 2,000 ms SLO.
    const steps = [4, 10, 16, 24].map((requests, i) => ({ stage: 0, connections: i + 2, durationMs: 1500, requests, succeeded: requests, p95Ms: 725 }));
    const c = capacityAtSlo(SLO, 8, steps, { durationMs: 6000, requests: 54, succeeded: 54, p95Ms: 730 });
    expect(c.embeddingsPerMinute).toBeNull();
    expect(c.basis).toMatch(/^no step long enough to rate \(each needs >= 2 s and >= 20 requests\) met the SLO \(p95 < 2000 ms, errors < 0\.05\): run longer stages \(raise --duration-scale\)$/);
  });
  it('steps over the SLO ask for less load', () => {
    const c = capacityAtSlo(SLO, 8, [{ stage: 0, connections: 8, durationMs: 10_000, requests: 100, succeeded: 100, p95Ms: 2500 }], { durationMs: 10_000, requests: 100, succeeded: 100, p95Ms: 2500 });
    expect(c.basis).toMatch(/lower the load or raise --p95/);
  });
});
