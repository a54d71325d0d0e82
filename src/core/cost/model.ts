import { AWS_UNIT_PRICES, HOURS_PER_MONTH } from './prices.js';

/**
 * The cost model: pure arithmetic over a workload and a set of prices. Nothing here reads flags,
 * files or clocks, so every path is checkable by hand (test/cost-model.test.ts does).
 */

export type PricingOption = 'onDemand' | 'reserved' | 'spot';
export const PRICING_OPTIONS: readonly PricingOption[] = ['onDemand', 'reserved', 'spot'];

const MINUTES_PER_MONTH = HOURS_PER_MONTH * 60;

export interface Workload {
  tokensPerMonth: number;
  /** Texts embedded per month (queries count one each, corpus chunks tokensPerText each). */
  embeddingsPerMonth: number;
  /** Known only when the workload was given as queries; triggers need it. */
  queriesPerMonth?: number;
  corpusTokens?: number;
  /** Tokens embedded once at the start (the corpus), reported apart from the monthly cost. */
  initialIndexTokens: number;
  tokensPerText: number;
  /** Peak minute over the average minute. */
  peakFactor: number;
}

export interface UnitPrices {
  ebsGbMonth: number;
  ebsIopsMonth: number;
  ebsThroughputMonth: number;
  ebsBaselineIops: number;
  ebsBaselineThroughput: number;
  snapshotGbMonth: number;
  egressPerGb: number;
  egressFreeGb: number;
  albHour: number;
  albLcuHour: number;
  alarmMonth: number;
  metricMonth: number;
}

export const DEFAULT_UNIT_PRICES: UnitPrices = {
  ebsGbMonth: AWS_UNIT_PRICES.ebsGp3PerGbMonth.value,
  ebsIopsMonth: AWS_UNIT_PRICES.ebsGp3IopsPerMonth.value,
  ebsThroughputMonth: AWS_UNIT_PRICES.ebsGp3ThroughputPerMbpsMonth.value,
  ebsBaselineIops: AWS_UNIT_PRICES.ebsGp3BaselineIops.value,
  ebsBaselineThroughput: AWS_UNIT_PRICES.ebsGp3BaselineThroughput.value,
  snapshotGbMonth: AWS_UNIT_PRICES.snapshotPerGbMonth.value,
  egressPerGb: AWS_UNIT_PRICES.egressPerGb.value,
  egressFreeGb: AWS_UNIT_PRICES.egressFreeGb.value,
  albHour: AWS_UNIT_PRICES.albPerHour.value,
  albLcuHour: AWS_UNIT_PRICES.albPerLcuHour.value,
  alarmMonth: AWS_UNIT_PRICES.cloudwatchAlarmPerMonth.value,
  metricMonth: AWS_UNIT_PRICES.cloudwatchMetricPerMonth.value,
};

export interface SelfHostedSpec {
  /** USD per instance-hour per pricing option; null where the option is not on offer. */
  hourly: Record<PricingOption, number | null>;
  /** Embeddings per minute one instance sustains. */
  capacityPerInstance: number;
  /** Fixed instance count (--instances); otherwise sized to the peak. */
  fixedInstances?: number;
  dimensions: number;
  /** Bytes one vector component takes in the response body (encoding dependent). */
  bytesPerValue: number;
  /** Share of responses that leave AWS for the internet (0 when the callers run in the same region). */
  egressShare: number;
  /** Bytes of request body per input token (text is ~4 bytes per token). */
  requestBytesPerToken: number;
  ebsGbPerInstance: number;
  ebsIops: number;
  ebsThroughputMBps: number;
  /** Snapshot GB kept in total (one golden volume, not one per instance). */
  snapshotGb: number;
  loadBalancer: boolean;
  alarms: number;
  customMetrics: number;
  maintenanceHoursPerMonth: number;
  hourlyRate: number;
  units: UnitPrices;
}

export interface HostedSpec {
  pricePerMillion: number;
  dimensions: number;
}

export interface OneTimeSpec {
  engineeringHours: number;
  hourlyRate: number;
}

export interface SelfHostedBreakdown {
  instances: number;
  compute: number;
  ebs: number;
  snapshots: number;
  egress: number;
  loadBalancer: number;
  monitoring: number;
  maintenance: number;
  total: number;
}

/** Embeddings for another volume of the same workload mix (same texts per token). */
export function embeddingsAt(w: Workload, tokensPerMonth: number): number {
  const perToken = w.tokensPerMonth > 0 ? w.embeddingsPerMonth / w.tokensPerMonth : 1 / w.tokensPerText;
  return tokensPerMonth * perToken;
}

export function peakEmbeddingsPerMinute(embeddingsPerMonth: number, peakFactor: number): number {
  return (embeddingsPerMonth / MINUTES_PER_MONTH) * peakFactor;
}

