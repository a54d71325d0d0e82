/**
 * Capacity at the SLO: the embeddings/min a target sustains while its p95 stays under the
 * --p95 gate and its errors under --max-error-rate. A load test ramps through steps of constant
 * concurrency; the capacity is the best step that still met the SLO (a step past the knee
 * delivers more requests only by queueing them). This, not an assumed rating, is what
 * `cost-report --capacity-from` sizes a fleet with.
 */
import type { ThresholdSpec } from './loadtest.js';

/** One step of constant concurrency, as an engine measured it. */
export interface StepMeasurement {
  stage: number;
  connections: number;
  durationMs: number;
  requests: number;
  succeeded: number;
  p95Ms: number;
}

export interface CapacityStep extends StepMeasurement {
  embeddingsPerMinute: number;
  errorRate: number;
  meetsSlo: boolean;
}

export interface Capacity {
  slo: { p95Ms: number | null; maxErrorRate: number | null };
  /** Sustained embeddings/min at the SLO; null when no step (nor the run) met it. */
  embeddingsPerMinute: number | null;
  /**
   * The same capacity in tokens/min (embeddings/min x the mean tokens per text sent): what carries
   * over to texts of another length. Null when the capacity is, or the texts' length is unknown.
   */
  tokensPerMinute: number | null;
  basis: string;
  steps: CapacityStep[];
}

/** Steps shorter than this, or with fewer requests, are too noisy to rate a machine on. */
export const MIN_STEP_MS = 2000;
export const MIN_STEP_REQUESTS = 20;

function bound(specs: ThresholdSpec[], name: ThresholdSpec['name'], key: RegExp): number | null {
  for (const s of specs) {
    if (s.name !== name) continue;
    const m = key.exec(s.expression);
    if (m) return Number(m[1]);
  }
  return null;
}

export function sloOf(specs: ThresholdSpec[]): Capacity['slo'] {
  return { p95Ms: bound(specs, 'http_req_duration', /^p\(95\)\s*<=?\s*([\d.]+)$/), maxErrorRate: bound(specs, 'http_req_failed', /^rate\s*<=?\s*([\d.e-]+)$/) };
}

const r1 = (n: number) => Math.round(n * 10) / 10;

export function capacityAtSlo(
  specs: ThresholdSpec[],
  batch: number,
  steps: StepMeasurement[] | undefined,
  whole: { durationMs: number; requests: number; succeeded: number; p95Ms: number },
  /** Mean tokens per text the run sent (for tokensPerMinute); 2xx answers that failed the response checks. */
  extra: { tokensPerText?: number; wrongAnswers?: number } = {},
): Capacity {
  const slo = sloOf(specs);
  const tokens = (epm: number | null) => (epm === null || extra.tokensPerText === undefined ? null : Math.round(epm * extra.tokensPerText));
  const meets = (p95: number, errorRate: number) => (slo.p95Ms === null || p95 < slo.p95Ms) && (slo.maxErrorRate === null || errorRate < slo.maxErrorRate);
  const rated = (steps ?? []).map((s): CapacityStep => {
    const errorRate = s.requests > 0 ? (s.requests - s.succeeded) / s.requests : 0;
    const embeddingsPerMinute = s.durationMs > 0 ? r1((s.succeeded * batch) / (s.durationMs / 60_000)) : 0;
    const usable = s.durationMs >= MIN_STEP_MS && s.requests >= MIN_STEP_REQUESTS;
    return { ...s, p95Ms: r1(s.p95Ms), durationMs: Math.round(s.durationMs), embeddingsPerMinute, errorRate: Math.round(errorRate * 1e6) / 1e6, meetsSlo: usable && meets(s.p95Ms, errorRate) };
  });
  const sloText = `p95 < ${slo.p95Ms ?? '-'} ms, errors < ${slo.maxErrorRate ?? '-'}`;
  // A 2xx whose body failed the checks (wrong count or dimensions) counts as succeeded in the
  // steps: rating a machine on answers that are not embeddings would size a fleet for garbage.
  if (extra.wrongAnswers) {
    return { slo, embeddingsPerMinute: null, tokensPerMinute: null, basis: `${extra.wrongAnswers} answer(s) with status 2xx failed the response checks (data length or dimensions): fix the endpoint before rating its capacity`, steps: rated };
  }
  const best = rated.filter((s) => s.meetsSlo).sort((a, b) => b.embeddingsPerMinute - a.embeddingsPerMinute)[0];
  if (best) {
    return { slo, embeddingsPerMinute: best.embeddingsPerMinute, tokensPerMinute: tokens(best.embeddingsPerMinute), basis: `best step at the SLO (${sloText}): ${best.connections} connections, p95 ${best.p95Ms} ms`, steps: rated };
  }
  const wholeErr = whole.requests > 0 ? (whole.requests - whole.succeeded) / whole.requests : 1;
  if (rated.length === 0 && whole.requests > 0 && whole.succeeded > 0 && meets(whole.p95Ms, wholeErr)) {
    const epm = r1((whole.succeeded * batch) / (whole.durationMs / 60_000));
    return { slo, embeddingsPerMinute: epm, tokensPerMinute: tokens(epm), basis: `the whole run met the SLO (${sloText}); no per-step data from this engine, so this is a lower bound`, steps: rated };
  }
  // Steps that met the SLO but were too short or too thin to rate: the fix is longer stages, not less load.
  const tooShort = rated.some((s) => !s.meetsSlo && s.requests > 0 && meets(s.p95Ms, s.errorRate));
  const why = whole.requests > 0 && whole.succeeded === 0
    ? `none of the ${whole.requests} requests succeeded: fix the endpoint's errors, then measure again`
    : tooShort
    ? `no step long enough to rate (each needs >= ${MIN_STEP_MS / 1000} s and >= ${MIN_STEP_REQUESTS} requests) met the SLO (${sloText}): run longer stages (raise --duration-scale)`
    : `no ${rated.length ? 'step' : 'run'} met the SLO (${sloText}): lower the load or raise --p95`;
  return { slo, embeddingsPerMinute: null, tokensPerMinute: null, basis: why, steps: rated };
}
