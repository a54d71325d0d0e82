import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { isFallback, parseGatewayLogLine } from '../../common/gateway-log.js';
import type { CloudWatchClient, MetricDataQuery } from '@aws-sdk/client-cloudwatch';
import type { Evidence, Observation } from '../core/rollout/gates.js';
import { histogramQuantile, type TrafficSnapshot } from '../core/rollout/prometheus.js';
import { liveWindow } from './prometheus.js';
import { reportSidesProblem, type ExpectedTarget } from './evidence-targets.js';
import type { Contract } from '../contracts/contract.js';
import { DEFAULT_DEPLOYMENT, DEPLOYMENT_DIMENSION, LATENCY_P95_STAT, SERVICE_METRICS, SERVICE_NAMESPACE } from '../core/service-metrics.js';

/**
 * Reads what the rollout gates judge: the latest reports written by verify-consistency,
 * rag-overlap, load-test and cost-report (`--out`), the runtime's Prometheus /metrics, and
 * CloudWatch. Never throws for missing or odd evidence: it returns an Observation whose note says
 * what is missing, so the gate turns inconclusive and names the command that produces it.
 */

export interface CloudWatchSource {
  region: string;
  namespace: string;
  dimensions: Array<{ Name: string; Value: string }>;
  requestsMetric: string;
  errorsMetric: string;
  /** A latency metric in milliseconds. */
  latencyMetric: string;
  /**
   * The statistic that makes latencyMetric a p95: `Maximum` for embedctl's RequestLatencyP95
   * (already a p95 per runtime and interval: the worst one is taken), `p95` for a metric with one
   * sample per request. Default CLOUDWATCH_DEFAULTS.latencyStat.
   */
  latencyStat?: string;
  windowSeconds: number;
}

/** What the runtime publishes (runtime/emf.ts, src/core/service-metrics.ts): rollout's defaults. */
export const CLOUDWATCH_DEFAULTS = {
  namespace: SERVICE_NAMESPACE,
  requestsMetric: SERVICE_METRICS.requests,
  errorsMetric: SERVICE_METRICS.errors,
  latencyMetric: SERVICE_METRICS.latencyP95,
  latencyStat: LATENCY_P95_STAT,
} as const;

/** Deployment=<EMBEDCTL_DEPLOYMENT or "main">: the one dimension the runtime's metrics carry. */
export function defaultCloudWatchDimensions(env: Record<string, string | undefined>): Array<{ Name: string; Value: string }> {
  return [{ Name: DEPLOYMENT_DIMENSION, Value: env.EMBEDCTL_DEPLOYMENT || DEFAULT_DEPLOYMENT }];
}

export interface EvidenceOptions {
  evidenceDir: string;
  metricsUrl?: string;
  metricsApiKey?: string;
  cloudwatch?: CloudWatchSource;
  /**
   * nginx's JSON access log (the embedctl_json format of templates/nginx/nginx.conf): error rate
   * and p95 of the requests the split sent to self-hosted in the last `windowMs`.
   */
  nginxAccessLog?: string;
  windowMs?: number;
  /** The previous /metrics snapshot: rates are then computed over the interval between the two. */
  previous?: TrafficSnapshot;
  /**
   * The rollout state's directory (statePaths().dir): each /metrics scrape is kept there, so a
   * one-off check measures the rate since an earlier scrape inside `windowMs`. Without it, or
   * without such a scrape, a second scrape `settleMs` later gives the rate.
   */
  stateDir?: string;
  /** Pause before that second scrape (default 10 s, capped at 60 s and at the window); 0: inconclusive instead. */
  settleMs?: number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  signal?: AbortSignal;
  /** What this rollout moves: consistency/overlap reports about another deployment or model are not evidence. */
  expected?: ExpectedTarget;
  /**
   * Where the previous read of the access log ended: only the lines written since are judged (a
   * watch's ticks; nginx stamps lines to the second, too coarse for a window of one interval).
   */
  accessLogOffset?: number;
  now: Date;
  timeoutMs?: number;
  /** Injected CloudWatch client (tests put aws-sdk-client-mock in front of the real one). */
  cloudwatchClient?: CloudWatchClient;
  fetch?: typeof fetch;
}

