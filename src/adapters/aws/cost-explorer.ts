import {
  CostExplorerClient,
  GetCostAndUsageCommand,
  GetCostForecastCommand,
  ListCostAllocationTagsCommand,
  UpdateCostAllocationTagsStatusCommand,
  type Expression,
  type ResultByTime,
} from '@aws-sdk/client-cost-explorer';
import type { Context } from '../../context.js';
import { mapAwsError } from './errors.js';

/**
 * What embedctl's resources actually cost, from Cost Explorer. Every Cost Explorer request is billed
 * ($0.01 each), so the command warns and this adapter counts its requests.
 * Injected client: ctx.adapters.costExplorerClient.
 */

export const MANAGED_TAG = { key: 'embedctl:managed', value: 'true' } as const;

export const TAG_FILTER: Expression = {
  Tags: { Key: MANAGED_TAG.key, Values: [MANAGED_TAG.value], MatchOptions: ['EQUALS'] },
};

export interface PeriodCost {
  start: string;
  end: string;
  total: number;
  estimated: boolean;
  byService: Array<{ service: string; amount: number }>;
}

export interface ActualCosts {
  lastMonth: PeriodCost | null;
  monthToDate: PeriodCost | null;
  /** Forecast for the rest of this month; null when Cost Explorer has too little data. */
  forecastRestOfMonth: { start: string; end: string; amount: number } | null;
  forecastNote?: string;
  currency: string;
  costExplorerRequests: number;
  /** Whether Cost Explorer honours the embedctl:managed tag; when not, every figure above is $0. */
  tag: CostTagStatus;
}

const day = (d: Date) => d.toISOString().slice(0, 10);

/** [first of last month, first of this month, today, first of next month], UTC dates. */
export function costPeriods(now: Date) {
  const y = now.getUTCFullYear();
  const m = now.getUTCMonth();
  return {
    lastMonthStart: day(new Date(Date.UTC(y, m - 1, 1))),
    monthStart: day(new Date(Date.UTC(y, m, 1))),
    today: day(new Date(Date.UTC(y, m, now.getUTCDate()))),
    nextMonthStart: day(new Date(Date.UTC(y, m + 1, 1))),
  };
}

function toPeriod(r: ResultByTime): PeriodCost {
  const byService = (r.Groups ?? [])
    .map((g) => ({ service: g.Keys?.[0] ?? '?', amount: Number(g.Metrics?.UnblendedCost?.Amount ?? 0) }))
    .filter((g) => Number.isFinite(g.amount))
    .sort((a, b) => b.amount - a.amount);
  return {
    start: r.TimePeriod?.Start ?? '',
    end: r.TimePeriod?.End ?? '',
    total: byService.reduce((a, g) => a + g.amount, 0),
    estimated: Boolean(r.Estimated),
    byService,
  };
}

/** The tags embedctl puts on everything and filters costs by. */
export const COST_TAGS = [MANAGED_TAG.key, 'embedctl:deployment'] as const;

export interface CostTagStatus {
  key: string;
  /** active; inactive (known to billing, not activated); unseen (billing has not seen it on any resource yet). */
  status: 'active' | 'inactive' | 'unseen';
  /** What to do about it, when not active. */
  hint?: string;
}

export const activateHint = (keys: readonly string[]) =>
  `activate it: \`aws ce update-cost-allocation-tags-status --cost-allocation-tags-status ${keys.map((k) => `TagKey=${k},Status=Active`).join(' ')}\` (or Billing > Cost allocation tags; or \`embedctl provision --activate-cost-tags\`); costs show from activation on, about 24 h later`;

/**
 * Cost Explorer filters on a tag only after it is activated as a cost-allocation tag
 * (ListCostAllocationTags). Billed like every Cost Explorer request.
 */
export async function costTagStatus(ce: CostExplorerClient, key: string = MANAGED_TAG.key): Promise<CostTagStatus> {
  let found;
  try {
    const out = await ce.send(new ListCostAllocationTagsCommand({ TagKeys: [key] }));
    found = out?.CostAllocationTags?.find((t) => t.TagKey === key);
  } catch (err) {
    throw mapAwsError(err, { action: 'ce:ListCostAllocationTags', region: 'us-east-1' });
  }
  if (found?.Status === 'Active') return { key, status: 'active' };
  if (found) return { key, status: 'inactive', hint: `the cost-allocation tag ${key} is not active, so Cost Explorer reports $0 for it; ${activateHint([key])}` };
  return {
    key,
    status: 'unseen',
    hint: `billing has not seen the tag ${key} on any resource yet (it appears up to 24 h after provision), so Cost Explorer reports $0; once it appears, ${activateHint([key])}`,
  };
}

