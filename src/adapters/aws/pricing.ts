import { DescribeSpotPriceHistoryCommand, EC2Client, type SpotPrice, type _InstanceType } from '@aws-sdk/client-ec2';
import { GetProductsCommand, PricingClient } from '@aws-sdk/client-pricing';
import type { Context } from '../../context.js';
import { UsageError } from '../../errors.js';
import { mapAwsError } from './errors.js';

/**
 * Live EC2 prices for --live-pricing: the Pricing API (on-demand and 1-year no-upfront reserved)
 * and the spot price history. Injected clients: ctx.adapters.pricingClient, ctx.adapters.ec2Client.
 */

/** The Pricing API's "location" attribute for each region (the API filters on the name, not the code). */
export const REGION_LOCATIONS: Record<string, string> = {
  'us-east-1': 'US East (N. Virginia)',
  'us-east-2': 'US East (Ohio)',
  'us-west-1': 'US West (N. California)',
  'us-west-2': 'US West (Oregon)',
  'ca-central-1': 'Canada (Central)',
  'eu-west-1': 'EU (Ireland)',
  'eu-west-2': 'EU (London)',
  'eu-west-3': 'EU (Paris)',
  'eu-central-1': 'EU (Frankfurt)',
  'eu-north-1': 'EU (Stockholm)',
  'ap-south-1': 'Asia Pacific (Mumbai)',
  'ap-northeast-1': 'Asia Pacific (Tokyo)',
  'ap-northeast-2': 'Asia Pacific (Seoul)',
  'ap-southeast-1': 'Asia Pacific (Singapore)',
  'ap-southeast-2': 'Asia Pacific (Sydney)',
  'sa-east-1': 'South America (Sao Paulo)',
};

export interface LivePrices {
  instanceType: string;
  region: string;
  onDemand: number | null;
  reserved: number | null;
  spot: number | null;
  spotZones: string[];
  vcpu?: number;
  memory?: string;
  gpu?: string;
  fetchedAt: string;
}

interface PriceDimension {
  unit?: string;
  pricePerUnit?: { USD?: string };
}
interface Term {
  termAttributes?: Record<string, string>;
  priceDimensions?: Record<string, PriceDimension>;
}
interface PriceListItem {
  product?: { attributes?: Record<string, string> };
  terms?: { OnDemand?: Record<string, Term>; Reserved?: Record<string, Term> };
}

function hourly(term: Term): number | undefined {
  for (const d of Object.values(term.priceDimensions ?? {})) {
    if (d.unit === 'Hrs' && d.pricePerUnit?.USD !== undefined) {
      const v = Number(d.pricePerUnit.USD);
      if (Number.isFinite(v)) return v;
    }
  }
  return undefined;
}

/** On-demand and 1-year standard no-upfront reserved hourly prices from one GetProducts answer. */
export function parsePriceList(items: unknown[]): Pick<LivePrices, 'onDemand' | 'reserved' | 'vcpu' | 'memory' | 'gpu'> {
  for (const raw of items) {
    const item = (typeof raw === 'string' ? JSON.parse(raw) : JSON.parse(String(raw))) as PriceListItem;
    const onDemand = Object.values(item.terms?.OnDemand ?? {})
      .map(hourly)
      .find((v) => v !== undefined && v > 0);
    if (onDemand === undefined) continue;
    const reserved = Object.values(item.terms?.Reserved ?? {})
      .filter((t) => {
        const a = t.termAttributes ?? {};
        return a.LeaseContractLength === '1yr' && a.PurchaseOption === 'No Upfront' && (a.OfferingClass ?? 'standard') === 'standard';
      })
      .map(hourly)
      .find((v) => v !== undefined && v > 0);
    const attrs = item.product?.attributes ?? {};
    return {
      onDemand,
      reserved: reserved ?? null,
      vcpu: attrs.vcpu ? Number(attrs.vcpu) : undefined,
      memory: attrs.memory,
      gpu: attrs.gpu,
    };
  }
  return { onDemand: null, reserved: null };
}

/** Average over availability zones of each zone's latest spot price. */
export function averageSpot(prices: SpotPrice[]): { price: number | null; zones: string[] } {
  const latest = new Map<string, { at: number; price: number }>();
  for (const p of prices) {
    const zone = p.AvailabilityZone ?? '?';
    const price = Number(p.SpotPrice);
    const at = p.Timestamp ? new Date(p.Timestamp).getTime() : 0;
    if (!Number.isFinite(price)) continue;
    const prev = latest.get(zone);
    if (!prev || at > prev.at) latest.set(zone, { at, price });
  }
  const vals = [...latest.values()].map((v) => v.price);
  return { price: vals.length ? vals.reduce((a, b) => a + b, 0) / vals.length : null, zones: [...latest.keys()].sort() };
}

export async function fetchLivePrices(ctx: Context, instanceType: string, region: string): Promise<LivePrices> {
  const location = REGION_LOCATIONS[region];
  if (!location) {
    throw new UsageError(`no Pricing API location name known for region ${JSON.stringify(region)}`, {
      field: '--region',
      hint: `known: ${Object.keys(REGION_LOCATIONS).join(', ')}`,
    });
  }
  // The Pricing API is served from us-east-1 (and two other regions) whatever region is priced.
  const pricing = ctx.adapters.pricingClient ?? new PricingClient({ region: 'us-east-1' });
  const ec2 = ctx.adapters.ec2Client ?? new EC2Client({ region });
  const items: unknown[] = [];
  try {
    let token: string | undefined;
    do {
      const out = await pricing.send(
        new GetProductsCommand({
          ServiceCode: 'AmazonEC2',
          FormatVersion: 'aws_v1',
          MaxResults: 100,
          NextToken: token,
          Filters: [
            { Type: 'TERM_MATCH', Field: 'instanceType', Value: instanceType },
            { Type: 'TERM_MATCH', Field: 'location', Value: location },
            { Type: 'TERM_MATCH', Field: 'operatingSystem', Value: 'Linux' },
            { Type: 'TERM_MATCH', Field: 'tenancy', Value: 'Shared' },
            { Type: 'TERM_MATCH', Field: 'preInstalledSw', Value: 'NA' },
            { Type: 'TERM_MATCH', Field: 'capacitystatus', Value: 'Used' },
          ],
        }),
        { abortSignal: ctx.signal },
      );
      items.push(...(out.PriceList ?? []));
      token = out.NextToken;
    } while (token && items.length < 1000);
  } catch (err) {
    throw mapAwsError(err, { action: 'pricing:GetProducts', region: 'us-east-1' });
  }
  const parsed = parsePriceList(items);
  const now = ctx.now();
  const spots: SpotPrice[] = [];
  try {
    let token: string | undefined;
    let pages = 0;
    do {
      const out = await ec2.send(
        new DescribeSpotPriceHistoryCommand({
          InstanceTypes: [instanceType as _InstanceType],
          ProductDescriptions: ['Linux/UNIX'],
          StartTime: new Date(now.getTime() - 24 * 3600 * 1000),
          EndTime: now,
          NextToken: token,
        }),
        { abortSignal: ctx.signal },
      );
      spots.push(...(out.SpotPriceHistory ?? []));
      token = out.NextToken || undefined;
    } while (token && ++pages < 20);
  } catch (err) {
    throw mapAwsError(err, { action: 'ec2:DescribeSpotPriceHistory', region });
  }
  const spot = averageSpot(spots);
  return { instanceType, region, ...parsed, spot: spot.price, spotZones: spot.zones, fetchedAt: now.toISOString() };
}
