/**
 * The autocannon engine: runs the load-test phases in-process with autocannon (an npm
 * dependency), one autocannon run per phase, and merges every request into one HDR histogram so
 * percentiles are exact over the whole run (averaging per-phase percentiles would be wrong).
 *
 * Phases end gracefully: when a phase's time is up, each connection finishes the request it has
 * in flight and then closes, so every request sent got its answer and the request count matches
 * what the server counted. autocannon's own duration only backs that up.
 */
import autocannon from 'autocannon';
import * as hdr from 'hdr-histogram-js';
import { connect } from 'node:net';
import type { CheckOutcome, Measurement, Phase } from '../core/loadtest.js';
import type { StepMeasurement } from '../core/loadtest-capacity.js';

export interface AutocannonRun {
  url: string;
  headers: Record<string, string>;
  phases: Phase[];
  /** A fresh request body for every request. */
  makeBody: () => string;
  /** Judges one answer; `headers` as the server sent them (names in their case). */
  check: (status: number, body: string, headers?: Record<string, string | string[]>) => CheckOutcome[];
  maxRequests: number;
  /** Per-request timeout, seconds. */
  timeoutS: number;
  signal?: AbortSignal;
  /** Called about once a second and at every phase start. */
  onProgress?: (p: Progress) => void;
  /** Test seam: autocannon's entry point. */
  autocannonImpl?: typeof autocannon;
}

export interface Progress {
  phase: number;
  phases: number;
  stage: number;
  connections: number;
  requests: number;
  errors: number;
  elapsedMs: number;
}

/** The parts of autocannon's per-connection Client we steer (not in its type definitions). */
interface AcClient {
  reqsMade: number;
  responseMax: number | undefined;
  destroyed: boolean;
  on(event: 'request' | 'timeout' | 'connError', fn: () => void): void;
}

/** What autocannon returns without a callback: an event emitter that is also a promise. */
type Tracker = PromiseLike<unknown> & {
  on(event: 'response', fn: (client: unknown, statusCode: number, bytes: number, responseTime: number) => void): void;
  stop(): void;
};

/** Hard-stop a phase this long after asking it to stop gracefully (a hung target must not hang us). */
const GRACE_MS = 2000;

