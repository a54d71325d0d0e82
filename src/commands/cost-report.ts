import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { Command } from 'commander';
import { fetchUsage, type UsageMetrics } from '../adapters/aws/cloudwatch-metrics.js';
import { fetchActualCosts, MANAGED_TAG, type ActualCosts } from '../adapters/aws/cost-explorer.js';
import { fetchLivePrices } from '../adapters/aws/pricing.js';
import { parsers, resolveOption, type Resolved } from '../config.js';
import type { Context } from '../context.js';
import { ExternalError, UsageError } from '../errors.js';
import { capacityFromLoadReport, parseQuantity, type LoadReportCapacity } from '../core/cost/inputs.js';
import {
  DEFAULT_UNIT_PRICES,
  embeddingsAt,
  evaluateOption,
  hostedInitialIndexing,
  hostedMonthly,
  logSpace,
  peakEmbeddingsPerMinute,
  PRICING_OPTIONS,
  selfHostedMonthly,
  volumeTable,
  type HostedSpec,
  type OptionResult,
  type PricingOption,
  type SelfHostedSpec,
  type VolumeRow,
  type Workload,
} from '../core/cost/model.js';
import {
  AWS_UNIT_PRICES,
  DEFAULT_HOSTED_MODEL,
  hostedModel,
  HOSTED_MODELS,
  HOURS_PER_MONTH,
  INSTANCES,
  PRICE_TABLE_DATE,
  PRICE_TABLE_REGION,
} from '../core/cost/prices.js';
import { evaluateTriggers, recommend, type Recommendation, type Trigger } from '../core/cost/triggers.js';
import { barChart } from '../ui/chart.js';
import { renderHtmlReport } from '../ui/html-report.js';
import { fmtUsd as fmtUsdRaw, printJson, table, type Logger } from '../ui/output.js';
import { writeFileAtomic } from '../util/fs.js';
import { action, examples, type ExitHolder } from './shared.js';

/** Bytes per vector component in a response: measured JSON.stringify of float32 values as JS numbers. */
export const BYTES_PER_VALUE = { float: 20.8, base64: (4 * 4) / 3 } as const;
const REQUEST_BYTES_PER_TOKEN = 4;

export interface Assumption {
  name: string;
  value: number | string | boolean | null;
  unit: string;
  source: string;
}

const LABEL: Record<PricingOption, string> = { onDemand: 'on-demand', reserved: 'reserved 1y', spot: 'spot' };

type Opts = Record<string, unknown>;

/** fmtUsd with the sign before the dollar and sub-cent amounts kept visible. */
export function fmtUsd(n: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  if (n !== 0 && Math.abs(n) < 0.01) return `${n < 0 ? '-' : ''}$${Math.abs(n).toPrecision(2)}`;
  return n < 0 ? `-${fmtUsdRaw(-n)}` : fmtUsdRaw(n);
}

const snake = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();
const flagOf = (key: string) => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
const RANK = { flag: 3, env: 2, file: 1, default: 0 } as const;

export function fmtTokens(n: number): string {
  for (const [d, s] of [[1e12, 'T'], [1e9, 'B'], [1e6, 'M'], [1e3, 'K']] as const) {
    if (n >= d) return `${Number((n / d).toPrecision(3))}${s}`;
  }
  return String(Number(n.toPrecision(3)));
}

function describeSource(r: Resolved<unknown>, fallback: string): string {
  return r.source === 'default' ? `default: ${fallback}` : r.origin;
}

/** Everything the report needs, resolved from flags, env, embedctl.yaml and the price table. */
interface Inputs {
  workload: Workload;
  hosted: HostedSpec & { provider: string; model: string; p95Ms?: number; p95Basis?: string };
  self: SelfHostedSpec;
  oneTime: { engineeringHours: number; hourlyRate: number };
  instance: { type: string; region: string; vcpu?: number; gpu?: string; memory?: string; capacitySource: string; priceSource: string };
  options: PricingOption[];
  months: number;
  assumptions: Assumption[];
  output: { csv: boolean; html?: string; actual: boolean; livePricing: boolean };
}

