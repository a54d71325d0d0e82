/**
 * k6's side of the load test: the summary k6 hands to handleSummary read into a Measurement, and
 * templates/k6/load-test.js filled with the run's stages, thresholds and config.
 */
import { CHECK_NAMES, formatDuration, k6Thresholds, type Measurement, type Shape, type Stage, type ThresholdSpec } from './loadtest.js';

/* ---------- k6's handleSummary JSON -> Measurement ---------- */

interface K6Metric {
  type?: string;
  values?: Record<string, number>;
  thresholds?: Record<string, { ok: boolean }>;
}
export interface K6Summary {
  metrics?: Record<string, K6Metric>;
  root_group?: { checks?: Array<{ name: string; passes: number; fails: number }> | Record<string, { name: string; passes: number; fails: number }> };
  state?: { testRunDurationMs?: number };
}

/** Reads the summary k6 hands to handleSummary (the same shape `--summary-export` writes, values in ms). */
export function measurementFromK6(summary: K6Summary, specs: ThresholdSpec[]): Measurement {
  const metrics = summary.metrics ?? {};
  const v = (name: string, key: string): number => metrics[name]?.values?.[key] ?? 0;
  const requests = v('http_reqs', 'count');
  // http_req_failed is a Rate whose "passes" count the failed requests (true values).
  const failedCount = metrics.http_req_failed?.values?.passes ?? Math.round(v('http_req_failed', 'rate') * requests);
  const errorsByStatus: Record<string, number> = {};
  for (const [name, metric] of Object.entries(metrics)) {
    const m = /^embedctl_status_(.+)$/.exec(name);
    if (m && metric.values?.count) errorsByStatus[m[1]!] = metric.values.count;
  }
  // Who answered behind an embedctl gateway: counters the script keeps (absent: an older script).
  const backends: Record<string, number> = {};
  for (const [name, metric] of Object.entries(metrics)) {
    const m = /^embedctl_backend_(.+)$/.exec(name);
    if (m && metric.values?.count) backends[m[1]!] = metric.values.count;
  }
  const counted = Object.values(errorsByStatus).reduce((a, b) => a + b, 0);
  if (failedCount > counted) errorsByStatus.other = (errorsByStatus.other ?? 0) + (failedCount - counted);
  const rawChecks = summary.root_group?.checks ?? [];
  const checks = (Array.isArray(rawChecks) ? rawChecks : Object.values(rawChecks)).map((c) => ({ name: c.name, passes: c.passes, fails: c.fails }));
  const engineThresholds: Array<{ name: string; expression: string; pass: boolean }> = [];
  for (const s of specs) {
    const ok = metrics[s.name]?.thresholds?.[s.expression]?.ok;
    if (ok !== undefined) engineThresholds.push({ name: s.name, expression: s.expression, pass: ok });
  }
  const d = (key: string) => v('http_req_duration', key);
  return {
    durationMs: summary.state?.testRunDurationMs ?? 0,
    requests,
    succeeded: Math.max(0, requests - failedCount),
    errorsByStatus,
    latencyMs: { p50: d('p(50)') || d('med'), p90: d('p(90)'), p95: d('p(95)'), p99: d('p(99)'), max: d('max'), mean: d('avg') },
    checks,
    engineThresholds,
    ...(Object.keys(backends).length ? { backends } : {}),
  };
}

/* ---------- the k6 script ---------- */

export interface K6ScriptConfig {
  url: string;
  shape: Shape;
  model: string | null;
  dimensions: number | null;
  batch: number;
  headers: Record<string, string>;
  /** k6 duration string, e.g. "30s". */
  timeout: string;
  texts: string[];
  summaryPath: string;
  maxRequests: number;
}

/** Statuses the k6 script counts by name; anything else lands in "other". */
export const TRACKED_STATUSES = ['400', '401', '403', '404', '408', '413', '422', '429', '500', '502', '503', '504'];

/** Texts embedded in the script are capped so a huge corpus does not become a huge script. */
const MAX_SCRIPT_TEXTS = 2000;
const MAX_TEXT_CHARS = 8000;

function jsLiteral(value: unknown): string {
  // JSON is a JavaScript expression; U+2028/2029 are escaped for engines that predate ES2019.
  return JSON.stringify(value, null, 2).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/** Fills templates/k6/load-test.js: `options` (stages, thresholds) and the run's config, as JSON. */
export function renderK6Script(template: string, stages: Stage[], thresholds: ThresholdSpec[], config: K6ScriptConfig): string {
  for (const ph of ['__EMBEDCTL_OPTIONS__', '__EMBEDCTL_CONFIG__']) {
    if (!template.includes(ph)) throw new Error(`k6 template lacks the ${ph} placeholder`);
  }
  const options = {
    stages: stages.map((s) => ({ duration: formatDuration(s.durationMs), target: s.target })),
    thresholds: k6Thresholds(thresholds),
    summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(50)', 'p(90)', 'p(95)', 'p(99)', 'count'],
  };
  const full = {
    ...config,
    texts: config.texts.slice(0, MAX_SCRIPT_TEXTS).map((t) => t.slice(0, MAX_TEXT_CHARS)),
    trackedStatuses: TRACKED_STATUSES,
    checkNames: CHECK_NAMES,
  };
  return template.replace('__EMBEDCTL_OPTIONS__', () => jsLiteral(options)).replace('__EMBEDCTL_CONFIG__', () => jsLiteral(full));
}
