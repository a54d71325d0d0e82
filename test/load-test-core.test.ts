import { describe, expect, it } from 'vitest';
import {
  autocannonPhases,
  bodyMaker,
  buildReport,
  buildThresholds,
  checkResponse,
  embeddingsUrl,
  evaluateThreshold,
  formatDuration,
  isLoopback,
  measurementFromK6,
  parseDuration,
  parseStages,
  parseTexts,
  PROFILES,
  scaleStages,
  totalDurationMs,
  type Measurement,
} from '../src/core/loadtest.js';

describe('durations and stages', () => {
  it('parses k6-style durations', () => {
    expect(parseDuration('2m')).toBe(120_000);
    expect(parseDuration('1m30s')).toBe(90_000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('45')).toBe(45_000);
    for (const bad of ['', 'x', '2x', '1m 30s', 'm']) expect(() => parseDuration(bad), bad).toThrow(/bad duration/);
  });

  it('formats durations k6 accepts, round-tripping', () => {
    for (const ms of [1000, 90_000, 120_000, 3_600_000, 3_661_000, 1500]) expect(parseDuration(formatDuration(ms))).toBe(ms);
    expect(formatDuration(90_000)).toBe('1m30s');
    expect(formatDuration(1500)).toBe('1500ms');
  });

  it('the seed profile is 2m->10, 5m->50, 5m at 50, 2m->0', () => {
    expect(parseStages(PROFILES.seed)).toEqual([
      { durationMs: 120_000, target: 10 },
      { durationMs: 300_000, target: 50 },
      { durationMs: 300_000, target: 50 },
      { durationMs: 120_000, target: 0 },
    ]);
    expect(totalDurationMs(parseStages(PROFILES.soak))).toBe(30 * 60_000);
    expect(totalDurationMs(parseStages(PROFILES.smoke))).toBe(30_000);
  });

  it('rejects malformed stages naming the part', () => {
    expect(() => parseStages('')).toThrow(/expected stages/);
    expect(() => parseStages('2m:10,5m')).toThrow(/stage 2 "5m" is not duration:target/);
    expect(() => parseStages('0s:10')).toThrow(/has no duration/);
    expect(() => parseStages('1s:20000')).toThrow(/limit is 10000/);
  });

  it('--duration-scale compresses every stage, never below 1 s', () => {
    expect(scaleStages(parseStages(PROFILES.seed), 0.01).map((s) => s.durationMs)).toEqual([1000, 3000, 3000, 1000]);
    expect(scaleStages(parseStages('10s:5'), 0.001)).toEqual([{ durationMs: 1000, target: 5 }]);
    expect(scaleStages(parseStages('10s:5'), 2)).toEqual([{ durationMs: 20_000, target: 5 }]);
  });
});