export function instancesNeeded(s: SelfHostedSpec, peakPerMinute: number): number {
  if (s.fixedInstances !== undefined) return s.fixedInstances;
  return Math.max(1, Math.ceil(peakPerMinute / s.capacityPerInstance));
}

export function hostedMonthly(h: HostedSpec, tokensPerMonth: number): number {
  return (tokensPerMonth / 1e6) * h.pricePerMillion;
}

function responseGb(s: SelfHostedSpec, embeddingsPerMonth: number): number {
  return (embeddingsPerMonth * s.dimensions * s.bytesPerValue) / 1e9;
}

/**
 * Monthly self-hosted cost at a volume. `instancesOverride` lets the break-even search hold the
 * count fixed across a segment; everything else follows the workload mix.
 */
export function selfHostedMonthly(
  w: Workload,
  s: SelfHostedSpec,
  option: PricingOption,
  tokensPerMonth: number,
  instancesOverride?: number,
): SelfHostedBreakdown {
  const hourly = s.hourly[option];
  if (hourly === null) throw new Error(`no ${option} price`);
  const u = s.units;
  const emb = embeddingsAt(w, tokensPerMonth);
  const n = instancesOverride ?? instancesNeeded(s, peakEmbeddingsPerMinute(emb, w.peakFactor));
  const compute = hourly * HOURS_PER_MONTH * n;
  const perVolume =
    s.ebsGbPerInstance * u.ebsGbMonth +
    Math.max(0, s.ebsIops - u.ebsBaselineIops) * u.ebsIopsMonth +
    Math.max(0, s.ebsThroughputMBps - u.ebsBaselineThroughput) * u.ebsThroughputMonth;
  const ebs = perVolume * n;
  const snapshots = s.snapshotGb * u.snapshotGbMonth;
  const outGb = responseGb(s, emb);
  const egress = Math.max(0, outGb * s.egressShare - u.egressFreeGb) * u.egressPerGb;
  let loadBalancer = 0;
  if (s.loadBalancer) {
    // LCU = the largest of its dimensions; for embeddings that is processed bytes (1 GB/h per LCU)
    // or new connections (25/s per LCU, one per request as the worst case). Averaged over the month.
    const processedGbPerHour = (outGb + (tokensPerMonth * s.requestBytesPerToken) / 1e9) / HOURS_PER_MONTH;
    const newConnPerSecond = emb / (HOURS_PER_MONTH * 3600);
    const lcu = Math.max(processedGbPerHour, newConnPerSecond / 25);
    loadBalancer = HOURS_PER_MONTH * (u.albHour + lcu * u.albLcuHour);
  }
  const monitoring = s.alarms * u.alarmMonth + s.customMetrics * u.metricMonth;
  const maintenance = s.maintenanceHoursPerMonth * s.hourlyRate;
  const total = compute + ebs + snapshots + egress + loadBalancer + monitoring + maintenance;
  return { instances: n, compute, ebs, snapshots, egress, loadBalancer, monitoring, maintenance, total };
}

/** One-time cost of moving: engineering set-up plus embedding the corpus once on the new fleet. */
export function selfHostedOneTime(w: Workload, s: SelfHostedSpec, o: OneTimeSpec, option: PricingOption) {
  const hourly = s.hourly[option] ?? 0;
  const engineering = o.engineeringHours * o.hourlyRate;
  // Instance-hours to embed the corpus do not depend on how many instances share the work.
  const indexingHours = w.initialIndexTokens / w.tokensPerText / s.capacityPerInstance / 60;
  const indexing = indexingHours * hourly;
  return { engineering, indexingInstanceHours: indexingHours, indexing, total: engineering + indexing };
}

export function hostedInitialIndexing(w: Workload, h: HostedSpec): number {
  return hostedMonthly(h, w.initialIndexTokens);
}

/**
 * Smallest tokens/month at which hosted costs at least as much as self-hosted, honouring the
 * instance-count steps (more volume -> more instances) and the egress free tier. Self-hosted cost
 * is affine between those breakpoints, so each segment is solved exactly. null: never, up to `maxTokens`.
 */