export interface CollectedEvidence {
  evidence: Evidence;
  /** The raw /metrics snapshot taken, to pass back as `previous` next time. */
  snapshot?: TrafficSnapshot;
  /** Where this read of the access log ended, to pass back as `accessLogOffset` next time. */
  accessLogOffset?: number;
}

export async function collectEvidence(opts: EvidenceOptions): Promise<CollectedEvidence> {
  const evidence: Evidence = {};
  // zod and the report schemas load when evidence is read, not when `rollout --help` starts.
  const { EVIDENCE_REPORTS, recommendedMonthly } = await import('../contracts/reports.js');
  const [consistency, overlap, load, cost] = await Promise.all([
    readReport(opts.evidenceDir, EVIDENCE_REPORTS.consistency),
    readReport(opts.evidenceDir, EVIDENCE_REPORTS.overlap),
    readReport(opts.evidenceDir, EVIDENCE_REPORTS.loadTest),
    readReport(opts.evidenceDir, EVIDENCE_REPORTS.cost),
  ]);

  // A comparison of hosted with hosted (or with a cache) says nothing about self-hosted: whatever it scored, no evidence.
  const notAbout = (doc: Parameters<typeof reportSidesProblem>[0]) => {
    const why = reportSidesProblem(doc, opts.expected);
    return why === undefined ? undefined : { notEvidence: `not evidence about self-hosted: ${why}; measure it with --candidate <self-hosted runtime URL> or --deployment` };
  };
  evidence.consistency = observe(consistency, (doc) => notAbout(doc) ?? { value: doc.cosine.min, note: ['min cosine', `mean ${doc.cosine.mean.toFixed(4)}`, sidesNote(doc)].filter(Boolean).join('; ') });
  evidence.overlap = observe(overlap, (doc) => {
    const bad = notAbout(doc);
    if (bad) return bad;
    // A different model cannot overlap the old index; rag-overlap then judges retrieval quality.
    if (!doc.reindex) return { value: doc.overlap.mean, ...(sidesNote(doc) ? { note: sidesNote(doc) } : {}) };
    const ratio = doc.quality?.ratio;
    return typeof ratio === 'number' ? { value: ratio, note: 're-index: judged on the nDCG@10 ratio candidate/reference' } : 'quality.ratio (a re-index report needs --qrels)';
  });
  evidence.monthlyCost = observe(cost, (doc) => {
    const m = recommendedMonthly(doc);
    return m ? { value: m.value, ...(m.note ? { note: m.note } : {}) } : 'monthly.<option>.total for any self-hosted option';
  });
  evidence.errorRate = observe(load, (doc) => ({ value: doc.errorRate }));
  evidence.p95LatencyMs = observe(load, (doc) => ({ value: doc.latencyMs.p95 }));

  // Live traffic beats a load test: it is what users see right now.
  let snap: TrafficSnapshot | undefined;
  let accessLogOffset: number | undefined;
  if (opts.metricsUrl) {
    const live = await liveWindow(opts.metricsUrl, { ...opts, windowMs: opts.windowMs ?? 300_000 });
    const src = live.source;
    if (!live.ok) {
      if ('snapshot' in live) snap = live.snapshot;
      const note = 'error' in live ? live.error : live.inconclusive;
      evidence.errorRate = { value: null, source: src, note };
      evidence.p95LatencyMs = { value: null, source: src, note };
    } else {
      snap = live.snapshot;
      const window = live.window;
      // No live request in a one-off check's window (0 % self-hosted before the first step, a
      // quiet night): the load-test report, if there is one, is the evidence, judged by its own
      // age and labelled. Never in a watch (a previous snapshot): there a silent interval must stay
      // "no new traffic", since a breaker or fallback leaves only re-probes reaching a failing side.
      const fromLoad = (o: Observation | undefined): Observation | undefined =>
        !opts.previous && o && o.value !== null ? { ...o, note: `no requests at ${src} in the window; from the load-test report${o.note ? ` (${o.note})` : ''}` } : undefined;
      const loadErrorRate = evidence.errorRate;
      const loadP95 = evidence.p95LatencyMs;
      if (!snap.found.requests) {
        evidence.errorRate = { value: null, source: src, note: 'no embedctl_requests_total counter in /metrics' };
      } else if (window.total <= 0) {
        evidence.errorRate = fromLoad(loadErrorRate) ?? { value: null, source: src, note: 'no requests in the window' };
      } else {
        evidence.errorRate = { value: window.errors / window.total, source: src, observedAt: opts.now, note: `${window.errors}/${window.total} requests failed` };
      }
      const p95 = histogramQuantile(0.95, window.buckets);
      evidence.p95LatencyMs =
        p95 === null
          ? snap.found.histogram
            ? (fromLoad(loadP95) ?? { value: null, source: src, note: 'no requests in the window' })
            : { value: null, source: src, note: 'no embedctl_request_duration_seconds histogram in /metrics' }
          : { value: p95 * 1000, source: src, observedAt: opts.now };
    }
  } else if (opts.nginxAccessLog) {
    const nl = await accessLogWindow(opts.nginxAccessLog, opts.now, opts.windowMs ?? 300_000, opts.accessLogOffset);
    evidence.errorRate = nl.errorRate;
    evidence.p95LatencyMs = nl.p95LatencyMs;
    accessLogOffset = nl.offset;
  } else if (opts.cloudwatch) {
    const cw = await cloudwatchTraffic(opts.cloudwatch, opts);
    evidence.errorRate = cw.errorRate;
    evidence.p95LatencyMs = cw.p95LatencyMs;
  }
  return { evidence, snapshot: snap, accessLogOffset };
}

