import type { OptionResult, PricingOption } from './model.js';

/**
 * The migration guide's triggers: any one of them is a reason to look at self-hosting. A trigger
 * whose input is unknown (e.g. no corpus size given) is reported as not evaluated, never as false.
 */
const THRESHOLDS = {
  indexedDataGb: 20,
  queriesPerMonth: 100_000,
  hostedSpendPerMonth: 150,
  p95Ms: 500,
  embeddingsPerMinute: 1_500,
} as const;

export type TriggerId = keyof typeof THRESHOLDS;

export interface Trigger {
  id: TriggerId;
  description: string;
  threshold: number;
  unit: string;
  value: number | null;
  /** null when the input was not given. */
  fired: boolean | null;
  basis: string;
}

export interface TriggerInputs {
  /** Bytes of the vectors the user keeps today; undefined when the corpus size is unknown. */
  indexedDataBytes?: number;
  indexedDataBasis?: string;
  queriesPerMonth?: number;
  hostedMonthly: number;
  /** The hosted API's p95 (--hosted-p95-ms), never the self-hosted load test's. */
  p95Ms?: number;
  p95Basis?: string;
  peakEmbeddingsPerMinute: number;
}

export function evaluateTriggers(t: TriggerInputs): Trigger[] {
  const mk = (id: TriggerId, description: string, unit: string, value: number | undefined, basis: string): Trigger => ({
    id,
    description,
    threshold: THRESHOLDS[id],
    unit,
    value: value ?? null,
    fired: value === undefined ? null : value > THRESHOLDS[id],
    basis,
  });
  return [
    mk(
      'indexedDataGb',
      'indexed data > 20 GB',
      'GB',
      t.indexedDataBytes === undefined ? undefined : t.indexedDataBytes / 1e9,
      t.indexedDataBasis ?? 'not evaluated: pass --corpus-tokens',
    ),
    mk(
      'queriesPerMonth',
      '> 100K queries/month',
      'queries/month',
      t.queriesPerMonth,
      t.queriesPerMonth === undefined ? 'not evaluated: pass --queries-per-month' : 'from the workload',
    ),
    mk('hostedSpendPerMonth', '> $150/month hosted spend', 'USD/month', t.hostedMonthly, 'hosted price x tokens/month'),
    // The hosted API's latency only: a self-hosted load test's p95 says nothing about what hosted makes callers wait.
    mk('p95Ms', 'hosted p95 latency > 500 ms', 'ms', t.p95Ms, t.p95Basis ?? 'not evaluated: pass --hosted-p95-ms (the hosted API\'s p95; a load test measures self-hosted)'),
    mk(
      'embeddingsPerMinute',
      '> 1,500 embeddings/min needed',
      'embeddings/min',
      t.peakEmbeddingsPerMinute,
      'peak minute: average embeddings/min x peak factor',
    ),
  ];
}

export type Decision = 'stay-hosted' | 'migrate' | 'hybrid';

export interface Recommendation {
  decision: Decision;
  /** The pricing option the sentence is about (the cheapest self-hosted one). */
  option: PricingOption | null;
  reason: string;
}

const LABEL: Record<PricingOption, string> = { onDemand: 'on-demand', reserved: '1-year reserved', spot: 'spot' };

const usd = (n: number) => {
  const digits = Math.abs(n) < 0.1 && n !== 0 ? 4 : 2;
  return `${n < 0 ? '-' : ''}$${Math.abs(n).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 2 })}`;
};
const tokens = (n: number) => {
  for (const [d, s] of [[1e12, 'T'], [1e9, 'B'], [1e6, 'M'], [1e3, 'K']] as const) {
    if (n >= d) return `${Number((n / d).toPrecision(3))}${s}`;
  }
  return String(Math.round(n));
};

/**
 * migrate: the cheapest self-hosted option saves money and its set-up pays back within the horizon.
 * hybrid: it does not pay (yet) but a need hosted cannot meet fires (latency, throughput, index
 * size), or a volume trigger fires with break-even within 10x of today's volume: self-host part of
 * the traffic. stay hosted: otherwise; a volume trigger far from break-even is noted, not obeyed.
 */
const NEED_TRIGGERS: readonly TriggerId[] = ['p95Ms', 'embeddingsPerMinute', 'indexedDataGb'];
const NEAR_BREAK_EVEN = 10;

export function recommend(
  hosted: { monthly: number; pricePerMillion: number; tokensPerMonth: number },
  options: OptionResult[],
  triggers: Trigger[],
  months: number,
): Recommendation {
  const fired = triggers.filter((t) => t.fired === true);
  const best = [...options].sort((a, b) => a.monthly.total - b.monthly.total)[0];
  if (!best) {
    return { decision: 'stay-hosted', option: null, reason: 'no self-hosted pricing option is available to compare against.' };
  }
  const firedText = fired.map((t) => t.description).join(', ');
  const be = best.breakEvenTokensPerMonth;
  const beText =
    be === null
      ? `it never breaks even: each further 1M tokens costs ${usd(best.marginalPerMillion)} self-hosted (instances, egress) against ${usd(hosted.pricePerMillion)} hosted`
      : `it breaks even at ${tokens(be)} tokens/month (${Number((be / hosted.tokensPerMonth).toPrecision(2))}x your volume)`;
  if (best.savingsPerMonth > 0 && best.paybackMonths !== null && best.paybackMonths <= months) {
    const payback = best.oneTime.total > 0 ? `; the one-time set-up of ${usd(best.oneTime.total)} pays back in ${best.paybackMonths.toFixed(1)} months` : '';
    return {
      decision: 'migrate',
      option: best.option,
      reason: `self-hosting on ${LABEL[best.option]} instances costs ${usd(best.monthly.total)}/month against ${usd(hosted.monthly)} hosted, saving ${usd(best.savingsPerMonth)}/month${payback}${fired.length ? ` (triggers: ${firedText})` : ''}.`,
    };
  }
  const why =
    best.savingsPerMonth > 0
      ? `self-hosting on ${LABEL[best.option]} saves ${usd(best.savingsPerMonth)}/month but the set-up of ${usd(best.oneTime.total)} does not pay back within ${months} months`
      : `self-hosting costs at least ${usd(best.monthly.total)}/month (${LABEL[best.option]}) against ${usd(hosted.monthly)} hosted; ${beText}`;
  const needs = fired.filter((t) => NEED_TRIGGERS.includes(t.id));
  const near = best.savingsPerMonth > 0 || (be !== null && be <= hosted.tokensPerMonth * NEAR_BREAK_EVEN);
  if (needs.length > 0 || (fired.length > 0 && near)) {
    return {
      decision: 'hybrid',
      option: best.option,
      reason: `${fired.length === 1 ? 'a migration trigger fires' : `${fired.length} migration triggers fire`} (${firedText}) but ${why}: run self-hosted for the traffic behind the trigger (latency-critical queries or bulk re-indexing) and keep the hosted API for the rest and as fallback.`,
    };
  }
  const noted = fired.length > 0 ? `only volume triggers fire (${firedText}) and they are far from paying for a fleet: ` : 'no migration trigger fires and ';
  return { decision: 'stay-hosted', option: best.option, reason: `${noted}${why}.` };
}