async function resolveInputs(ctx: Context, opts: Opts, log: Logger): Promise<Inputs> {
  const assumptions: Assumption[] = [];
  const get = <T>(key: string, parse: (raw: unknown) => T, def: T): Resolved<T> =>
    resolveOption<T>(ctx, { flag: flagOf(key), flagValue: opts[key], env: `EMBEDCTL_${snake(key)}`, file: `cost.${key}`, default: def, parse });
  const qty = (min = 0) => parseQuantity({ min });
  const note = (name: string, r: Resolved<unknown>, unit: string, why: string) =>
    assumptions.push({ name, value: r.value as Assumption['value'], unit, source: describeSource(r, why) });

  // Workload: one of the two forms; when both are present the higher-precedence source wins, and
  // two at the same level are a contradiction the user must resolve.
  const tpm = get<number | undefined>('tokensPerMonth', qty(), undefined);
  const q = get<number | undefined>('queriesPerMonth', qty(), undefined);
  const tpq = get<number | undefined>('tokensPerQuery', qty(), undefined);
  const corpus = get<number | undefined>('corpusTokens', qty(), undefined);
  const churn = get<number | undefined>('churn', parseQuantity({ min: 0, percent: true }), undefined);
  const tokensPerText = get('tokensPerText', qty(1), 256);
  const peakFactor = get('peakFactor', qty(1), 3);
  const queryForm = [q, tpq, churn].filter((r) => r.value !== undefined);
  let useTokens = tpm.value !== undefined;
  if (tpm.value !== undefined && queryForm.length > 0) {
    const other = queryForm.reduce((a, b) => (RANK[b.source] > RANK[a.source] ? b : a));
    if (RANK[other.source] === RANK[tpm.source]) {
      throw new UsageError(`conflicts with ${other.origin}: give either --tokens-per-month or --queries-per-month/--tokens-per-query/--churn`, {
        field: tpm.origin,
      });
    }
    useTokens = RANK[tpm.source] > RANK[other.source];
    log.verbose(`workload: ${useTokens ? tpm.origin : other.origin} overrides ${useTokens ? other.origin : tpm.origin}`);
  }
  let workload: Workload;
  if (useTokens) {
    const tokens = tpm.value!;
    note('tokens per month', tpm, 'tokens/month', '');
    workload = {
      tokensPerMonth: tokens,
      embeddingsPerMonth: tokens / tokensPerText.value,
      corpusTokens: corpus.value,
      initialIndexTokens: corpus.value ?? 0,
      tokensPerText: tokensPerText.value,
      peakFactor: peakFactor.value,
    };
  } else if (queryForm.length > 0 || corpus.value !== undefined) {
    if (q.value !== undefined && tpq.value === undefined) throw new UsageError(`required with ${q.origin}`, { field: '--tokens-per-query' });
    if (tpq.value !== undefined && q.value === undefined) throw new UsageError(`required with ${tpq.origin}`, { field: '--queries-per-month' });
    if (churn.value !== undefined && corpus.value === undefined) throw new UsageError(`required with ${churn.origin}`, { field: '--corpus-tokens' });
    if (q.value === undefined && (churn.value ?? 0) === 0) {
      throw new UsageError('a corpus alone is no monthly workload: add --churn F, or --queries-per-month Q --tokens-per-query T', { field: '--queries-per-month' });
    }
    const Q = q.value ?? 0;
    const T = tpq.value ?? 0;
    const C = corpus.value ?? 0;
    const F = churn.value ?? 0;
    if (q.value !== undefined) note('queries per month', q, 'queries/month', '');
    if (tpq.value !== undefined) note('tokens per query', tpq, 'tokens', '');
    if (corpus.value !== undefined) note('corpus tokens', corpus, 'tokens', '');
    note('monthly churn (share of the corpus re-embedded per month)', { ...churn, value: F }, 'fraction', 'no re-indexing');
    workload = {
      tokensPerMonth: Q * T + C * F,
      embeddingsPerMonth: Q + (C * F) / tokensPerText.value,
      queriesPerMonth: Q,
      corpusTokens: corpus.value,
      initialIndexTokens: C,
      tokensPerText: tokensPerText.value,
      peakFactor: peakFactor.value,
    };
  } else {
    throw new UsageError(
      'no workload given: pass --tokens-per-month N, or --queries-per-month Q --tokens-per-query T [--corpus-tokens C --churn F] (or a cost: section in embedctl.yaml)',
      { field: '--tokens-per-month' },
    );
  }
  if (!(workload.tokensPerMonth > 0)) throw new UsageError(`the workload comes to ${workload.tokensPerMonth} tokens/month; nothing to compare`, { field: useTokens ? tpm.origin : '--queries-per-month' });
  note('average tokens per embedded text (document chunk)', tokensPerText, 'tokens', 'a typical RAG chunk; queries count one text each');
  note('peak factor (busiest minute / average minute)', peakFactor, 'x', 'daytime traffic peaks at ~3x the monthly average');

  // Hosted side.
  const provider = get('provider', parsers.oneOf(['jina', 'openai', 'custom'] as const), 'jina');
  const modelR = get<string | undefined>('model', parsers.string(), undefined);
  const ppm = get<number | undefined>('pricePerMillion', qty(), undefined);
  let hostedName: string;
  let price: number;
  let priceSource: string;
  let hostedDims: number;
  let dimsSource: string;
  if (provider.value === 'custom') {
    if (ppm.value === undefined) throw new UsageError('required with --provider custom (USD per 1M tokens)', { field: '--price-per-million' });
    hostedName = modelR.value ?? 'custom';
    price = ppm.value;
    priceSource = ppm.origin;
    hostedDims = 1024;
    dimsSource = 'default: unknown for a custom model';
  } else {
    const name = modelR.value ?? DEFAULT_HOSTED_MODEL[provider.value];
    const m = hostedModel(provider.value, name);
    if (!m && ppm.value === undefined) {
      throw new UsageError(
        `no built-in price for ${provider.value} model ${JSON.stringify(name)}; known: ${HOSTED_MODELS.filter((x) => x.provider === provider.value).map((x) => x.model).join(', ')}`,
        { field: modelR.origin === 'default' ? '--model' : modelR.origin, hint: 'or pass --price-per-million' },
      );
    }
    hostedName = m?.model ?? name;
    price = ppm.value ?? m!.pricePerMillion;
    priceSource = ppm.value !== undefined ? ppm.origin : m!.source;
    hostedDims = m?.dimensions ?? 1024;
    dimsSource = m ? `${provider.value} documentation for ${m.model}` : 'default: unknown model';
  }
  const hostedDimsR = get<number | undefined>('hostedDimensions', qty(1), undefined);
  if (hostedDimsR.value !== undefined) {
    hostedDims = hostedDimsR.value;
    dimsSource = hostedDimsR.origin;
  }
  assumptions.push({ name: `hosted price (${provider.value} ${hostedName})`, value: price, unit: 'USD per 1M tokens', source: priceSource });
  assumptions.push({ name: 'hosted model dimensions (for the size of today\'s index)', value: hostedDims, unit: 'dims', source: dimsSource });

  // Self-hosted side.
  const instanceType = get('instanceType', parsers.string(), 'g4dn.xlarge');
  const region = get('region', parsers.string(), 'us-east-1');
  const livePricing = get('livePricing', parsers.boolean(), false);
  const pricing = get('pricing', parsers.oneOf(['on-demand', 'reserved', 'spot', 'all'] as const), 'all');
  const instancesR = get<number | undefined>('instances', parseQuantity({ min: 1, integer: true }), undefined);
  const capacityFrom = get<string | undefined>('capacityFrom', parsers.string(), undefined);
  const known = INSTANCES[instanceType.value];
  if (!known && !livePricing.value) {
    throw new UsageError(`unknown instance type ${JSON.stringify(instanceType.value)}; the built-in table knows ${Object.keys(INSTANCES).join(', ')}`, {
      field: instanceType.origin === 'default' ? '--instance-type' : instanceType.origin,
      hint: 'pick one of those, or add --live-pricing to price any type from the AWS Pricing API (with --capacity-from a load-test report)',
    });
  }
  if (region.value !== PRICE_TABLE_REGION && !livePricing.value) {
    throw new UsageError(`the built-in price table is for ${PRICE_TABLE_REGION} only`, {
      field: region.origin === 'default' ? '--region' : region.origin,
      hint: 'add --live-pricing to read prices for this region from the AWS Pricing API',
    });
  }

  let report: LoadReportCapacity | undefined;
  if (capacityFrom.value !== undefined) {
    const path = isAbsolute(capacityFrom.value) ? capacityFrom.value : join(ctx.cwd, capacityFrom.value);
    let doc: unknown;
    try {
      doc = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new UsageError(e.code === 'ENOENT' ? `no such file ${path}` : `cannot read ${path}: ${e.message.split('\n')[0]}`, {
        field: capacityFrom.origin,
        hint: 'pass a report saved by `embedctl load-test --out report.json`',
      });
    }
    try {
      report = capacityFromLoadReport(doc);
    } catch (err) {
      throw new UsageError(`${path}: ${(err as Error).message}`, { field: capacityFrom.origin });
    }
  }

  const hourly: Record<PricingOption, number | null> = known
    ? { onDemand: known.onDemand, reserved: known.reserved, spot: known.spot }
    : { onDemand: null, reserved: null, spot: null };
  let instPriceSource = known?.source ?? '';
  const instance: Inputs['instance'] = {
    type: instanceType.value,
    region: region.value,
    vcpu: known?.vcpu,
    gpu: known?.gpu,
    memory: known ? `${known.memoryGiB} GiB` : undefined,
    capacitySource: '',
    priceSource: '',
  };
  if (livePricing.value) {
    log.info(`reading live prices for ${instanceType.value} in ${region.value} (AWS Pricing API, EC2 spot price history)...`);
    const live = await fetchLivePrices(ctx, instanceType.value, region.value);
    if (live.onDemand === null) {
      throw new ExternalError('aws pricing', `no on-demand Linux price for ${instanceType.value} in ${region.value}`, {
        hint: 'check the instance type is offered in that region',
      });
    }
    if (live.reserved === null) log.warn(`the Pricing API lists no 1-year no-upfront reserved price for ${instanceType.value}; reserved is left out`);
    if (live.spot === null) log.warn(`no spot price history for ${instanceType.value} in ${region.value} in the last day; spot is left out`);
    hourly.onDemand = live.onDemand;
    hourly.reserved = live.reserved;
    hourly.spot = live.spot;
    instPriceSource = `AWS Pricing API GetProducts (${region.value}, Linux, shared) and DescribeSpotPriceHistory (last 24 h, average of ${live.spotZones.length} AZ(s)), read ${live.fetchedAt}`;
    instance.vcpu = live.vcpu ?? instance.vcpu;
    instance.gpu = live.gpu ?? instance.gpu;
    instance.memory = live.memory ?? instance.memory;
  }
  instance.priceSource = instPriceSource;

  let capacity: number;
  if (report) {
    capacity = report.embeddingsPerMinute;
    instance.capacitySource = `${capacityFrom.origin} ${capacityFrom.value} (${report.basis}${report.target ? `, target ${report.target}` : ''})`;
  } else if (known) {
    capacity = known.ratedEmbeddingsPerMinute;
    instance.capacitySource = `price table rated capacity for ${known.instanceType} (ASSUMPTION for a MiniLM/bge-small class model, ~256-token texts; replace with --capacity-from a load-test report)`;
  } else {
    throw new UsageError(`no rated capacity for ${instanceType.value} in the built-in table`, {
      field: '--capacity-from',
      hint: 'run `embedctl load-test --out report.json` against the runtime on that instance and pass the report',
    });
  }
  assumptions.push({ name: `capacity per ${instanceType.value}`, value: capacity, unit: 'embeddings/min', source: instance.capacitySource });
  for (const o of PRICING_OPTIONS) {
    assumptions.push({
      name: `${instanceType.value} ${LABEL[o]} price`,
      value: hourly[o],
      unit: o === 'reserved' ? 'USD/hour (1-year, no upfront, effective)' : o === 'spot' ? 'USD/hour (typical; can be interrupted)' : 'USD/hour',
      source: instPriceSource,
    });
  }
  assumptions.push({ name: 'hours per month', value: HOURS_PER_MONTH, unit: 'h', source: 'AWS billing convention (8,760 h / 12)' });

  const dims = get('dimensions', qty(1), 384);
  const encoding = get('encoding', parsers.oneOf(['float', 'base64'] as const), 'float');
  const ebsGb = get('ebsGb', qty(1), 100);
  const ebsIops = get('ebsIops', qty(), AWS_UNIT_PRICES.ebsGp3BaselineIops.value);
  const ebsTp = get('ebsThroughput', qty(), AWS_UNIT_PRICES.ebsGp3BaselineThroughput.value);
  const snapshotGb = get('snapshotGb', qty(), ebsGb.value);
  const egressShare = get('egressShare', parseQuantity({ min: 0, percent: true }), 1);
  if (egressShare.value > 1) throw new UsageError(`must be a fraction between 0 and 1, got ${egressShare.value}`, { field: egressShare.origin });
  const lb = get('loadBalancer', parsers.boolean(), false);
  const alarms = get('alarms', qty(), 4);
  const metrics = get('customMetrics', qty(), 3);
  const eng = get('engineeringHours', qty(), 0);
  const maint = get('maintenanceHours', qty(), 0);
  const rate = get('hourlyRate', qty(), 100);
  const months = get('months', qty(1), 12);
  note('self-hosted model dimensions', dims, 'dims', 'a MiniLM / bge-small class model (384)');
  assumptions.push({
    name: `response bytes per vector value (${encoding.value})`,
    value: Number(BYTES_PER_VALUE[encoding.value].toFixed(2)),
    unit: 'bytes',
    source:
      encoding.value === 'float'
        ? `${describeSource(encoding, 'float')}: JSON text of float32 values printed as JS numbers, measured ~20.8 bytes each with the comma`
        : `${encoding.origin}: 4-byte float32, base64 (x 4/3)`,
  });
  note('share of responses leaving AWS (internet egress)', egressShare, 'fraction', 'worst case, every caller outside AWS; 0 when callers run in the same region');
  assumptions.push({ name: 'internet egress price', value: AWS_UNIT_PRICES.egressPerGb.value, unit: AWS_UNIT_PRICES.egressPerGb.unit, source: AWS_UNIT_PRICES.egressPerGb.source });
  assumptions.push({ name: 'egress free tier', value: AWS_UNIT_PRICES.egressFreeGb.value, unit: AWS_UNIT_PRICES.egressFreeGb.unit, source: AWS_UNIT_PRICES.egressFreeGb.source });
  note('EBS gp3 volume per instance', ebsGb, 'GB', 'model, image and OS');
  assumptions.push({ name: 'EBS gp3 price', value: AWS_UNIT_PRICES.ebsGp3PerGbMonth.value, unit: AWS_UNIT_PRICES.ebsGp3PerGbMonth.unit, source: AWS_UNIT_PRICES.ebsGp3PerGbMonth.source });
  note('EBS gp3 IOPS per volume', ebsIops, 'IOPS', '3,000 baseline, free');
  note('EBS gp3 throughput per volume', ebsTp, 'MB/s', '125 MB/s baseline, free');
  note('EBS snapshots kept (one golden volume)', snapshotGb, 'GB', 'one full snapshot of the volume');
  assumptions.push({ name: 'snapshot price', value: AWS_UNIT_PRICES.snapshotPerGbMonth.value, unit: AWS_UNIT_PRICES.snapshotPerGbMonth.unit, source: AWS_UNIT_PRICES.snapshotPerGbMonth.source });
  note('application load balancer', lb, 'yes/no', 'none (nginx on the instance)');
  if (lb.value) {
    assumptions.push({ name: 'ALB hourly + LCU price', value: `${AWS_UNIT_PRICES.albPerHour.value} + ${AWS_UNIT_PRICES.albPerLcuHour.value}`, unit: 'USD/hour, USD/LCU-hour', source: `${AWS_UNIT_PRICES.albPerHour.source}; LCUs from the monthly average of processed bytes (1 GB/h per LCU) or new connections (25/s per LCU, one per text)` });
  }
  note('CloudWatch alarms', alarms, 'alarms', 'the alarms embedctl provision creates');
  note('CloudWatch custom metrics', metrics, 'metrics', 'requests, embeddings, latency');
  note('engineering set-up (one-time)', eng, 'hours', 'not counted; pass --engineering-hours');
  note('engineering upkeep per month', maint, 'hours/month', 'not counted; pass --maintenance-hours');
  note('engineering hourly rate', rate, 'USD/hour', 'a loaded engineer cost');
  note('horizon', months, 'months', 'one year');

  const p95Flag = get<number | undefined>('hostedP95Ms', qty(), undefined);
  let p95Ms: number | undefined;
  let p95Basis: string | undefined;
  if (p95Flag.value !== undefined) {
    p95Ms = p95Flag.value;
    p95Basis = p95Flag.origin;
  } else if (report?.p95Ms !== undefined) {
    p95Ms = report.p95Ms;
    p95Basis = `p95 of the load-test report ${capacityFrom.value}`;
  }

  const pricingOpt = pricing.value;
  const wanted: PricingOption[] = pricingOpt === 'all' ? [...PRICING_OPTIONS] : [pricingOpt === 'on-demand' ? 'onDemand' : pricingOpt];
  const options = wanted.filter((o) => hourly[o] !== null);
  if (options.length === 0) throw new ExternalError('aws pricing', `no ${pricingOpt} price available for ${instanceType.value} in ${region.value}`);

  const csv = Boolean(opts.csv);
  const html = typeof opts.html === 'string' ? opts.html : undefined;
  return {
    workload,
    hosted: { pricePerMillion: price, dimensions: hostedDims, provider: provider.value, model: hostedName, p95Ms, p95Basis },
    self: {
      hourly,
      capacityPerInstance: capacity,
      fixedInstances: instancesR.value,
      dimensions: dims.value,
      bytesPerValue: BYTES_PER_VALUE[encoding.value],
      egressShare: egressShare.value,
      requestBytesPerToken: REQUEST_BYTES_PER_TOKEN,
      ebsGbPerInstance: ebsGb.value,
      ebsIops: ebsIops.value,
      ebsThroughputMBps: ebsTp.value,
      snapshotGb: snapshotGb.value,
      loadBalancer: lb.value,
      alarms: alarms.value,
      customMetrics: metrics.value,
      maintenanceHoursPerMonth: maint.value,
      hourlyRate: rate.value,
      units: DEFAULT_UNIT_PRICES,
    },
    oneTime: { engineeringHours: eng.value, hourlyRate: rate.value },
    instance,
    options,
    months: months.value,
    assumptions,
    output: { csv, html, actual: Boolean(get('actual', parsers.boolean(), false).value), livePricing: livePricing.value },
  };
}