export function breakEvenTokens(
  w: Workload,
  s: SelfHostedSpec,
  h: HostedSpec,
  option: PricingOption,
  maxTokens = 1e16,
): number | null {
  if (s.hourly[option] === null) return null;
  const p = h.pricePerMillion / 1e6;
  const embPerToken = embeddingsAt(w, 1);
  const breaks = new Set<number>([maxTokens]);
  if (embPerToken > 0) {
    const freeTier = (s.units.egressFreeGb * 1e9) / (embPerToken * s.dimensions * s.bytesPerValue * s.egressShare);
    if (freeTier > 0 && freeTier < maxTokens) breaks.add(freeTier);
  }
  let stepWidth = Infinity;
  if (s.fixedInstances === undefined && embPerToken > 0) {
    // n(V) = ceil(V * embPerToken * peak / MINUTES / capacity): it steps every stepWidth tokens.
    stepWidth = (s.capacityPerInstance * MINUTES_PER_MONTH) / (embPerToken * w.peakFactor);
  }
  const sorted = [...breaks].sort((a, b) => a - b);
  let lo = 0;
  let nextStep = stepWidth;
  let guard = 0;
  while (lo < maxTokens && guard++ < 200_000) {
    const nextBreak = sorted.find((b) => b > lo) ?? maxTokens;
    const hi = Math.min(nextBreak, nextStep);
    // On (lo, hi] the instance count and the egress tier do not change; read them mid-segment so a
    // boundary's float rounding cannot pick the neighbour's count.
    const n = instancesNeeded(s, peakEmbeddingsPerMinute(embeddingsAt(w, (lo + hi) / 2), w.peakFactor));
    const a = lo + (hi - lo) / 3;
    const b = lo + (2 * (hi - lo)) / 3;
    const ca = selfHostedMonthly(w, s, option, a, n).total;
    const cb = selfHostedMonthly(w, s, option, b, n).total;
    const slope = (cb - ca) / (b - a);
    const intercept = ca - slope * a;
    if (p > slope) {
      const v = intercept / (p - slope);
      if (v <= hi * (1 + 1e-12)) return Math.max(v, lo);
    }
    if (hi >= nextStep) nextStep += stepWidth;
    lo = hi;
  }
  return null;
}

export interface OptionResult {
  option: PricingOption;
  hourly: number;
  monthly: SelfHostedBreakdown;
  savingsPerMonth: number;
  oneTime: ReturnType<typeof selfHostedOneTime>;
  /** Months of savings that pay the one-time cost; null when self-hosting saves nothing. */
  paybackMonths: number | null;
  breakEvenTokensPerMonth: number | null;
  /** What one more 1M tokens/month costs self-hosted far out (instance steps averaged, egress, LCUs). */
  marginalPerMillion: number;
  horizon: { months: number; hosted: number; selfHosted: number; savings: number };
}

export function evaluateOption(
  w: Workload,
  s: SelfHostedSpec,
  h: HostedSpec,
  o: OneTimeSpec,
  option: PricingOption,
  months: number,
): OptionResult {
  const hosted = hostedMonthly(h, w.tokensPerMonth);
  const monthly = selfHostedMonthly(w, s, option, w.tokensPerMonth);
  const oneTime = selfHostedOneTime(w, s, o, option);
  const savingsPerMonth = hosted - monthly.total;
  const paybackMonths = savingsPerMonth > 0 ? oneTime.total / savingsPerMonth : null;
  const selfTotal = oneTime.total + monthly.total * months;
  return {
    option,
    hourly: s.hourly[option] as number,
    monthly,
    savingsPerMonth,
    oneTime,
    paybackMonths,
    breakEvenTokensPerMonth: breakEvenTokens(w, s, h, option),
    marginalPerMillion: ((selfHostedMonthly(w, s, option, 2e15).total - selfHostedMonthly(w, s, option, 1e15).total) / 1e15) * 1e6,
    horizon: { months, hosted: hosted * months, selfHosted: selfTotal, savings: hosted * months - selfTotal },
  };
}

const STANDARD_VOLUMES = [1e6, 1e7, 1e8, 1e9, 1e10];

export interface VolumeRow {
  tokensPerMonth: number;
  isYours: boolean;
  hosted: number;
  instances: number;
  selfHosted: Partial<Record<PricingOption, number>>;
}

export function volumeTable(
  w: Workload,
  s: SelfHostedSpec,
  h: HostedSpec,
  options: readonly PricingOption[],
  volumes: number[] = STANDARD_VOLUMES,
): VolumeRow[] {
  const all = [...new Set([...volumes, w.tokensPerMonth])].sort((a, b) => a - b);
  return all.map((v) => {
    const row: VolumeRow = {
      tokensPerMonth: v,
      isYours: v === w.tokensPerMonth,
      hosted: hostedMonthly(h, v),
      instances: instancesNeeded(s, peakEmbeddingsPerMinute(embeddingsAt(w, v), w.peakFactor)),
      selfHosted: {},
    };
    for (const o of options) if (s.hourly[o] !== null) row.selfHosted[o] = selfHostedMonthly(w, s, o, v).total;
    return row;
  });
}

/** Log-spaced volumes for a smooth chart line. */
export function logSpace(from: number, to: number, points: number): number[] {
  const a = Math.log10(from);
  const b = Math.log10(to);
  return Array.from({ length: points }, (_, i) => 10 ** (a + ((b - a) * i) / (points - 1)));
}