export async function runAutocannon(o: AutocannonRun): Promise<Measurement> {
  const impl = o.autocannonImpl ?? autocannon;
  // Microseconds, up to an hour: 3 significant digits keeps p99 within 0.1 %.
  const hist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
  const errorsByStatus: Record<string, number> = {};
  const checkCounts = new Map<string, { passes: number; fails: number }>();
  let sent = 0;
  let responses = 0;
  let succeeded = 0;
  let failures = 0;
  let stoppedEarly: Measurement['stoppedEarly'];
  const started = performance.now();
  // Each phase is a step of constant concurrency: its own p95 and throughput give the capacity at the SLO.
  const steps: StepMeasurement[] = [];
  let stepHist: ReturnType<typeof hdr.build> | undefined;
  const bump = (key: string) => (errorsByStatus[key] = (errorsByStatus[key] ?? 0) + 1);

  let current: { clients: Set<AcClient>; stopGracefully: (emitter?: AcClient) => void } | undefined;
  const onAbort = () => {
    stoppedEarly ??= 'interrupted';
    current?.stopGracefully();
  };
  o.signal?.addEventListener('abort', onAbort, { once: true });
  let progressTimer: NodeJS.Timeout | undefined;
  try {
    for (let i = 0; i < o.phases.length; i++) {
      if (o.signal?.aborted || stoppedEarly) break;
      const phase = o.phases[i]!;
      const budget = o.maxRequests - sent;
      if (budget <= 0) {
        stoppedEarly = 'max-requests';
        break;
      }
      // Every connection sends at least one request, so never open more than the budget allows.
      const connections = Math.min(phase.connections, budget);
      const clients = new Set<AcClient>();
      let stopping = false;
      const stopGracefully = (emitter?: AcClient) => {
        if (stopping) return;
        stopping = true;
        for (const c of clients) {
          // autocannon closes a connection once reqsMade reaches responseMax, after the answer
          // to the request in flight. The emitter of the request that hit the budget has not
          // counted that request yet.
          if (!c.destroyed) c.responseMax = Math.max(1, c.reqsMade + (c === emitter ? 1 : 0));
        }
      };
      current = { clients, stopGracefully };
      stepHist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
      const stepStart = { at: performance.now(), succeeded, requests: responses + failuresWithoutResponse(errorsByStatus) };
      const progress = () =>
        o.onProgress?.({ phase: i + 1, phases: o.phases.length, stage: phase.stage + 1, connections, requests: responses + failures, errors: failures, elapsedMs: performance.now() - started });
      progress();
      clearInterval(progressTimer);
      progressTimer = setInterval(progress, 1000);

      const instance = impl({
        url: o.url,
        method: 'POST',
        headers: o.headers,
        connections,
        // The graceful stop below ends the phase; this only catches a phase that will not end.
        duration: (phase.durationMs + GRACE_MS) / 1000 + o.timeoutS,
        timeout: o.timeoutS,
        sampleInt: 50,
        pipelining: 1,
        excludeErrorStats: false,
        requests: [
          {
            method: 'POST',
            setupRequest: (req: Record<string, unknown>) => ({ ...req, body: o.makeBody() }),
            onResponse: (status: number, body: string, _context: unknown, headers?: Record<string, string | string[]>) => {
              for (const c of o.check(status, body, headers)) {
                const e = checkCounts.get(c.name) ?? { passes: 0, fails: 0 };
                if (c.ok) e.passes++;
                else e.fails++;
                checkCounts.set(c.name, e);
              }
            },
          },
        ],
        setupClient: (raw: unknown) => {
          const client = raw as AcClient;
          clients.add(client);
          client.on('request', () => {
            sent++;
            if (sent >= o.maxRequests) {
              stoppedEarly ??= 'max-requests';
              stopGracefully(client);
            }
          });
          client.on('timeout', () => {
            failures++;
            bump('timeout');
          });
          client.on('connError', () => {
            failures++;
            bump('network');
          });
        },
      } as unknown as autocannon.Options) as unknown as Tracker;

      instance.on('response', (_client, statusCode, _bytes, responseTime) => {
        responses++;
        hist.recordValue(Math.max(1, Math.round(responseTime * 1000)));
        stepHist?.recordValue(Math.max(1, Math.round(responseTime * 1000)));
        if (statusCode >= 200 && statusCode < 300) succeeded++;
        else {
          failures++;
          bump(String(statusCode));
        }
      });

      const phaseTimer = setTimeout(() => stopGracefully(), phase.durationMs);
      let hardTimer: NodeJS.Timeout | undefined;
      const armHardStop = () => {
        hardTimer ??= setTimeout(() => instance.stop(), GRACE_MS + o.timeoutS * 1000);
      };
      const checkStop = setInterval(() => {
        if (stopping) armHardStop();
      }, 50);
      try {
        await instance;
      } finally {
        clearTimeout(phaseTimer);
        clearTimeout(hardTimer);
        clearInterval(checkStop);
        current = undefined;
        steps.push({
          stage: phase.stage,
          connections,
          durationMs: performance.now() - stepStart.at,
          requests: responses + failuresWithoutResponse(errorsByStatus) - stepStart.requests,
          succeeded: succeeded - stepStart.succeeded,
          p95Ms: stepHist.totalCount > 0 ? stepHist.getValueAtPercentile(95) / 1000 : 0,
        });
        stepHist.destroy();
        stepHist = undefined;
      }
    }
  } finally {
    clearInterval(progressTimer);
    o.signal?.removeEventListener('abort', onAbort);
  }
  if (o.signal?.aborted) stoppedEarly = 'interrupted';

  const total = hist.totalCount;
  const pct = (p: number) => (total > 0 ? hist.getValueAtPercentile(p) / 1000 : 0);
  const measurement: Measurement = {
    durationMs: performance.now() - started,
    requests: responses + failuresWithoutResponse(errorsByStatus),
    succeeded,
    errorsByStatus,
    latencyMs: { p50: pct(50), p90: pct(90), p95: pct(95), p99: pct(99), max: total > 0 ? hist.maxValue / 1000 : 0, mean: total > 0 ? hist.mean / 1000 : 0 },
    checks: [...checkCounts].map(([name, c]) => ({ name, ...c })),
    stoppedEarly,
    steps,
  };
  hist.destroy();
  return measurement;
}

/** Network errors and timeouts are requests too, ones that never got a status. */
function failuresWithoutResponse(byStatus: Record<string, number>): number {
  return (byStatus.network ?? 0) + (byStatus.timeout ?? 0);
}

/**
 * Opens and closes one TCP connection to the target, so a target that is down fails fast with
 * a clear message instead of a run full of connection errors. Sends no HTTP request, so the
 * server's request counters stay exact.
 */
export function probeTcp(url: URL, timeoutMs = 3000): Promise<void> {
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.end();
      sock.destroy();
      resolve();
    });
    sock.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
