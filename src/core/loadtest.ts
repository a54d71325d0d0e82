/**
 * Load-test logic shared by both engines (k6 and autocannon): profiles, stage parsing and scaling,
 * thresholds, request bodies, response checks, and the one report both engines produce.
 * Pure: no I/O. The report's field names are a contract (src/contracts/reports.ts: cost-report reads
 * `capacity` and `texts.tokensPerText`, rollout reads `latencyMs.p95`, `errorRate` and `thresholds`). k6's summary and script: loadtest-k6.ts;
 * request bodies and response checks: loadtest-requests.ts; capacity at the SLO: loadtest-capacity.ts.
 */

import { parseDuration } from '../../common/values.js';
import { capacityAtSlo, type Capacity, type StepMeasurement } from './loadtest-capacity.js';
// Importers keep one module to import from; the pieces live in files of their own.
export * from './loadtest-k6.js';
export * from './loadtest-requests.js';

export interface Stage {
  durationMs: number;
  /** VUs (k6) or connections (autocannon) at the end of the stage. */
  target: number;
}

export type Profile = 'smoke' | 'seed' | 'soak';
export const PROFILES: Record<Profile, string> = {
  smoke: '5s:2,20s:2,5s:0',
  seed: '2m:10,5m:50,5m:50,2m:0',
  soak: '2m:20,26m:20,2m:0',
};

export type Shape = 'openai' | 'jina';
export type Engine = 'k6' | 'autocannon';

/** The migration's success criteria; gates (exit 3) come from --p95 / --max-error-rate instead. */
export const SUCCESS_CRITERIA = { p95Ms: 100, errorRate: 0.01, embeddingsPerMinute: 10_000 } as const;

/** Longest run we accept: a typo like "50h" must not turn into a two-day load test. */
export const MAX_TOTAL_MS = 6 * 3600_000;
export const MIN_STAGE_MS = 1000;

/** Check names are identical in the k6 script and the autocannon engine, so reports compare. */
export const CHECK_NAMES = {
  status: 'status is 200',
  dataLength: 'data length == batch',
  dimensions: 'embedding dimensions == expected',
} as const;

/** One duration grammar for every command (common/values.ts); re-exported for the stage parser and its callers. */
export { parseDuration };

/** 90_000 -> "1m30s", 1500 -> "1500ms": a string both k6 and people read. */
export function formatDuration(ms: number): string {
  if (ms % 1000 !== 0) return `${ms}ms`;
  let s = ms / 1000;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const parts = [h ? `${h}h` : '', m ? `${m}m` : '', s || (!h && !m) ? `${s}s` : ''];
  return parts.join('');
}

/** "2m:10,5m:50,5m:50,2m:0" -> stages. Throws an Error naming the bad part. */
export function parseStages(text: string): Stage[] {
  const parts = text.split(',').map((p) => p.trim()).filter((p) => p !== '');
  if (parts.length === 0) throw new Error('expected stages like "2m:10,5m:50,2m:0" (duration:target, comma separated)');
  return parts.map((part, i) => {
    const m = /^([^:]+):\s*(\d+)$/.exec(part);
    if (!m) throw new Error(`stage ${i + 1} ${JSON.stringify(part)} is not duration:target (e.g. 2m:10)`);
    let durationMs: number;
    try {
      durationMs = parseDuration(m[1]!);
    } catch (err) {
      throw new Error(`stage ${i + 1}: ${(err as Error).message}`);
    }
    if (durationMs <= 0) throw new Error(`stage ${i + 1} ${JSON.stringify(part)} has no duration`);
    const target = Number(m[2]);
    if (target > 10_000) throw new Error(`stage ${i + 1} asks for ${target} VUs; the limit is 10000`);
    return { durationMs, target };
  });
}

export function formatStages(stages: Stage[]): string {
  return stages.map((s) => `${formatDuration(s.durationMs)}:${s.target}`).join(',');
}

/** Compresses every stage by `scale`, never below 1 s per stage (k6 and autocannon need time to ramp). */
export function scaleStages(stages: Stage[], scale: number): Stage[] {
  if (scale === 1) return stages.map((s) => ({ ...s }));
  return stages.map((s) => ({ target: s.target, durationMs: Math.max(MIN_STAGE_MS, Math.round((s.durationMs * scale) / 1000) * 1000) }));
}