describe('autocannon phases approximate the k6 ramps', () => {
  it('steps a ramp at its midpoints, keeps holds whole, drops idle stages, and preserves time', () => {
    const stages = parseStages('10s:10,5s:10,1s:0,3s:0');
    const phases = autocannonPhases(stages);
    expect(phases.filter((p) => p.stage === 0).map((p) => p.connections)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(phases.filter((p) => p.stage === 1)).toEqual([{ stage: 1, connections: 10, durationMs: 5000 }]);
    expect(phases.filter((p) => p.stage === 2)).toEqual([{ stage: 2, connections: 5, durationMs: 1000 }]);
    expect(phases.some((p) => p.stage === 3)).toBe(false);
    for (const i of [0, 1, 2]) {
      expect(phases.filter((p) => p.stage === i).reduce((a, p) => a + p.durationMs, 0)).toBe(stages[i]!.durationMs);
    }
  });

  it('the load over a ramp matches the linear ramp within half a connection (connection-seconds)', () => {
    for (const [spec, from, to] of [['2m:50', 0, 50], ['1m:7', 0, 7], ['30s:20,30s:3', 20, 3]] as const) {
      const stages = parseStages(spec);
      const last = stages.length - 1;
      const phases = autocannonPhases(stages).filter((p) => p.stage === last);
      const seconds = stages[last]!.durationMs / 1000;
      const connSeconds = phases.reduce((a, p) => a + (p.connections * p.durationMs) / 1000, 0);
      expect(Math.abs(connSeconds - ((from + to) / 2) * seconds), spec).toBeLessThanOrEqual(0.5 * seconds + 0.05);
    }
  });
});

describe('thresholds', () => {
  it('builds the k6 expressions from the gates', () => {
    expect(buildThresholds(500, 0.05)).toEqual([
      { name: 'http_req_duration', expression: 'p(95)<500' },
      { name: 'http_req_failed', expression: 'rate<0.05' },
      { name: 'checks', expression: 'rate>0.95' },
    ]);
    expect(buildThresholds(100, 0.01)[2]!.expression).toBe('rate>0.99');
  });

  it('evaluates k6 expressions', () => {
    expect(evaluateThreshold('p(95)<500', { 'p(95)': 499.9 })).toEqual({ pass: true, actual: 499.9 });
    expect(evaluateThreshold('p(95)<500', { 'p(95)': 500 }).pass).toBe(false);
    expect(evaluateThreshold('rate<=0.05', { rate: 0.05 }).pass).toBe(true);
    expect(evaluateThreshold('rate>0.95', { rate: 0.95 }).pass).toBe(false);
    expect(evaluateThreshold('p(99)<1', {}).pass).toBe(false);
    expect(() => evaluateThreshold('avg is low', {})).toThrow(/unsupported/);
  });
});

const measurement = (over: Partial<Measurement> = {}): Measurement => ({
  durationMs: 60_000,
  requests: 1000,
  succeeded: 990,
  errorsByStatus: { '503': 8, network: 2 },
  latencyMs: { p50: 20, p90: 40, p95: 60, p99: 90, max: 120, mean: 25 },
  checks: [
    { name: 'status is 200', passes: 990, fails: 10 },
    { name: 'data length == batch', passes: 990, fails: 10 },
  ],
  ...over,
});
const input = {
  generatedAt: new Date('2025-01-01T00:00:00Z'),
  engine: 'autocannon' as const,
  target: 'http://127.0.0.1:8080/v1/embeddings',
  shape: 'openai' as const,
  batch: 16,
  stages: parseStages('1m:10'),
  thresholds: buildThresholds(500, 0.05),
  maxRequests: 1e6,
};

describe('the report', () => {
  it('computes rates, embeddings/min from successful requests, gates and the migration verdict', () => {
    const r = buildReport(input, measurement());
    expect(r.errorRate).toBe(0.01);
    expect(r.errors).toEqual({ total: 10, byStatus: { '503': 8, network: 2 } });
    expect(r.embeddingsPerMinute).toBe(990 * 16);
    expect(r.requestsPerSecond).toBeCloseTo(1000 / 60, 2);
    expect(r.thresholds.every((t) => t.pass)).toBe(true);
    expect(r.verdict.gatesPass).toBe(true);
    // errors must be strictly below 1 %: exactly 1 % misses the criterion.
    expect(r.verdict.criteria.map((c) => [c.name, c.pass])).toEqual([
      ['p95LatencyMs', true],
      ['errorRate', false],
      ['embeddingsPerMinute', true],
    ]);
    expect(r.verdict.summary).toBe('gates passed; migration criteria not met (errorRate)');
    expect(r.generatedAt).toBe('2025-01-01T00:00:00.000Z');
    expect(r.stages).toEqual([{ duration: '1m', durationMs: 60_000, target: 10 }]);
  });

  it('a run with no requests fails every gate instead of passing vacuously', () => {
    const r = buildReport(input, measurement({ requests: 0, succeeded: 0, errorsByStatus: {}, checks: [], latencyMs: { p50: 0, p90: 0, p95: 0, p99: 0, max: 0, mean: 0 } }));
    expect(r.thresholds.map((t) => t.pass)).toEqual([false, false, false]);
    expect(r.verdict.gatesPass).toBe(false);
  });

  it('reads a k6 handleSummary document', () => {
    const summary = {
      root_group: { name: '', path: '', id: 'x', groups: [], checks: [{ name: 'status is 200', path: '::status is 200', id: 'a', passes: 1190, fails: 10 }] },
      state: { isStdOutTTY: false, isStdErrTTY: false, testRunDurationMs: 30_512.4 },
      metrics: {
        http_reqs: { type: 'counter', contains: 'default', values: { count: 1200, rate: 39.3 } },
        http_req_failed: { type: 'rate', contains: 'default', values: { rate: 10 / 1200, passes: 10, fails: 1190 }, thresholds: { 'rate<0.05': { ok: true } } },
        http_req_duration: {
          type: 'trend',
          contains: 'time',
          values: { avg: 31.2, min: 4.1, med: 25.5, max: 410.2, 'p(50)': 25.5, 'p(90)': 61.7, 'p(95)': 88.8, 'p(99)': 200.1 },
          thresholds: { 'p(95)<80': { ok: false } },
        },
        embedctl_status_503: { type: 'counter', contains: 'default', values: { count: 7, rate: 0.2 } },
        embedctl_status_timeout: { type: 'counter', contains: 'default', values: { count: 2, rate: 0.1 } },
      },
    };
    const specs = buildThresholds(80, 0.05);
    const m = measurementFromK6(summary, specs);
    expect(m).toMatchObject({ requests: 1200, succeeded: 1190, durationMs: 30_512.4 });
    // One failure k6 counted that our per-status counters did not name.
    expect(m.errorsByStatus).toEqual({ '503': 7, timeout: 2, other: 1 });
    expect(m.latencyMs).toEqual({ p50: 25.5, p90: 61.7, p95: 88.8, p99: 200.1, max: 410.2, mean: 31.2 });
    expect(m.engineThresholds).toEqual([
      { name: 'http_req_duration', expression: 'p(95)<80', pass: false },
      { name: 'http_req_failed', expression: 'rate<0.05', pass: true },
    ]);
    const r = buildReport({ ...input, engine: 'k6', thresholds: specs }, m);
    expect(r.verdict.failedThresholds).toEqual(['http_req_duration p(95)<80']);
  });
});

describe('targets, texts, bodies and checks', () => {
  it('loopback detection', () => {
    for (const u of ['http://127.0.0.1:8080', 'http://localhost', 'http://[::1]:80', 'http://127.8.0.3', 'http://api.localhost']) expect(isLoopback(new URL(u)), u).toBe(true);
    for (const u of ['https://api.openai.com', 'http://10.0.0.5', 'http://127.0.0.1.nip.io', 'http://0.0.0.0']) expect(isLoopback(new URL(u)), u).toBe(false);
  });

  it('a bare origin means /v1/embeddings; a path is kept', () => {
    expect(embeddingsUrl('http://127.0.0.1:8080').href).toBe('http://127.0.0.1:8080/v1/embeddings');
    expect(embeddingsUrl('http://127.0.0.1:8080/custom/embed').pathname).toBe('/custom/embed');
    expect(() => embeddingsUrl('ftp://x')).toThrow(/http\(s\)/);
  });

  it('parses texts files in three formats', () => {
    expect(parseTexts('a\n\n b \n', 'x.txt')).toEqual(['a', 'b']);
    expect(parseTexts('{"text":"a"}\n"b"\n{"input":"c"}\n', 'x.jsonl')).toEqual(['a', 'b', 'c']);
    expect(parseTexts('["a", {"text": "b"}]', 'x.json')).toEqual(['a', 'b']);
    expect(() => parseTexts('{"text":"a"}\nnot json\n', 'x.jsonl')).toThrow(/line 2 is not JSON/);
  });

  it('bodies are deterministic per seed, batch-sized and in the asked shape', () => {
    const texts = ['one', 'two', 'three', 'four'];
    const a = bodyMaker({ shape: 'jina', batch: 3, model: 'm', dimensions: 64 }, texts, 7);
    const b = bodyMaker({ shape: 'jina', batch: 3, model: 'm', dimensions: 64 }, texts, 7);
    const first = JSON.parse(a()) as Record<string, unknown>;
    expect(first).toMatchObject({ model: 'm', normalized: true, dimensions: 64 });
    expect(first.input).toHaveLength(3);
    expect(JSON.stringify(first)).toBe(b());
    const openai = JSON.parse(bodyMaker({ shape: 'openai', batch: 1 }, texts)()) as Record<string, unknown>;
    expect(openai).toEqual({ input: [expect.any(String)], encoding_format: 'float' });
  });

  it('checks learn the dimension from the first answer and catch a change', () => {
    const body = (n: number, dims: number) => JSON.stringify({ data: Array.from({ length: n }, () => ({ embedding: new Array(dims).fill(0) })) });
    const dims: { value?: number } = {};
    expect(checkResponse(200, body(2, 8), 2, dims).every((c) => c.ok)).toBe(true);
    expect(dims.value).toBe(8);
    expect(checkResponse(200, body(2, 4), 2, dims).map((c) => c.ok)).toEqual([true, true, false]);
    expect(checkResponse(200, body(1, 8), 2, dims).map((c) => c.ok)).toEqual([true, false, true]);
    expect(checkResponse(503, '{"error":{}}', 2, dims).map((c) => c.ok)).toEqual([false, false, false]);
    expect(checkResponse(200, 'not json', 2, dims).map((c) => c.ok)).toEqual([true, false, false]);
  });
});
