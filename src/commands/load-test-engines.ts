import type { Context } from '../context.js';
import { runAutocannon } from '../adapters/autocannon.js';
import { K6_EXIT, runK6 } from '../adapters/k6.js';
import { bodyMaker, checkResponse, measurementFromK6, renderK6Script, type autocannonPhases, type Engine, type Measurement, type Profile, type Shape, type Stage, type ThresholdSpec } from '../core/loadtest.js';
import { ExternalError, Interrupted } from '../errors.js';
import type { Logger } from '../ui/output.js';

/**
 * The two load engines behind `load-test`: autocannon in-process, k6 as a child process. Both
 * count who answered (X-Embedctl-Backend) so a run through a gateway says which side it loaded.
 */

export interface Plan {
  url: URL;
  engine: Engine;
  k6Binary?: string;
  profile?: Profile;
  stages: Stage[];
  thresholds: ThresholdSpec[];
  shape: Shape;
  model?: string;
  batch: number;
  dimensions?: number;
  maxRequests: number;
  timeoutS: number;
  headers: Record<string, string>;
  texts: string[];
  textsSource: string;
  /** Where the target came from: "as given", or the deployment's operator route. */
  via: string;
  /** --deployment: only self-hosted answers count; anything else is an error, never a pass. */
  deployment?: string;
}


/** Headers that carry credentials: kept out of a script saved with --save-script. */
export const SECRET_HEADERS = /^(authorization|proxy-authorization|x-api-key|api-key|cookie)$/i;

export function k6Config(plan: Plan, summaryPath: string, forSaving = false) {
  const headers = forSaving ? Object.fromEntries(Object.entries(plan.headers).filter(([k]) => !SECRET_HEADERS.test(k))) : plan.headers;
  return {
    url: plan.url.href,
    shape: plan.shape,
    model: plan.model ?? null,
    dimensions: plan.dimensions ?? null,
    batch: plan.batch,
    headers,
    timeout: `${Math.round(plan.timeoutS * 1000)}ms`,
    texts: plan.texts,
    summaryPath,
    maxRequests: plan.maxRequests,
  };
}

export async function runWithAutocannon(ctx: Context, plan: Plan, phases: ReturnType<typeof autocannonPhases>, log: Logger) {
  const expectedDims: { value?: number } = { value: plan.dimensions };
  const backends: Record<string, number> = {};
  let lastPhase = 0;
  let lastLog = 0;
  const m = await runAutocannon({
    url: plan.url.href,
    headers: plan.headers,
    phases,
    makeBody: bodyMaker(plan, plan.texts),
    check: (status, body, headers) => {
      countBackend(backends, headers);
      return checkResponse(status, body, plan.batch, expectedDims);
    },
    maxRequests: plan.maxRequests,
    timeoutS: plan.timeoutS,
    signal: ctx.signal,
    autocannonImpl: ctx.adapters.autocannon,
    onProgress: (p) => {
      // A line per step and every 10 s: readable in CI logs, alive on a long soak.
      if (p.phase !== lastPhase || p.elapsedMs - lastLog >= 10_000) {
        lastPhase = p.phase;
        lastLog = p.elapsedMs;
        log.info(`  ${(p.elapsedMs / 1000).toFixed(1)}s  stage ${p.stage}/${plan.stages.length}  step ${p.phase}/${p.phases}  ${p.connections} connections  ${p.requests} requests  ${p.errors} errors`);
      }
    },
  });
  return { m: { ...m, backends }, engineSaysFailed: false };
}

export async function runWithK6(ctx: Context, plan: Plan, template: string, log: Logger): Promise<{ m: Measurement; engineSaysFailed: boolean }> {
  const r = await runK6({
    binary: plan.k6Binary!,
    renderScript: (summaryPath) => renderK6Script(template, plan.stages, plan.thresholds, k6Config(plan, summaryPath)),
    env: ctx.env,
    cwd: ctx.cwd,
    signal: ctx.signal,
    onOutput: (chunk) => void ctx.stderr.write(chunk),
  });
  if (!r.summary) {
    if (r.interrupted) throw new Interrupted('load-test interrupted before k6 wrote its summary');
    throw new ExternalError('k6', `exited with code ${r.exitCode} without writing a summary${r.tail ? `: ${r.tail.split('\n').pop()}` : ''}`, {
      hint: r.exitCode === K6_EXIT.invalidConfig || r.exitCode === K6_EXIT.scriptException ? 'run with --save-script and `k6 run` it to see the error' : 'check the k6 output above',
    });
  }
  const known: number[] = [0, K6_EXIT.thresholdsFailed, K6_EXIT.scriptAborted, K6_EXIT.externalAbort];
  if (!r.interrupted && !known.includes(r.exitCode)) {
    throw new ExternalError('k6', `exited with code ${r.exitCode}${r.tail ? `: ${r.tail.split('\n').pop()}` : ''}`, { hint: 'check the k6 output above' });
  }
  const m = measurementFromK6(r.summary, plan.thresholds);
  if (r.interrupted || r.exitCode === K6_EXIT.externalAbort) m.stoppedEarly = 'interrupted';
  else if (r.exitCode === K6_EXIT.scriptAborted) m.stoppedEarly = 'max-requests';
  else if (r.exitCode !== 0 && r.exitCode !== K6_EXIT.thresholdsFailed) log.verbose(`k6 exited with ${r.exitCode}`);
  return { m, engineSaysFailed: r.exitCode === K6_EXIT.thresholdsFailed };
}

/** One answer's X-Embedctl-Backend, counted ("none": no gateway in front, a runtime answered). */
export function countBackend(backends: Record<string, number>, headers: Record<string, string | string[]> | undefined, status = 200): void {
  if (status === 0) return;
  let b: string | string[] | undefined;
  for (const [k, v] of Object.entries(headers ?? {})) if (k.toLowerCase() === 'x-embedctl-backend') b = v;
  const side = b === 'selfhosted' || b === 'hosted' ? b : 'none';
  backends[side] = (backends[side] ?? 0) + 1;
}