export function totalDurationMs(stages: Stage[]): number {
  return stages.reduce((a, s) => a + s.durationMs, 0);
}

export function maxTarget(stages: Stage[]): number {
  return stages.reduce((a, s) => Math.max(a, s.target), 0);
}

export interface ThresholdSpec {
  /** The k6 metric the expression applies to. */
  name: 'http_req_duration' | 'http_req_failed' | 'checks';
  expression: string;
}

/**
 * The gates, written as k6 threshold expressions so both engines (and the user reading the k6
 * script) see the same thing. `checks` catches a target that answers 200 with the wrong shape,
 * which neither latency nor error rate would notice.
 */
export function buildThresholds(p95Ms: number, maxErrorRate: number): ThresholdSpec[] {
  const minCheckRate = round(1 - maxErrorRate, 6);
  return [
    { name: 'http_req_duration', expression: `p(95)<${p95Ms}` },
    { name: 'http_req_failed', expression: `rate<${maxErrorRate}` },
    { name: 'checks', expression: `rate>${minCheckRate}` },
  ];
}

export function k6Thresholds(specs: ThresholdSpec[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const s of specs) (out[s.name] ??= []).push(s.expression);
  return out;
}

/** Evaluates one k6-style expression ("p(95)<500", "rate<0.05", "rate>0.95") against values. */
export function evaluateThreshold(expression: string, values: Record<string, number>): { pass: boolean; actual: number } {
  const m = /^\s*([a-z]+(?:\(\d+(?:\.\d+)?\))?)\s*(<=|>=|<|>|==|===|!=)\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)\s*$/.exec(expression);
  if (!m) throw new Error(`unsupported threshold expression ${JSON.stringify(expression)}`);
  const actual = values[m[1]!];
  if (actual === undefined || Number.isNaN(actual)) return { pass: false, actual: NaN };
  const bound = Number(m[3]);
  const op = m[2]!;
  const pass =
    op === '<' ? actual < bound : op === '<=' ? actual <= bound : op === '>' ? actual > bound : op === '>=' ? actual >= bound : op === '!=' ? actual !== bound : actual === bound;
  return { pass, actual };
}

/** One autocannon run: `connections` for `durationMs`. */
export interface Phase {
  stage: number;
  connections: number;
  durationMs: number;
}

/**
 * Approximates k6's linear VU ramps with steps of constant connections (autocannon cannot ramp).
 * Each step uses the ramp's value at its midpoint (rounded), so the load over the stage matches
 * the linear ramp within half a connection; stages that sit at 0 VUs send nothing and are dropped.
 */
export function autocannonPhases(stages: Stage[], maxStepsPerStage = 10): Phase[] {
  const phases: Phase[] = [];
  let prev = 0;
  stages.forEach((s, i) => {
    const delta = s.target - prev;
    const steps = delta === 0 ? 1 : Math.max(1, Math.min(Math.abs(delta), Math.floor(s.durationMs / MIN_STAGE_MS), maxStepsPerStage));
    const base = Math.floor(s.durationMs / steps);
    for (let k = 0; k < steps; k++) {
      const mid = prev + (delta * (k + 0.5)) / steps;
      const connections = delta === 0 ? s.target : Math.max(1, Math.round(mid));
      const durationMs = k === steps - 1 ? s.durationMs - base * (steps - 1) : base;
      if (connections > 0) phases.push({ stage: i, connections, durationMs });
    }
    prev = s.target;
  });
  return phases;
}

/* ---------- the report ---------- */

/** What an engine measured, before thresholds and verdict. */
export interface Measurement {
  durationMs: number;
  requests: number;
  /** Requests that got a 2xx: the ones that produced embeddings. */
  succeeded: number;
  /** Failed requests by HTTP status, plus "network" and "timeout". */
  errorsByStatus: Record<string, number>;
  latencyMs: LatencyMs;
  checks: Array<{ name: string; passes: number; fails: number }>;
  /** Why the run ended early, if it did. */
  stoppedEarly?: 'max-requests' | 'interrupted';
  /** Threshold results as the engine judged them (k6 does this itself); otherwise computed here. */
  engineThresholds?: Array<{ name: string; expression: string; pass: boolean }>;
  /** Per step of constant concurrency (autocannon), for the capacity at the SLO. */
  steps?: StepMeasurement[];
  /** Answers by X-Embedctl-Backend ("none": no gateway header, a runtime answered directly). */
  backends?: Record<string, number>;
}

