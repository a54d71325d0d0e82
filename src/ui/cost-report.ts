import type { ChalkInstance } from 'chalk';
import type { UsageMetrics } from '../adapters/aws/cloudwatch-metrics.js';
import { MANAGED_TAG, type ActualCosts } from '../adapters/aws/cost-explorer.js';
import { hostedMonthly, logSpace, selfHostedMonthly, type OptionResult, type PricingOption } from '../core/cost/model.js';
import type { Analysis, CostInputs } from '../core/cost/report.js';
import { barChart } from './chart.js';
import { renderHtmlReport } from './html-report.js';
import { fmtUsd as fmtUsdRaw, table } from './output.js';

/** Renderings of one cost report: JSON document, CSV, HTML and the terminal text. */

/** The real bill and usage that --actual adds. */
export interface ActualData {
  costs: ActualCosts;
  usage: UsageMetrics;
}

export const LABEL: Record<PricingOption, string> = { onDemand: 'on-demand', reserved: 'reserved 1y', spot: 'spot' };

/** fmtUsd with the sign before the dollar and sub-cent amounts kept visible. */
export function fmtUsd(n: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  if (n !== 0 && Math.abs(n) < 0.01) return `${n < 0 ? '-' : ''}$${Math.abs(n).toPrecision(2)}`;
  return n < 0 ? `-${fmtUsdRaw(-n)}` : fmtUsdRaw(n);
}

function fmtTokens(n: number): string {
  for (const [d, s] of [[1e12, 'T'], [1e9, 'B'], [1e6, 'M'], [1e3, 'K']] as const) {
    if (n >= d) return `${Number((n / d).toPrecision(3))}${s}`;
  }
  return String(Number(n.toPrecision(3)));
}

export function jsonDoc(i: CostInputs, a: Analysis, actual: ActualData | undefined, now: Date) {
  const pick = <T>(f: (r: OptionResult) => T) => Object.fromEntries(a.results.map((r) => [r.option, f(r)]));
  return {
    // When it was computed: rollout judges the age of its cost evidence by this.
    generatedAt: now.toISOString(),
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

export function csvText(i: CostInputs, a: Analysis): string {
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

export function htmlText(i: CostInputs, a: Analysis, now: Date): string {
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

export function textReport(i: CostInputs, a: Analysis, c: ChalkInstance, actual?: ActualData): string {
  const w = i.workload;
  const out: string[] = [];
  out.push(
    `Workload: ${fmtTokens(w.tokensPerMonth)} tokens/month (${fmtTokens(w.embeddingsPerMonth)} embeddings), peak ${Math.round(a.peakPerMinute).toLocaleString('en-US')} embeddings/min` +
      (w.initialIndexTokens > 0 ? `; one-time indexing of ${fmtTokens(w.initialIndexTokens)} tokens` : ''),
  );
  out.push(`Hosted: ${i.hosted.provider} ${i.hosted.model} at $${i.hosted.pricePerMillion}/1M tokens = ${fmtUsd(a.hosted)}/month`);
  out.push(`Self-hosted: ${i.instance.type} in ${i.instance.region} (${i.instance.gpu ?? '?'}, ${i.self.capacityPerInstance.toLocaleString('en-US')} embeddings/min each)`);
  out.push(`Capacity: ${i.instance.capacitySource}`);
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
      c,
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
