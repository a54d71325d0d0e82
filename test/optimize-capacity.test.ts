// Measured capacity drives cost: load-test reports the embeddings/min sustained at the SLO (per
// step of constant concurrency, against a real runtime), and cost-report --capacity-from sizes the
// fleet from it instead of the labelled 60,000/min T4 default.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capacityAtSlo, type StepMeasurement } from '../src/core/loadtest-capacity.js';
import { buildReport, buildThresholds, type LoadTestReport } from '../src/core/loadtest.js';
import { runCli } from './helpers/cli.js';
import { startRuntime, type RuntimeHandle } from './helpers/runtime.js';

const SLO = buildThresholds(200, 0.05);
const step = (connections: number, succeeded: number, p95Ms: number, requests = succeeded): StepMeasurement => ({ stage: 0, connections, durationMs: 10_000, requests, succeeded, p95Ms });

describe('capacity at the SLO', () => {
  it('is the best step that met p95 and the error rate, not the raw peak', () => {
    const c = capacityAtSlo(SLO, 8, [step(1, 100, 40), step(4, 400, 90), step(8, 600, 180), step(16, 700, 450), step(32, 300, 60, 400)], { durationMs: 50_000, requests: 1900, succeeded: 1800, p95Ms: 400 });
    // 600 requests x 8 texts in 10 s = 28,800/min; the 16-connection step (33,600/min) broke p95,
    // the last one its error rate (25%).
    expect(c.embeddingsPerMinute).toBe(28_800);
    expect(c.basis).toMatch(/8 connections, p95 180 ms/);
    expect(c.slo).toEqual({ p95Ms: 200, maxErrorRate: 0.05 });
    expect(c.steps.map((s) => s.meetsSlo)).toEqual([true, true, true, false, false]);
  });

  it('is null when nothing met the SLO; a run without steps (k6) counts as a whole', () => {
    expect(capacityAtSlo(SLO, 8, [step(4, 400, 900)], { durationMs: 10_000, requests: 400, succeeded: 400, p95Ms: 900 }).embeddingsPerMinute).toBeNull();
    const k6 = capacityAtSlo(SLO, 4, undefined, { durationMs: 60_000, requests: 3000, succeeded: 3000, p95Ms: 120 });
    expect(k6.embeddingsPerMinute).toBe(12_000);
    expect(k6.basis).toMatch(/lower bound/);
    expect(capacityAtSlo(SLO, 4, undefined, { durationMs: 60_000, requests: 3000, succeeded: 3000, p95Ms: 320 }).embeddingsPerMinute).toBeNull();
  });

  it('ignores steps too short or too sparse to rate a machine on', () => {
    const c = capacityAtSlo(SLO, 8, [{ ...step(2, 300, 50), durationMs: 500 }, step(4, 10, 50), step(1, 100, 50)], { durationMs: 20_000, requests: 410, succeeded: 410, p95Ms: 50 });
    expect(c.embeddingsPerMinute).toBe(4_800);
  });
});

describe('load-test against a real runtime', () => {
  let rt: RuntimeHandle;
  beforeAll(async () => {
    rt = await startRuntime({ model: 'default' });
  }, 60_000);
  afterAll(async () => rt?.stop());

  it('reports per-step throughput and p95, and the capacity at its --p95', async () => {
    const r = await runCli(['load-test', '--json', '--engine', 'autocannon', '--target', rt.url, '--stages', '3s:2,3s:2', '--batch', '4', '--p95', '5000', '--max-requests', '3000']);
    expect(r.code, r.stderr).toBe(0);
    const doc = r.json<LoadTestReport>();
    // The ramp to 2 runs as a 1- and a 2-connection step, then the plateau.
    expect(doc.capacity.steps.map((s) => s.connections)).toEqual([1, 2, 2]);
    expect(doc.capacity.steps.every((s) => s.requests > 0 && s.p95Ms > 0)).toBe(true);
    expect(doc.capacity.steps.reduce((a, s) => a + s.requests, 0)).toBe(doc.requests);
    expect(doc.capacity.slo.p95Ms).toBe(5000);
    expect(doc.capacity.embeddingsPerMinute).toBeGreaterThan(0);
    expect(doc.capacity.embeddingsPerMinute).toBe(Math.max(...doc.capacity.steps.filter((s) => s.meetsSlo).map((s) => s.embeddingsPerMinute)));

  }, 60_000);
});