export interface LatencyMs {
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

export interface ThresholdResult {
  name: string;
  expression: string;
  actual: number;
  pass: boolean;
}

export interface Criterion {
  name: 'p95LatencyMs' | 'errorRate' | 'embeddingsPerMinute';
  expression: string;
  target: number;
  actual: number;
  pass: boolean;
}

export interface LoadTestReport {
  generatedAt: string;
  engine: Engine;
  target: string;
  /** Where the target came from ("as given", or a deployment's operator route). */
  via?: string;
  /** Who answered: selfhosted / hosted / mixed / direct (no gateway header). */
  answeredBy?: string;
  /** Answers by X-Embedctl-Backend. */
  backends?: Record<string, number>;
  shape: Shape;
  batch: number;
  dimensions: number | null;
  profile: string | null;
  stages: Array<{ duration: string; durationMs: number; target: number }>;
  durationMs: number;
  requests: number;
  requestsPerSecond: number;
  embeddingsPerMinute: number;
  latencyMs: LatencyMs;
  errorRate: number;
  errors: { total: number; byStatus: Record<string, number> };
  checks: { passed: number; failed: number; byName: Array<{ name: string; passes: number; fails: number }> };
  thresholds: ThresholdResult[];
  verdict: {
    /** The --p95 / --max-error-rate gates (and response checks): decide the exit code. */
    gatesPass: boolean;
    failedThresholds: string[];
    /** The migration's success criteria: reported beside the gates, never the exit code. */
    meetsSuccessCriteria: boolean;
    criteria: Criterion[];
    summary: string;
  };
  stoppedEarly: 'max-requests' | 'interrupted' | null;
  maxRequests: number;
  /** The texts requests drew from; their mean length is what the capacity below holds for. */
  texts: TextsSent | null;
  /** Sustained embeddings/min at the SLO (the --p95 and --max-error-rate gates): what cost-report sizes with. */
  capacity: Capacity;
}

/**
 * What the run sent. Requests draw texts uniformly at random (both engines), so the file's mean is
 * the mean per text sent. Tokens are the project's one estimate (the hosted-cost guard's), the
 * scale cost-report's --tokens-per-text is on.
 */
export interface TextsSent {
  source: string;
  count: number;
  tokensPerText: number;
  tokenEstimate: string;
}

export interface ReportInput {
  generatedAt: Date;
  engine: Engine;
  target: string;
  shape: Shape;
  batch: number;
  dimensions?: number;
  profile?: string;
  stages: Stage[];
  thresholds: ThresholdSpec[];
  maxRequests: number;
  texts?: TextsSent;
}

export function round(n: number, digits = 2): number {
  if (!Number.isFinite(n)) return n;
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export function buildReport(input: ReportInput, m: Measurement): LoadTestReport {
  const errorsTotal = Object.values(m.errorsByStatus).reduce((a, b) => a + b, 0);
  const errorRate = m.requests > 0 ? errorsTotal / m.requests : 0;
  const minutes = m.durationMs / 60_000;
  const embeddingsPerMinute = minutes > 0 ? (m.succeeded * input.batch) / minutes : 0;
  const passed = m.checks.reduce((a, c) => a + c.passes, 0);
  const failed = m.checks.reduce((a, c) => a + c.fails, 0);
  const checkRate = passed + failed > 0 ? passed / (passed + failed) : 0;
  const values: Record<string, Record<string, number>> = {
    http_req_duration: { 'p(50)': m.latencyMs.p50, 'p(90)': m.latencyMs.p90, 'p(95)': m.latencyMs.p95, 'p(99)': m.latencyMs.p99, max: m.latencyMs.max, avg: m.latencyMs.mean, med: m.latencyMs.p50 },
    http_req_failed: { rate: errorRate },
    checks: { rate: checkRate },
  };
  const thresholds: ThresholdResult[] = input.thresholds.map((t) => {
    const own = evaluateThreshold(t.expression, values[t.name] ?? {});
    // A run with no requests proves nothing: every gate fails rather than passing vacuously.
    let pass = m.requests > 0 && own.pass;
    const fromEngine = m.engineThresholds?.find((e) => e.name === t.name && e.expression === t.expression);
    if (fromEngine) pass = fromEngine.pass;
    return { name: t.name, expression: t.expression, actual: round(own.actual, 4), pass };
  });
  const criteria: Criterion[] = [
    { name: 'p95LatencyMs', expression: `p95 < ${SUCCESS_CRITERIA.p95Ms} ms`, target: SUCCESS_CRITERIA.p95Ms, actual: round(m.latencyMs.p95), pass: m.requests > 0 && m.latencyMs.p95 < SUCCESS_CRITERIA.p95Ms },
    { name: 'errorRate', expression: `errors < ${SUCCESS_CRITERIA.errorRate * 100}%`, target: SUCCESS_CRITERIA.errorRate, actual: round(errorRate, 6), pass: m.requests > 0 && errorRate < SUCCESS_CRITERIA.errorRate },
    { name: 'embeddingsPerMinute', expression: `>= ${SUCCESS_CRITERIA.embeddingsPerMinute.toLocaleString('en-US')} embeddings/min`, target: SUCCESS_CRITERIA.embeddingsPerMinute, actual: round(embeddingsPerMinute, 1), pass: embeddingsPerMinute >= SUCCESS_CRITERIA.embeddingsPerMinute },
  ];
  const failedThresholds = thresholds.filter((t) => !t.pass).map((t) => `${t.name} ${t.expression}`);
  // Answers with the right status and the wrong body: every non-2xx fails all three checks, so the
  // body checks' surplus over the status check counts the 2xx that were not embeddings.
  const fails = (name: string) => m.checks.find((c) => c.name === name)?.fails ?? 0;
  const wrongAnswers = Math.max(0, Math.max(fails(CHECK_NAMES.dataLength), fails(CHECK_NAMES.dimensions)) - fails(CHECK_NAMES.status));
  const gatesPass = failedThresholds.length === 0;
  const meets = criteria.every((c) => c.pass);
  const missed = criteria.filter((c) => !c.pass).map((c) => c.name);
  const summary = `gates ${gatesPass ? 'passed' : `FAILED (${failedThresholds.join(', ')})`}; migration criteria ${meets ? 'met' : `not met (${missed.join(', ')})`}`;
  return {
    generatedAt: input.generatedAt.toISOString(),
    engine: input.engine,
    target: input.target,
    shape: input.shape,
    batch: input.batch,
    dimensions: input.dimensions ?? null,
    profile: input.profile ?? null,
    stages: input.stages.map((s) => ({ duration: formatDuration(s.durationMs), durationMs: s.durationMs, target: s.target })),
    durationMs: Math.round(m.durationMs),
    requests: m.requests,
    requestsPerSecond: m.durationMs > 0 ? round(m.requests / (m.durationMs / 1000)) : 0,
    embeddingsPerMinute: round(embeddingsPerMinute, 1),
    latencyMs: {
      p50: round(m.latencyMs.p50),
      p90: round(m.latencyMs.p90),
      p95: round(m.latencyMs.p95),
      p99: round(m.latencyMs.p99),
      max: round(m.latencyMs.max),
      mean: round(m.latencyMs.mean),
    },
    errorRate: round(errorRate, 6),
    errors: { total: errorsTotal, byStatus: m.errorsByStatus },
    checks: { passed, failed, byName: m.checks },
    thresholds,
    verdict: { gatesPass, failedThresholds, meetsSuccessCriteria: meets, criteria, summary },
    stoppedEarly: m.stoppedEarly ?? null,
    maxRequests: input.maxRequests,
    texts: input.texts ? { ...input.texts, tokensPerText: round(input.texts.tokensPerText, 2) } : null,
    capacity: capacityAtSlo(
      input.thresholds,
      input.batch,
      m.steps,
      { durationMs: m.durationMs, requests: m.requests, succeeded: m.succeeded, p95Ms: m.latencyMs.p95 },
      { tokensPerText: input.texts ? round(input.texts.tokensPerText, 2) : undefined, wrongAnswers },
    ),
  };
}

/* ---------- targets ---------- */

/** Loopback only by default: a load test aimed at someone else's API is an attack. */
export function isLoopback(url: URL): boolean {
  const h = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === '0:0:0:0:0:0:0:1';
}

/** A bare origin means our runtime's (and the hosted APIs') embeddings route. */
export function embeddingsUrl(raw: string): URL {
  const url = new URL(raw);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`expected an http(s) URL, got ${JSON.stringify(raw)}`);
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/v1/embeddings';
  return url;
}