interface Analysis {
  hosted: number;
  hostedInitialIndexing: number;
  peakPerMinute: number;
  averagePerMinute: number;
  results: OptionResult[];
  volumes: VolumeRow[];
  triggers: Trigger[];
  recommendation: Recommendation;
}

export function analyse(i: Inputs): Analysis {
  const w = i.workload;
  const hosted = hostedMonthly(i.hosted, w.tokensPerMonth);
  const results = i.options.map((o) => evaluateOption(w, i.self, i.hosted, i.oneTime, o, i.months));
  const averagePerMinute = peakEmbeddingsPerMinute(w.embeddingsPerMonth, 1);
  const peakPerMinute = peakEmbeddingsPerMinute(w.embeddingsPerMonth, w.peakFactor);
  const vectors = w.corpusTokens !== undefined ? w.corpusTokens / w.tokensPerText : undefined;
  const triggers = evaluateTriggers({
    indexedDataBytes: vectors === undefined ? undefined : vectors * i.hosted.dimensions * 4,
    indexedDataBasis:
      vectors === undefined ? undefined : `corpus tokens / ${w.tokensPerText} tokens per chunk x ${i.hosted.dimensions} dims x 4 bytes (float32), GB = 1e9 bytes`,
    queriesPerMonth: w.queriesPerMonth,
    hostedMonthly: hosted,
    p95Ms: i.hosted.p95Ms,
    p95Basis: i.hosted.p95Basis,
    peakEmbeddingsPerMinute: peakPerMinute,
  });
  return {
    hosted,
    hostedInitialIndexing: hostedInitialIndexing(w, i.hosted),
    peakPerMinute,
    averagePerMinute,
    results,
    volumes: volumeTable(w, i.self, i.hosted, i.options),
    triggers,
    recommendation: recommend({ monthly: hosted, pricePerMillion: i.hosted.pricePerMillion, tokensPerMonth: w.tokensPerMonth }, results, triggers, i.months),
  };
}