type Read<T> = { path: string; doc?: T; problem?: string };

/** One report through its contract: missing, corrupt, another schema or a missing field is a note. */
async function readReport<T extends { generatedAt: string }>(dir: string, r: { file: string; contract: Contract<T> }): Promise<Read<T>> {
  const path = join(dir, r.file);
  let text: string;
  try {
    text = await fsp.readFile(path, 'utf8');
  } catch {
    return { path, problem: `no report at ${path}` };
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { path, problem: `${path} is not valid JSON` };
  }
  const out = r.contract.check(doc, path);
  return out.ok ? { path, doc: out.value } : { path, problem: out.problem };
}

/** A report that does not say which sides it compared is still read; the gate line says so. */
function sidesNote(doc: { reference?: unknown; candidate?: unknown }): string {
  return doc.reference && doc.candidate ? '' : 'the report does not record its sides (rerun the command to record who answered)';
}

/**
 * The report's generatedAt is when it was measured: the gates judge its age by that. `pick`
 * returns the value, the name of a missing field, or why the report is not evidence at all.
 */
function observe<T extends { generatedAt: string }>(r: Read<T>, pick: (doc: T) => { value: number; note?: string } | { notEvidence: string } | string): Observation {
  if (!r.doc) return { value: null, source: r.path, note: r.problem ?? 'missing' };
  const observedAt = new Date(r.doc.generatedAt);
  const got = pick(r.doc);
  if (typeof got === 'string') return { value: null, source: r.path, observedAt, note: `${r.path} has no ${got}` };
  if ('notEvidence' in got) return { value: null, source: r.path, observedAt, note: `${r.path} is ${got.notEvidence}` };
  return { value: got.value, source: r.path, observedAt, ...(got.note ? { note: got.note } : {}) };
}

const TAIL_BYTES = 8 * 1024 * 1024;

/**
 * Reads the tail of the access log. A request the split sent to self-hosted that nginx answered
 * from hosted (X-Embedctl-Fallback) is a self-hosted failure even though the user got a 200.
 */
