import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { Resolved } from '../config.js';
import type { Context } from '../context.js';
import { ExternalError, UsageError } from '../errors.js';
import { capacityFromLoadReport, CapacityRefused, type LoadReportCapacity } from '../core/cost/inputs.js';
import { loadTestReport } from '../contracts/reports.js';
import { DEFAULT_UNIT_PRICES, PRICING_OPTIONS, type PricingOption, type Workload } from '../core/cost/model.js';
import { AWS_UNIT_PRICES, DEFAULT_HOSTED_MODEL, hostedModel, HOSTED_MODELS, HOURS_PER_MONTH, INSTANCES, PRICE_TABLE_REGION } from '../core/cost/prices.js';
import type { Assumption, CostInputs } from '../core/cost/report.js';
import { LABEL } from '../ui/cost-report.js';
import type { Logger } from '../ui/output.js';
import type { Sources, Values } from './define.js';
import type { COST_OPTIONS } from './define-options.js';

/**
 * cost-report's inputs: the option table's values (flag > env > embedctl.yaml cost: > default)
 * turned into the cost model's inputs, each assumption carrying its source for the report.
 */

/** Bytes per vector component in a response: measured JSON.stringify of float32 values as JS numbers. */
const BYTES_PER_VALUE = { float: 20.8, base64: (4 * 4) / 3 } as const;
const REQUEST_BYTES_PER_TOKEN = 4;
type Resolution = { values: Values<typeof COST_OPTIONS>; sources: Sources<typeof COST_OPTIONS> };

const RANK = { flag: 3, env: 2, file: 1, default: 0 } as const;

function describeSource(r: Resolved<unknown>, fallback: string): string {
  return r.source === 'default' ? `default: ${fallback}` : r.origin;
}

