/**
 * CloudWatch Embedded Metric Format reporter: every interval, one JSON line appended to a file
 * with what the runtime did since the previous line (requests, errors, embeddings, tokens, latency
 * p50/p95). On the instance the CloudWatch agent ships that file to a log group, and CloudWatch
 * Logs turns each EMF line into metric datapoints (namespace Embedctl, dimension Deployment): no
 * AWS SDK or credentials in the runtime, and nothing lost when the network hiccups (the agent
 * retries from the file).
 * Spec: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
 *
 * Read-only over RuntimeMetrics: the values are the Prometheus counters and histogram /metrics
 * shows, differenced here, so CloudWatch and /metrics can never disagree about what happened.
 */
import { appendFile, mkdir, rename, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { histogramQuantile } from '../../common/quantile.js';
import { DEPLOYMENT_DIMENSION, SERVICE_METRICS, SERVICE_NAMESPACE } from '../../common/service-metrics.js';
import { EMBEDDING_ROUTES as ROUTE_LIST, type RuntimeMetrics } from './metrics.js';

/** The routes that are traffic (every API shape); health checks and scrapes would dilute every rate. */
const EMBEDDING_ROUTES: ReadonlySet<string> = new Set(ROUTE_LIST);

/** Cumulative values at one moment. */
export interface EmfSnapshot {
  requests: number;
  errors: number;
  throttled: number;
  embeddings: number;
  tokens: number;
  /** Cumulative request-duration histogram of the embeddings routes: [upper bound s, count]. */
  buckets: Array<[number, number]>;
}

export const ZERO_SNAPSHOT: EmfSnapshot = { requests: 0, errors: 0, throttled: 0, embeddings: 0, tokens: 0, buckets: [] };

export async function readSnapshot(m: RuntimeMetrics): Promise<EmfSnapshot> {
  const snap: EmfSnapshot = { ...ZERO_SNAPSHOT, buckets: [] };
  for (const v of (await m.requests.get()).values) {
    if (!EMBEDDING_ROUTES.has(String(v.labels.route))) continue;
    const status = Number(v.labels.status);
    snap.requests += v.value;
    if (status >= 500) snap.errors += v.value;
    else if (status === 429) snap.throttled += v.value;
  }
  const bucketMap = new Map<number, number>();
  for (const v of (await m.duration.get()).values) {
    // Bucket samples carry an "le" label that the Histogram's type does not declare.
    const labels = v.labels as Record<string, string | number | undefined>;
    if (!v.metricName?.endsWith('_bucket') || !EMBEDDING_ROUTES.has(String(labels.route))) continue;
    const le = labels.le === '+Inf' ? Infinity : Number(labels.le);
    bucketMap.set(le, (bucketMap.get(le) ?? 0) + v.value);
  }
  snap.buckets = [...bucketMap.entries()].sort((a, b) => a[0] - b[0]);
  snap.embeddings = (await m.inputs.get()).values.reduce((a, v) => a + v.value, 0);
  snap.tokens = (await m.tokens.get()).values.reduce((a, v) => a + v.value, 0);
  return snap;
}

export interface EmfMetricDef {
  Name: string;
  Unit: 'Count' | 'Milliseconds';
}

export interface EmfRecord {
  _aws: {
    Timestamp: number;
    CloudWatchMetrics: Array<{ Namespace: string; Dimensions: string[][]; Metrics: EmfMetricDef[] }>;
  };
  [key: string]: unknown;
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

/**
 * The EMF line for the interval between two snapshots. Counts are always present (a quiet
 * minute is a 0, not a gap); latency only when there was a request to measure. Percentiles are
 * Prometheus's histogram_quantile over the bucket deltas (linear inside the bucket), so with the
 * runtime's 0.5 s bucket bound "p95 > 500 ms" means exactly "more than 5% took over 0.5 s".
 */
export function emfRecord(prev: EmfSnapshot, cur: EmfSnapshot, o: { deployment: string; timestamp: number; intervalSeconds?: number }): EmfRecord {
  const d = (k: 'requests' | 'errors' | 'throttled' | 'embeddings' | 'tokens') => Math.max(0, cur[k] - prev[k]);
  const prevB = new Map(prev.buckets);
  const buckets = cur.buckets.map(([le, c]): [number, number] => [le, Math.max(0, c - (prevB.get(le) ?? 0))]);
  const values: Record<string, number> = {
    [SERVICE_METRICS.requests]: d('requests'),
    [SERVICE_METRICS.errors]: d('errors'),
    [SERVICE_METRICS.throttled]: d('throttled'),
    [SERVICE_METRICS.embeddings]: d('embeddings'),
    [SERVICE_METRICS.tokens]: d('tokens'),
  };
  const defs: EmfMetricDef[] = Object.keys(values).map((Name) => ({ Name, Unit: 'Count' }));
  const p50 = histogramQuantile(0.5, buckets);
  const p95 = histogramQuantile(0.95, buckets);
  if (p50 !== null && p95 !== null) {
    values[SERVICE_METRICS.latencyP50] = round3(p50 * 1000);
    values[SERVICE_METRICS.latencyP95] = round3(p95 * 1000);
    defs.push({ Name: SERVICE_METRICS.latencyP50, Unit: 'Milliseconds' }, { Name: SERVICE_METRICS.latencyP95, Unit: 'Milliseconds' });
  }
  return {
    _aws: {
      Timestamp: o.timestamp,
      CloudWatchMetrics: [{ Namespace: SERVICE_NAMESPACE, Dimensions: [[DEPLOYMENT_DIMENSION]], Metrics: defs }],
    },
    [DEPLOYMENT_DIMENSION]: o.deployment,
    // Plain fields (not metrics, not dimensions): searchable in Logs Insights, free in CloudWatch.
    Host: hostname(),
    ...(o.intervalSeconds !== undefined ? { IntervalSeconds: o.intervalSeconds } : {}),
    ...values,
  };
}

export interface EmfReporterOptions {
  metrics: RuntimeMetrics;
  path: string;
  intervalMs: number;
  deployment: string;
  /** Epoch milliseconds; injectable for tests. */
  now?: () => number;
  /** A failed write (full disk, permissions): reported, never thrown; serving goes on. */
  onError?: (err: Error) => void;
  /**
   * Past this size the file is renamed to <path>.1 (replacing the previous one) and a new one
   * begun, so a runtime that lives for months cannot fill the disk. About 600 bytes a line: the
   * default 32 MiB is two months at one line a minute. The agent reads by name pattern
   * (*.emf.log), so the renamed file is not shipped twice.
   */
  maxBytes?: number;
}

export const DEFAULT_EMF_MAX_BYTES = 32 * 1024 * 1024;

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}

export interface EmfReporter {
  /** Writes a line now for everything since the last one (the timer calls this). */
  flush(): Promise<void>;
  /** Stops the timer and writes the last partial interval, so a drained shutdown loses nothing. */
  stop(): Promise<void>;
}

export function startEmfReporter(o: EmfReporterOptions): EmfReporter {
  const now = o.now ?? Date.now;
  // Counters start at zero with the process, so the first line covers everything since start.
  let last = ZERO_SNAPSHOT;
  let lastAt = now();
  let madeDir = false;
  let lastError = '';
  // One write at a time, in order: a slow disk must not reorder or interleave lines.
  let chain: Promise<void> = Promise.resolve();

  const writeOnce = async () => {
    const cur = await readSnapshot(o.metrics);
    const at = now();
    const line = `${JSON.stringify(emfRecord(last, cur, { deployment: o.deployment, timestamp: at, intervalSeconds: round3((at - lastAt) / 1000) }))}\n`;
    try {
      if (!madeDir) {
        await mkdir(dirname(o.path), { recursive: true });
        madeDir = true;
      }
      if ((await sizeOf(o.path)) + line.length > (o.maxBytes ?? DEFAULT_EMF_MAX_BYTES)) await rename(o.path, `${o.path}.1`);
      await appendFile(o.path, line);
      lastError = '';
    } catch (err) {
      // Not advancing the baseline: the next line carries these counts, so totals stay right.
      const e = err as Error;
      if (e.message !== lastError) o.onError?.(e);
      lastError = e.message;
      return;
    }
    last = cur;
    lastAt = at;
  };
  const flush = () => (chain = chain.then(writeOnce, writeOnce));
  const timer = setInterval(() => void flush(), o.intervalMs);
  // The reporter never keeps a process alive that has nothing else to do.
  timer.unref();
  let stopped: Promise<void> | undefined;
  return {
    flush,
    stop: () =>
      (stopped ??= (() => {
        clearInterval(timer);
        return flush();
      })()),
  };
}