async function accessLogWindow(path: string, now: Date, windowMs: number, fromOffset?: number): Promise<Pick<Evidence, 'errorRate' | 'p95LatencyMs'> & { offset?: number }> {
  const source = fromOffset === undefined ? `${path} (last ${Math.round(windowMs / 1000)}s)` : `${path} (new lines)`;
  let text: string;
  let offset: number | undefined;
  try {
    const fh = await fsp.open(path, 'r');
    try {
      const { size } = await fh.stat();
      // A file shorter than where we stopped was rotated: read the new one from its start.
      const start = fromOffset !== undefined && fromOffset <= size ? Math.max(fromOffset, size - TAIL_BYTES) : Math.max(0, size - TAIL_BYTES);
      const buf = Buffer.alloc(size - start);
      await fh.read(buf, 0, buf.length, start);
      // A line still being written is judged next time, whole.
      const complete = buf.subarray(0, buf.lastIndexOf(0x0a) + 1);
      offset = start + complete.length;
      text = complete.toString('utf8');
      if (start > 0 && start !== fromOffset) text = text.slice(text.indexOf('\n') + 1);
    } finally {
      await fh.close();
    }
  } catch (err) {
    const note = `cannot read ${path}: ${(err as Error).message}`;
    return { errorRate: { value: null, source, note }, p95LatencyMs: { value: null, source, note } };
  }
  const from = now.getTime() - windowMs;
  let total = 0;
  let errors = 0;
  const times: number[] = [];
  for (const line of text.split('\n')) {
    const e = parseGatewayLogLine(line);
    if (!e) continue;
    const t = e.time ? Date.parse(e.time) : NaN;
    if (e.split !== 'selfhosted') continue;
    if (fromOffset === undefined && (Number.isNaN(t) || t < from || t > now.getTime())) continue;
    total++;
    if ((e.status ?? 0) >= 500 || isFallback(e)) errors++;
    if (typeof e.request_time === 'number') times.push(e.request_time * 1000);
  }
  if (total === 0) {
    const note = 'no self-hosted requests in the window';
    return { errorRate: { value: null, source, note }, p95LatencyMs: { value: null, source, note }, offset };
  }
  times.sort((a, b) => a - b);
  const p95 = times.length ? times[Math.min(times.length - 1, Math.ceil(0.95 * times.length) - 1)]! : null;
  return {
    errorRate: { value: errors / total, source, observedAt: now, note: `${errors}/${total} self-hosted requests failed or fell back` },
    p95LatencyMs: p95 === null ? { value: null, source, note: 'no request_time in the log lines' } : { value: p95, source, observedAt: now },
    offset,
  };
}

async function cloudwatchTraffic(cw: CloudWatchSource, opts: EvidenceOptions): Promise<Pick<Evidence, 'errorRate' | 'p95LatencyMs'>> {
  const source = `cloudwatch:${cw.namespace} (${cw.region})`;
  // The SDK loads only when CloudWatch is the signal: `rollout --help` and the other signals skip it.
  const { CloudWatchClient, GetMetricDataCommand } = await import('@aws-sdk/client-cloudwatch');
  const client = opts.cloudwatchClient ?? new CloudWatchClient({ region: cw.region });
  const period = Math.max(60, Math.ceil(cw.windowSeconds / 60) * 60);
  const metric = (id: string, name: string, stat: string): MetricDataQuery => ({
    Id: id,
    MetricStat: { Metric: { Namespace: cw.namespace, MetricName: name, Dimensions: cw.dimensions }, Period: period, Stat: stat },
    ReturnData: true,
  });
  try {
    const out = await client.send(
      new GetMetricDataCommand({
        StartTime: new Date(opts.now.getTime() - period * 1000),
        EndTime: opts.now,
        MetricDataQueries: [
          metric('requests', cw.requestsMetric, 'Sum'),
          metric('errors', cw.errorsMetric, 'Sum'),
          metric('p95', cw.latencyMetric, cw.latencyStat ?? CLOUDWATCH_DEFAULTS.latencyStat),
        ],
      }),
    );
    const latest = (id: string) => {
      const r = out.MetricDataResults?.find((m) => m.Id === id);
      const idx = r?.Timestamps && r.Timestamps.length > 0 ? r.Timestamps.map((t, i) => [t.getTime(), i] as const).sort((a, b) => b[0] - a[0])[0]![1] : -1;
      return idx >= 0 ? { value: r!.Values![idx]!, at: r!.Timestamps![idx]! } : undefined;
    };
    const req = latest('requests');
    const err = latest('errors');
    const p95 = latest('p95');
    return {
      errorRate:
        req && req.value > 0
          ? { value: (err?.value ?? 0) / req.value, source, observedAt: req.at }
          : { value: null, source, note: `no ${cw.requestsMetric} datapoints in the last ${period}s` },
      p95LatencyMs: p95
        ? { value: p95.value, source, observedAt: p95.at }
        : { value: null, source, note: `no ${cw.latencyMetric} datapoints in the last ${period}s` },
    };
  } catch (e) {
    const note = `GetMetricData failed: ${(e as Error).message} (check credentials and cloudwatch:GetMetricData permission)`;
    return { errorRate: { value: null, source, note }, p95LatencyMs: { value: null, source, note } };
  }
}