function jsonDoc(i: Inputs, a: Analysis, actual?: { costs: ActualCosts; usage: UsageMetrics }) {
  const pick = <T>(f: (r: OptionResult) => T) => Object.fromEntries(a.results.map((r) => [r.option, f(r)]));
  return {
    workload: {
      tokensPerMonth: i.workload.tokensPerMonth,
      embeddingsPerMonth: i.workload.embeddingsPerMonth,
      queriesPerMonth: i.workload.queriesPerMonth ?? null,
      corpusTokens: i.workload.corpusTokens ?? null,
      averageEmbeddingsPerMinute: a.averagePerMinute,
      peakEmbeddingsPerMinute: a.peakPerMinute,
    },
    hosted: { provider: i.hosted.provider, model: i.hosted.model, pricePerMillion: i.hosted.pricePerMillion, monthly: a.hosted, initialIndexing: a.hostedInitialIndexing },
    instance: { type: i.instance.type, region: i.instance.region, vcpu: i.instance.vcpu ?? null, gpu: i.instance.gpu ?? null, memory: i.instance.memory ?? null, capacityPerInstance: i.self.capacityPerInstance, livePricing: i.output.livePricing },
    breakEven: pick((r) => r.breakEvenTokensPerMonth),
    monthly: { tokensPerMonth: i.workload.tokensPerMonth, hosted: a.hosted, ...pick((r) => r.monthly) },
    savingsPerMonth: pick((r) => r.savingsPerMonth),
    paybackMonths: pick((r) => r.paybackMonths),
    oneTime: { hostedInitialIndexing: a.hostedInitialIndexing, ...pick((r) => r.oneTime) },
    horizon: { months: i.months, ...pick((r) => r.horizon) },
    volumes: a.volumes.map((v) => ({ tokensPerMonth: v.tokensPerMonth, yours: v.isYours, instances: v.instances, hosted: v.hosted, ...v.selfHosted })),
    triggers: a.triggers,
    recommendation: a.recommendation,
    assumptions: i.assumptions,
    ...(actual ? { actual } : {}),
  };
}