export async function resolveInputs(ctx: Context, r: Resolution, log: Logger): Promise<CostInputs> {
  const assumptions: Assumption[] = [];
  // Each row of the option table with its value and where it came from.
  const src = r.sources as { [K in keyof Resolution['values']]: Resolved<Resolution['values'][K]> };
  const note = (name: string, r: Resolved<unknown>, unit: string, why: string) =>
    assumptions.push({ name, value: r.value as Assumption['value'], unit, source: describeSource(r, why) });

  // Workload: one of the two forms; when both are present the higher-precedence source wins, and
  // two at the same level are a contradiction the user must resolve.
  const { tokensPerMonth: tpm, queriesPerMonth: q, tokensPerQuery: tpq, corpusTokens: corpus, churn, tokensPerText, peakFactor } = src;
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
      // unknown (not 0) when only corpus churn was described: the queries trigger is then not evaluated
      queriesPerMonth: q.value,
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
  const { provider, model: modelR, pricePerMillion: ppm } = src;
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
    // EMBEDCTL_MODEL used to set this too; it is the served model now. Naming a priced hosted
    // model there is most likely an old setting: say which one is priced instead of switching silently.
    const served = ctx.env.EMBEDCTL_MODEL;
    if (modelR.value === undefined && served && hostedModel(provider.value, served) && served !== name) {
      log.warn(`EMBEDCTL_MODEL=${served} is the model a deployment serves; cost-report prices the hosted model from --model / EMBEDCTL_HOSTED_MODEL / cost.model, here ${name}`);
    }
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
  const { hostedDimensions: hostedDimsR } = src;
  if (hostedDimsR.value !== undefined) {
    hostedDims = hostedDimsR.value;
    dimsSource = hostedDimsR.origin;
  }
  assumptions.push({ name: `hosted price (${provider.value} ${hostedName})`, value: price, unit: 'USD per 1M tokens', source: priceSource });
  assumptions.push({ name: 'hosted model dimensions (for the size of today\'s index)', value: hostedDims, unit: 'dims', source: dimsSource });

  // Self-hosted side.
  const { instanceType, region, livePricing, pricing, instances: instancesR, capacityFrom } = src;
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
    const checked = loadTestReport.check(doc, path);
    if (!checked.ok) throw new UsageError(checked.problem, { field: capacityFrom.origin, hint: loadTestReport.fix });
    try {
      report = capacityFromLoadReport(checked.value, workload.tokensPerText);
    } catch (err) {
      if (!(err instanceof CapacityRefused)) throw err;
      throw new UsageError(`${path}: ${err.message}`, { field: capacityFrom.origin, hint: err.hint });
    }
    for (const w of report.warnings) log.warn(`${capacityFrom.origin}: ${w}`);
  }

  const hourly: Record<PricingOption, number | null> = known
    ? { onDemand: known.onDemand, reserved: known.reserved, spot: known.spot }
    : { onDemand: null, reserved: null, spot: null };
  let instPriceSource = known?.source ?? '';
  const instance: CostInputs['instance'] = {
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
    const { fetchLivePrices } = await import('../adapters/aws/pricing.js');
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
    instance.capacitySource = `${capacityFrom.origin} ${capacityFrom.value} (measured capacity at the SLO, ${report.basis}${report.target ? `, target ${report.target}` : ''}; ${report.conversion}, assuming throughput scales with tokens)${known ? `; default rating ${known.ratedEmbeddingsPerMinute.toLocaleString('en-US')} embeddings/min not used` : ''}`;
  } else if (known) {
    capacity = known.ratedEmbeddingsPerMinute;
    instance.capacitySource = `price table rated capacity for ${known.instanceType} (ASSUMPTION for a MiniLM/bge-small class model, ~256-token texts; replace with --capacity-from a load-test report)`;
  } else {
    throw new UsageError(`no rated capacity for ${instanceType.value} in the built-in table`, {
      field: '--capacity-from',
      hint: 'run `embedctl load-test --out report.json` against the runtime on that instance and pass the report',
    });
  }
  if (report) {
    const m = report.measured;
    assumptions.push({ name: `measured capacity per ${instanceType.value} (load-test texts)`, value: m.embeddingsPerMinute, unit: `embeddings/min of ~${m.tokensPerText}-token texts`, source: `capacity.embeddingsPerMinute of ${capacityFrom.value} (${report.basis})` });
    assumptions.push({ name: `measured tokens per ${instanceType.value}`, value: m.tokensPerMinute, unit: 'tokens/min', source: `capacity.tokensPerMinute of ${capacityFrom.value}: the capacity x ~${m.tokensPerText} tokens per text sent (estimate)` });
  }
  assumptions.push({
    name: `capacity per ${instanceType.value}`,
    value: capacity,
    unit: report ? `embeddings/min of ${workload.tokensPerText}-token texts` : 'embeddings/min',
    source: instance.capacitySource,
  });
  if (report && known) assumptions.push({ name: `default rated capacity per ${known.instanceType} (not used)`, value: known.ratedEmbeddingsPerMinute, unit: 'embeddings/min', source: 'price table default (an ASSUMPTION; replaced by the measured figure above)' });
  for (const o of PRICING_OPTIONS) {
    assumptions.push({
      name: `${instanceType.value} ${LABEL[o]} price`,
      value: hourly[o],
      unit: o === 'reserved' ? 'USD/hour (1-year, no upfront, effective)' : o === 'spot' ? 'USD/hour (typical; can be interrupted)' : 'USD/hour',
      source: instPriceSource,
    });
  }
  assumptions.push({ name: 'hours per month', value: HOURS_PER_MONTH, unit: 'h', source: 'AWS billing convention (8,760 h / 12)' });

  const { dimensions: dims, encoding, ebsGb, ebsIops, ebsThroughput: ebsTp, snapshotGb: snapshotGivenR } = src;
  // One snapshot of the volume unless told otherwise: the default follows --ebs-gb.
  const snapshotGb = { ...snapshotGivenR, value: snapshotGivenR.value ?? ebsGb.value };
  const { egressShare } = src;
  if (egressShare.value > 1) throw new UsageError(`must be a fraction between 0 and 1, got ${egressShare.value}`, { field: egressShare.origin });
  const { loadBalancer: lb, alarms, customMetrics: metrics, engineeringHours: eng, maintenanceHours: maint, hourlyRate: rate, months } = src;
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

  // The hosted latency trigger reads the hosted API's p95 only; the load test's is the self-hosted
  // side's, reported on its own against the test's --p95 SLO.
  const { hostedP95Ms: p95Flag } = src;
  const p95Ms = p95Flag.value;
  const p95Basis = p95Flag.value !== undefined ? p95Flag.origin : undefined;
  if (report) {
    const q = report.selfHostedP95;
    const verdict = q.sloP95Ms === null ? 'no --p95 SLO recorded' : `${q.meetsSlo ? 'meets' : 'does NOT meet'} its SLO p95 < ${q.sloP95Ms} ms`;
    assumptions.push({ name: 'self-hosted p95 latency (load test, whole run)', value: q.p95Ms, unit: 'ms', source: `latencyMs.p95 of ${capacityFrom.value}: ${verdict}; not the hosted latency trigger (that is --hosted-p95-ms)` });
  }

  const pricingOpt = pricing.value;
  const wanted: PricingOption[] = pricingOpt === 'all' ? [...PRICING_OPTIONS] : [pricingOpt === 'on-demand' ? 'onDemand' : pricingOpt];
  const options = wanted.filter((o) => hourly[o] !== null);
  if (options.length === 0) throw new ExternalError('aws pricing', `no ${pricingOpt} price available for ${instanceType.value} in ${region.value}`);

  const { csv, html } = r.values;
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
    measured: report && {
      file: capacityFrom.value!,
      capacity: { ...report.measured, conversion: report.conversion },
      p95: report.selfHostedP95,
    },
    options,
    months: months.value,
    assumptions,
    output: { csv, html, actual: src.actual.value, livePricing: livePricing.value },
  };
}