/** Activates the given user tags as cost-allocation tags; returns the keys AWS refused, with why. */
export async function activateCostTags(ce: CostExplorerClient, keys: readonly string[]): Promise<Array<{ key: string; reason: string }>> {
  try {
    const out = await ce.send(
      new UpdateCostAllocationTagsStatusCommand({ CostAllocationTagsStatus: keys.map((TagKey) => ({ TagKey, Status: 'Active' as const })) }),
    );
    return (out?.Errors ?? []).map((e) => ({ key: e.TagKey ?? '?', reason: `${e.Code ?? ''} ${e.Message ?? ''}`.trim() }));
  } catch (err) {
    throw mapAwsError(err, { action: 'ce:UpdateCostAllocationTagsStatus', region: 'us-east-1' });
  }
}

export function costExplorerClient(): CostExplorerClient {
  return new CostExplorerClient({ region: 'us-east-1' });
}

export async function fetchActualCosts(ctx: Context): Promise<ActualCosts> {
  // Cost Explorer has one endpoint, in us-east-1.
  const ce = ctx.adapters.costExplorerClient ?? new CostExplorerClient({ region: 'us-east-1' });
  const p = costPeriods(ctx.now());
  let requests = 1;
  const tag = await costTagStatus(ce);
  const results: ResultByTime[] = [];
  let currency = 'USD';
  try {
    let token: string | undefined;
    do {
      requests++;
      const out = await ce.send(
        new GetCostAndUsageCommand({
          // End is exclusive: on the 1st of a month only last month comes back.
          TimePeriod: { Start: p.lastMonthStart, End: p.today },
          Granularity: 'MONTHLY',
          Metrics: ['UnblendedCost'],
          GroupBy: [{ Type: 'DIMENSION', Key: 'SERVICE' }],
          Filter: TAG_FILTER,
          NextPageToken: token,
        }),
        { abortSignal: ctx.signal },
      );
      results.push(...(out.ResultsByTime ?? []));
      const unit = out.ResultsByTime?.[0]?.Groups?.[0]?.Metrics?.UnblendedCost?.Unit;
      if (unit) currency = unit;
      token = out.NextPageToken;
    } while (token && requests < 10);
  } catch (err) {
    throw mapAwsError(err, { action: 'ce:GetCostAndUsage', region: 'us-east-1' });
  }
  // Merge pages: the same month can be split across pages by its groups.
  const byStart = new Map<string, ResultByTime>();
  for (const r of results) {
    const k = r.TimePeriod?.Start ?? '';
    const prev = byStart.get(k);
    if (prev) prev.Groups = [...(prev.Groups ?? []), ...(r.Groups ?? [])];
    else byStart.set(k, { ...r, Groups: [...(r.Groups ?? [])] });
  }
  const last = byStart.get(p.lastMonthStart);
  const mtd = byStart.get(p.monthStart);

  let forecast: ActualCosts['forecastRestOfMonth'] = null;
  let forecastNote: string | undefined;
  try {
    requests++;
    const out = await ce.send(
      new GetCostForecastCommand({
        TimePeriod: { Start: p.today, End: p.nextMonthStart },
        Metric: 'UNBLENDED_COST',
        Granularity: 'MONTHLY',
        Filter: TAG_FILTER,
      }),
      { abortSignal: ctx.signal },
    );
    const amount = Number(out.Total?.Amount);
    if (Number.isFinite(amount)) forecast = { start: p.today, end: p.nextMonthStart, amount };
  } catch (err) {
    const code = (err as { name?: string })?.name;
    // A young account or tag has too little history to forecast: a gap in the report, not a failure.
    if (code === 'DataUnavailableException') forecastNote = 'Cost Explorer has too little history to forecast yet';
    else throw mapAwsError(err, { action: 'ce:GetCostForecast', region: 'us-east-1' });
  }
  return {
    lastMonth: last ? toPeriod(last) : null,
    monthToDate: mtd ? toPeriod(mtd) : null,
    forecastRestOfMonth: forecast,
    forecastNote,
    currency,
    costExplorerRequests: requests,
    tag,
  };
}