function csvText(i: Inputs, a: Analysis): string {
  const head = ['tokens_per_month', 'yours', 'instances', 'hosted_usd', ...i.options.map((o) => `${LABEL[o].replace(/ 1y$/, '').replace('-', '_')}_usd`)];
  const rows = a.volumes.map((v) => [
    String(v.tokensPerMonth),
    v.isYours ? 'yes' : 'no',
    String(v.instances),
    v.hosted.toFixed(4),
    ...i.options.map((o) => (v.selfHosted[o] ?? NaN).toFixed(4)),
  ]);
  return [head, ...rows].map((r) => r.join(',')).join('\n') + '\n';
}

function htmlText(i: Inputs, a: Analysis, now: Date): string {
  const w = i.workload;
  const lo = Math.min(1e6, w.tokensPerMonth / 10);
  const hi = Math.max(1e10, w.tokensPerMonth * 10);
  const xs = logSpace(lo, hi, 161);
  const colours: Record<PricingOption, string> = { onDemand: '#d62728', reserved: '#1f77b4', spot: '#2ca02c' };
  const series = [
    { name: `hosted (${i.hosted.model})`, colour: '#ff7f0e', points: xs.map((x): [number, number] => [x, hostedMonthly(i.hosted, x)]) },
    ...i.options.map((o) => ({
      name: `self-hosted ${i.instance.type} ${LABEL[o]}`,
      colour: colours[o],
      points: xs.map((x): [number, number] => [x, selfHostedMonthly(w, i.self, o, x).total]),
    })),
  ];
  const markers = [
    { x: w.tokensPerMonth, label: `your volume ${fmtTokens(w.tokensPerMonth)}` },
    ...a.results.filter((r) => r.breakEvenTokensPerMonth !== null).map((r) => ({ x: r.breakEvenTokensPerMonth!, label: `break-even ${LABEL[r.option]}` })),
  ];
  return renderHtmlReport({
    title: `embedctl cost report: ${fmtTokens(w.tokensPerMonth)} tokens/month, ${i.hosted.model} vs ${i.instance.type}`,
    generatedAt: now.toISOString(),
    summary: [
      `Recommendation: ${a.recommendation.decision} - ${a.recommendation.reason}`,
      `Hosted: ${fmtUsd(a.hosted)}/month.`,
      ...a.results.map(
        (r) =>
          `Self-hosted ${LABEL[r.option]}: ${fmtUsd(r.monthly.total)}/month on ${r.monthly.instances} instance(s); break-even ${r.breakEvenTokensPerMonth === null ? 'never' : `${fmtTokens(r.breakEvenTokensPerMonth)} tokens/month`}.`,
      ),
    ],
    series,
    markers,
    tables: [
      {
        caption: 'Monthly cost by volume (USD)',
        headers: ['tokens/month', 'instances', 'hosted', ...i.options.map((o) => LABEL[o])],
        rows: a.volumes.map((v) => [`${fmtTokens(v.tokensPerMonth)}${v.isYours ? ' (yours)' : ''}`, String(v.instances), fmtUsd(v.hosted), ...i.options.map((o) => fmtUsd(v.selfHosted[o] ?? NaN))]),
      },
      {
        caption: 'Migration triggers',
        headers: ['trigger', 'value', 'fires', 'basis'],
        rows: a.triggers.map((t) => [t.description, t.value === null ? 'unknown' : `${Number(t.value.toPrecision(4))} ${t.unit}`, t.fired === null ? 'not evaluated' : t.fired ? 'yes' : 'no', t.basis]),
      },
      { caption: 'Assumptions', headers: ['assumption', 'value', 'unit', 'source'], rows: i.assumptions.map((x) => [x.name, String(x.value), x.unit, x.source]) },
    ],
  });
}

