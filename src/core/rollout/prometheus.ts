/** Prometheus text exposition parsing and the two things rollout needs from it: rates and p95. */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const lm of (m[2] ?? '').matchAll(LABEL)) labels[lm[1]!] = lm[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    const v = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    if (!Number.isNaN(v)) out.push({ name: m[1]!, labels, value: v });
  }
  return out;
}

/** Health checks and /metrics scrapes would dilute the rates: keep the embeddings route when labelled. */
function isTrafficRoute(labels: Record<string, string>): boolean {
  const route = labels.route ?? labels.path ?? labels.handler;
  return route === undefined || /embed/.test(route);
}

export interface TrafficSnapshot {
  total: number;
  errors: number;
  /** Cumulative histogram: upper bound (seconds) -> count, sorted by bound. */
  buckets: Array<[number, number]>;
  /** Which metric families were found, for messages when something is missing. */
  found: { requests: boolean; histogram: boolean };
}

/** Sums `embedctl_requests_total` (5xx = error) and the duration histogram over label sets. */
export function snapshot(samples: Sample[], prefix = 'embedctl'): TrafficSnapshot {
  let total = 0;
  let errors = 0;
  let requests = false;
  const bucketMap = new Map<number, number>();
  for (const s of samples) {
    if (s.name === `${prefix}_requests_total` && isTrafficRoute(s.labels)) {
      requests = true;
      total += s.value;
      const status = Number(s.labels.status ?? s.labels.code ?? '200');
      if (status >= 500) errors += s.value;
    } else if (s.name === `${prefix}_request_duration_seconds_bucket` && isTrafficRoute(s.labels)) {
      const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
      if (!Number.isNaN(le)) bucketMap.set(le, (bucketMap.get(le) ?? 0) + s.value);
    }
  }
  const buckets = [...bucketMap.entries()].sort((a, b) => a[0] - b[0]);
  return { total, errors, buckets, found: { requests, histogram: buckets.length > 0 } };
}

/** The traffic between two scrapes; a counter that went down means the process restarted. */
export function delta(prev: TrafficSnapshot | undefined, cur: TrafficSnapshot): TrafficSnapshot {
  if (!prev || cur.total < prev.total) return cur;
  const prevB = new Map(prev.buckets);
  return {
    total: cur.total - prev.total,
    errors: Math.max(0, cur.errors - prev.errors),
    buckets: cur.buckets.map(([le, c]) => [le, Math.max(0, c - (prevB.get(le) ?? 0))]),
    found: cur.found,
  };
}

// Shared with the runtime's EMF reporter (common/quantile.ts).
export { histogramQuantile } from '../../../common/quantile.js';