describe('cost-report --capacity-from a load-test report', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'embedctl-capacity-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('sizes instances from the measured capacity at the SLO and shows the default beside it', async () => {
    // Steps of 10 s: 200 x 8 texts = 9,600/min at p95 120 ms meets the 200 ms SLO; 14,400/min at 600 ms does not.
    const m = { durationMs: 20_000, requests: 500, succeeded: 500, errorsByStatus: {}, latencyMs: { p50: 100, p90: 500, p95: 550, p99: 700, max: 900, mean: 200 }, checks: [], steps: [step(2, 200, 120), step(8, 300, 600)] };
    // Texts of ~128 tokens: 9,600 x 128 = 1,228,800 tokens/min, which is 4,800 of the priced 256-token texts.
    const texts = { source: 'texts.jsonl', count: 50, tokensPerText: 128, tokenEstimate: 'estimateTokens' };
    const report = buildReport({ generatedAt: new Date('2026-11-29T00:00:00Z'), engine: 'autocannon', target: 'http://127.0.0.1:8080', shape: 'openai', batch: 8, stages: [{ durationMs: 20_000, target: 8 }], thresholds: SLO, maxRequests: 10_000, texts }, m);
    expect(report.capacity.embeddingsPerMinute).toBe(9_600);
    expect(report.capacity.tokensPerMinute).toBe(1_228_800);
    expect(report.embeddingsPerMinute).toBe(12_000); // the raw figure over the run, queueing included
    writeFileSync(join(dir, 'load.json'), JSON.stringify({ schema: 'embedctl.load-test/v1', ...report }));

    // 5e11 tokens / 256 = 1.95e9 texts -> 44,589/min avg -> 133,767/min at a 3x peak.
    const args = ['cost-report', '--tokens-per-month', '5e11', '--pricing', 'on-demand', '--json'];
    const rated = (await runCli(args, { cwd: dir })).json<{ monthly: { onDemand: { instances: number } }; instance: { capacityPerInstance: number } }>();
    const measured = await runCli([...args, '--capacity-from', 'load.json'], { cwd: dir });
    expect(measured.code, measured.stderr).toBe(0);
    const d = measured.json<{ workload: { peakEmbeddingsPerMinute: number }; monthly: { onDemand: { instances: number } }; instance: { capacityPerInstance: number }; assumptions: Array<{ name: string; value: number; source: string }> }>();
    expect(rated.instance.capacityPerInstance).toBe(60_000);
    expect(d.instance.capacityPerInstance).toBe(4_800);
    expect(d.monthly.onDemand.instances).toBeGreaterThan(rated.monthly.onDemand.instances);
    expect(d.monthly.onDemand.instances).toBe(Math.ceil(d.workload.peakEmbeddingsPerMinute / 4_800));
    const cap = d.assumptions.find((a) => a.name.startsWith('capacity per'))!;
    expect(cap.source).toMatch(/measured capacity at the SLO, best step at the SLO \(p95 < 200 ms, errors < 0\.05\): 2 connections.*9,600 embeddings\/min of ~128-token texts = 1,228,800 tokens\/min; \/ 256 tokens per text = 4,800 embeddings\/min/);
    // The run went past the knee (p95 550 ms over the whole run): its gates failed, its best step still rates the machine.
    expect(measured.stderr).toMatch(/the load test failed its gates over the whole run \(http_req_duration p\(95\)<200/);
    expect(d.assumptions.find((a) => a.name.startsWith('default rated capacity'))).toMatchObject({ value: 60_000 });

    const text = await runCli(args.slice(0, -1).concat(['--capacity-from', 'load.json']), { cwd: dir });
    expect(text.stdout).toMatch(/Self-hosted: g4dn\.xlarge in us-east-1 \(NVIDIA T4, 4,800 embeddings\/min each\)\nCapacity: --capacity-from load\.json \(measured capacity at the SLO.*; default rating 60,000 embeddings\/min not used/);
    const plain = await runCli(args.slice(0, -1), { cwd: dir });
    expect(plain.stdout).toMatch(/60,000 embeddings\/min each\)\nCapacity: price table rated capacity for g4dn\.xlarge \(ASSUMPTION/);
  });
});