function textReport(i: Inputs, a: Analysis, log: Logger, actual?: { costs: ActualCosts; usage: UsageMetrics }): string {
  const w = i.workload;
  const out: string[] = [];
  out.push(
    `Workload: ${fmtTokens(w.tokensPerMonth)} tokens/month (${fmtTokens(w.embeddingsPerMonth)} embeddings), peak ${Math.round(a.peakPerMinute).toLocaleString('en-US')} embeddings/min` +
      (w.initialIndexTokens > 0 ? `; one-time indexing of ${fmtTokens(w.initialIndexTokens)} tokens` : ''),
  );
  out.push(`Hosted: ${i.hosted.provider} ${i.hosted.model} at $${i.hosted.pricePerMillion}/1M tokens = ${fmtUsd(a.hosted)}/month`);
  out.push(`Self-hosted: ${i.instance.type} in ${i.instance.region} (${i.instance.gpu ?? '?'}, ${i.self.capacityPerInstance.toLocaleString('en-US')} embeddings/min each)`);
  out.push('');
  out.push('Monthly cost by volume');
  out.push(
    table(
      ['tokens/month', 'instances', 'hosted', ...i.options.map((o) => LABEL[o])],
      a.volumes.map((v) => [`${fmtTokens(v.tokensPerMonth)}${v.isYours ? ' (yours)' : ''}`, v.instances, fmtUsd(v.hosted), ...i.options.map((o) => fmtUsd(v.selfHosted[o] ?? NaN))]),
      ['left', 'right', 'right', ...i.options.map(() => 'right' as const)],
    ),
  );
  out.push(
    barChart({
      title: 'Monthly cost',
      categories: a.volumes.map((v) => fmtTokens(v.tokensPerMonth)),
      series: [{ name: 'hosted', values: a.volumes.map((v) => v.hosted) }, ...i.options.map((o) => ({ name: LABEL[o], values: a.volumes.map((v) => v.selfHosted[o] ?? null) }))],
      format: fmtUsd,
      c: log.c,
      highlight: new Set(a.volumes.flatMap((v, k) => (v.isYours ? [k] : []))),
    }),
  );
  out.push(`At your volume (${fmtTokens(w.tokensPerMonth)} tokens/month)`);
  const r = a.results;
  const line = (name: string, f: (x: OptionResult) => string) => [name, ...r.map(f)];
  out.push(
    table(
      ['', ...r.map((x) => LABEL[x.option])],
      [
        line('hourly price', (x) => `$${x.hourly}`),
        line('instances', (x) => String(x.monthly.instances)),
        line('compute', (x) => fmtUsd(x.monthly.compute)),
        line('EBS', (x) => fmtUsd(x.monthly.ebs)),
        line('snapshots', (x) => fmtUsd(x.monthly.snapshots)),
        line('egress', (x) => fmtUsd(x.monthly.egress)),
        line('load balancer', (x) => fmtUsd(x.monthly.loadBalancer)),
        line('monitoring', (x) => fmtUsd(x.monthly.monitoring)),
        line('engineering upkeep', (x) => fmtUsd(x.monthly.maintenance)),
        line('self-hosted / month', (x) => fmtUsd(x.monthly.total)),
        line('hosted / month', () => fmtUsd(a.hosted)),
        line('savings / month', (x) => fmtUsd(x.savingsPerMonth)),
        line('one-time set-up', (x) => fmtUsd(x.oneTime.total)),
        line('payback', (x) => (x.paybackMonths === null ? 'never' : `${x.paybackMonths.toFixed(1)} months`)),
        line(`${i.months}-month savings`, (x) => fmtUsd(x.horizon.savings)),
        line('break-even', (x) => (x.breakEvenTokensPerMonth === null ? 'never' : `${fmtTokens(x.breakEvenTokensPerMonth)} tokens/month`)),
      ],
      ['left', ...r.map(() => 'right' as const)],
    ),
  );
  if (w.initialIndexTokens > 0) out.push(`One-time initial indexing of ${fmtTokens(w.initialIndexTokens)} tokens: hosted ${fmtUsd(a.hostedInitialIndexing)}, self-hosted ${r[0]!.oneTime.indexingInstanceHours.toFixed(1)} instance-hours (in the set-up above).\n`);
  out.push('Migration triggers');
  out.push(
    table(
      ['trigger', 'value', 'fires'],
      a.triggers.map((t) => [t.description, t.value === null ? 'unknown' : `${Number(t.value.toPrecision(4)).toLocaleString('en-US')} ${t.unit}`, t.fired === null ? `- (${t.basis})` : t.fired ? 'YES' : 'no']),
    ),
  );
  const decision = { 'stay-hosted': 'STAY HOSTED', migrate: 'MIGRATE', hybrid: 'HYBRID' }[a.recommendation.decision];
  out.push(`Recommendation: ${decision}: ${a.recommendation.reason}\n`);
  if (actual) {
    const c = actual.costs;
    out.push(`Actual AWS cost of resources tagged ${MANAGED_TAG.key}=${MANAGED_TAG.value} (Cost Explorer)`);
    const rows: string[][] = [];
    if (c.lastMonth) rows.push([`last month ${c.lastMonth.start}`, fmtUsd(c.lastMonth.total), c.lastMonth.byService.slice(0, 3).map((s) => `${s.service} ${fmtUsd(s.amount)}`).join('; ')]);
    if (c.monthToDate) rows.push([`month to date ${c.monthToDate.start}..${c.monthToDate.end}`, fmtUsd(c.monthToDate.total), c.monthToDate.byService.slice(0, 3).map((s) => `${s.service} ${fmtUsd(s.amount)}`).join('; ')]);
    rows.push(['forecast, rest of month', c.forecastRestOfMonth ? fmtUsd(c.forecastRestOfMonth.amount) : 'n/a', c.forecastNote ?? '']);
    out.push(table(['period', 'cost', 'top services'], rows));
    const u = actual.usage;
    out.push(`Usage, last ${u.days} days (CloudWatch): ${u.embeddings === null ? 'no embeddings metric' : `${Math.round(u.embeddings).toLocaleString('en-US')} embeddings`}, ${u.requests === null ? 'no requests metric' : `${Math.round(u.requests).toLocaleString('en-US')} requests`}${u.cpuPercent === null ? '' : `, mean CPU ${u.cpuPercent.toFixed(1)}%`}\n`);
  }
  out.push('Assumptions (override any of them with the flag, EMBEDCTL_* env or embedctl.yaml cost:)');
  out.push(table(['assumption', 'value', 'unit', 'source'], i.assumptions.map((x) => [x.name, x.value === null ? 'n/a' : String(x.value), x.unit, x.source])));
  return out.join('\n');
}

/** Instance ids embedctl provisioned, from the provision state file when there is one. */
function provisionedInstanceIds(ctx: Context): string[] {
  try {
    const text = readFileSync(join(ctx.cwd, '.embedctl', 'state.json'), 'utf8');
    return [...new Set(text.match(/\bi-[0-9a-f]{8,17}\b/g) ?? [])];
  } catch {
    return [];
  }
}

export function register(program: Command, ctx: Context, holder: ExitHolder): void {
  const cmd = program
    .command('cost-report')
    .description('Whether self-hosting pays for your workload: monthly cost by volume, break-even, triggers and a recommendation')
    .option('--tokens-per-month <n>', 'monthly embedding volume in tokens (2e9, 1_000_000, 10M, 2B)')
    .option('--queries-per-month <n>', 'or: queries embedded per month ...')
    .option('--tokens-per-query <n>', '... times tokens per query ...')
    .option('--corpus-tokens <n>', '... plus the corpus size in tokens (indexed once, reported as one-time cost) ...')
    .option('--churn <fraction>', '... times the share re-embedded each month (0.1 or 10%)')
    .option('--tokens-per-text <n>', 'average tokens per embedded document chunk (default 256)')
    .option('--peak-factor <x>', 'busiest minute over the average minute (default 3)')
    .option('--provider <name>', 'hosted provider: jina, openai or custom (default jina)')
    .option('--model <name>', 'hosted model (default jina-embeddings-v3 / text-embedding-3-small)')
    .option('--price-per-million <usd>', 'hosted price per 1M tokens (overrides the built-in one)')
    .option('--hosted-dimensions <n>', "dimensions of the hosted model's vectors (for the indexed-data trigger)")
    .option('--hosted-p95-ms <ms>', 'p95 latency you see from the hosted API today')
    .option('--instance-type <type>', `EC2 instance type (default g4dn.xlarge; built in: ${Object.keys(INSTANCES).join(', ')})`)
    .option('--region <region>', 'AWS region (default us-east-1; others need --live-pricing)')
    .option('--pricing <option>', 'on-demand, reserved, spot or all (default all)')
    .option('--instances <n>', 'fixed instance count (default: enough for the peak)')
    .option('--capacity-from <file>', 'load-test report (embedctl.load-test/v1) for embeddings/min per instance and p95')
    .option('--dimensions <n>', 'self-hosted model dimensions (default 384)')
    .option('--encoding <enc>', 'response encoding, float or base64 (default float)')
    .option('--ebs-gb <n>', 'gp3 volume per instance in GB (default 100)')
    .option('--ebs-iops <n>', 'gp3 IOPS per volume (default 3000, the free baseline)')
    .option('--ebs-throughput <MBps>', 'gp3 throughput per volume (default 125, the free baseline)')
    .option('--snapshot-gb <n>', 'snapshot GB kept (default: one volume)')
    .option('--egress-share <fraction>', 'share of responses leaving AWS to the internet (default 1; 0 when callers are in-region)')
    .option('--load-balancer', 'add an application load balancer')
    .option('--alarms <n>', 'CloudWatch alarms (default 4)')
    .option('--custom-metrics <n>', 'CloudWatch custom metrics (default 3)')
    .option('--engineering-hours <h>', 'one-time set-up effort in hours (default 0)')
    .option('--maintenance-hours <h>', 'upkeep hours per month (default 0)')
    .option('--hourly-rate <usd>', 'engineering cost per hour (default 100)')
    .option('--months <n>', 'horizon for the total (default 12)')
    .option('--live-pricing', 'read EC2 prices from the AWS Pricing API and spot price history')
    .option('--actual', 'add the real bill (Cost Explorer, $0.01 per request) and usage (CloudWatch)')
    .option('--csv', 'print the cost-by-volume table as CSV on stdout')
    .option('--html <file>', 'also write a self-contained HTML report with an SVG chart');
  cmd.addHelpText(
    'after',
    '\nEvery value flag can also come from EMBEDCTL_<FLAG_NAME> (e.g. EMBEDCTL_TOKENS_PER_MONTH) or from the\n' +
      "cost: section of embedctl.yaml in camelCase (e.g. cost.tokensPerMonth); the report lists each value's source.\n",
  );
  examples(cmd, [
    'embedctl cost-report --tokens-per-month 2e9',
    'embedctl cost-report --queries-per-month 1M --tokens-per-query 10 --corpus-tokens 100M --churn 10% --pricing all',
    'embedctl cost-report --tokens-per-month 5B --provider openai --model text-embedding-3-large --instance-type g5.xlarge',
    'embedctl cost-report --tokens-per-month 2B --capacity-from .embedctl/reports/load-test.json --engineering-hours 40 --hourly-rate 120',
    'embedctl cost-report --tokens-per-month 2B --json > cost.json && embedctl cost-report --tokens-per-month 2B --html cost.html',
    'embedctl cost-report --tokens-per-month 2B --live-pricing --region eu-west-1 --actual',
  ]);
  cmd.action(
    action<Opts>(ctx, holder, async ({ opts, globals, log }) => {
      if (opts.csv && globals.json) throw new UsageError('choose one of --json and --csv', { field: '--csv' });
      const inputs = await resolveInputs(ctx, opts, log);
      const a = analyse(inputs);
      let actual: { costs: ActualCosts; usage: UsageMetrics } | undefined;
      if (inputs.output.actual) {
        log.warn('--actual calls Cost Explorer, which bills $0.01 per request (this run makes at least 2)');
        const costs = await fetchActualCosts(ctx);
        const usage = await fetchUsage(ctx, inputs.instance.region, provisionedInstanceIds(ctx));
        log.info(`Cost Explorer requests made: ${costs.costExplorerRequests} ($${(costs.costExplorerRequests * 0.01).toFixed(2)})`);
        actual = { costs, usage };
      }
      if (inputs.output.html) {
        const path = isAbsolute(inputs.output.html) ? inputs.output.html : join(ctx.cwd, inputs.output.html);
        try {
          await writeFileAtomic(path, htmlText(inputs, a, ctx.now()));
        } catch (err) {
          throw new UsageError(`cannot write ${path}: ${(err as Error).message}`, { field: '--html' });
        }
        log.info(`wrote ${path}`);
      }
      if (globals.json) printJson(ctx, 'cost-report', jsonDoc(inputs, a, actual));
      else if (inputs.output.csv) ctx.stdout.write(csvText(inputs, a));
      else ctx.stdout.write(textReport(inputs, a, log, actual));
      log.verbose(`price table ${PRICE_TABLE_DATE}, ${PRICE_TABLE_REGION}; embeddings at your volume: ${embeddingsAt(inputs.workload, inputs.workload.tokensPerMonth)}`);
    }),
  );
}
