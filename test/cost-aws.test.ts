import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudWatchClient, GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { CostExplorerClient, GetCostAndUsageCommand, GetCostForecastCommand, ListCostAllocationTagsCommand } from '@aws-sdk/client-cost-explorer';
import { DescribeSpotPriceHistoryCommand, EC2Client } from '@aws-sdk/client-ec2';
import { GetProductsCommand, PricingClient } from '@aws-sdk/client-pricing';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';

const pricing = mockClient(PricingClient);
const ec2 = mockClient(EC2Client);
const ce = mockClient(CostExplorerClient);
const cw = mockClient(CloudWatchClient);
afterEach(() => {
  pricing.reset();
  ec2.reset();
  ce.reset();
  cw.reset();
});
afterAll(() => {
  pricing.restore();
  ec2.restore();
  ce.restore();
  cw.restore();
});

const dir = mkdtempSync(join(tmpdir(), 'embedctl-cost-aws-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const NOW = new Date('2026-11-23T10:00:00Z');
const run = (args: string[], cwd = dir) => runCli(['cost-report', ...args], { cwd, now: () => NOW });

/** The shape the Pricing API returns, trimmed to what matters. */
function product(onDemand: string, reserved: Array<[string, string, string, string]>) {
  return JSON.stringify({
    product: { attributes: { instanceType: 'g5.xlarge', vcpu: '4', memory: '16 GiB', gpu: '1' } },
    terms: {
      OnDemand: { 'SKU.JRTCKXETXF': { priceDimensions: { 'SKU.JRTCKXETXF.6YS6EN2CT7': { unit: 'Hrs', pricePerUnit: { USD: onDemand } } } } },
      Reserved: Object.fromEntries(
        reserved.map(([lease, purchase, cls, usd], i) => [
          `SKU.R${i}`,
          {
            termAttributes: { LeaseContractLength: lease, PurchaseOption: purchase, OfferingClass: cls },
            priceDimensions: {
              [`SKU.R${i}.a`]: { unit: 'Quantity', pricePerUnit: { USD: '1234' } },
              [`SKU.R${i}.b`]: { unit: 'Hrs', pricePerUnit: { USD: usd } },
            },
          },
        ]),
      ),
    },
  });
}

describe('--live-pricing', () => {
  it('asks the Pricing API and spot history with the right filters and prices from the answers', async () => {
    pricing.on(GetProductsCommand).resolves({
      PriceList: [
        product('1.1000000000', [
          ['3yr', 'No Upfront', 'standard', '0.5'],
          ['1yr', 'All Upfront', 'standard', '0.0'],
          ['1yr', 'No Upfront', 'convertible', '0.8'],
          ['1yr', 'No Upfront', 'standard', '0.7000000000'],
        ]),
      ],
    });
    ec2.on(DescribeSpotPriceHistoryCommand).resolves({
      SpotPriceHistory: [
        { AvailabilityZone: 'eu-west-1a', SpotPrice: '0.400000', Timestamp: new Date('2026-11-23T09:00:00Z') },
        { AvailabilityZone: 'eu-west-1a', SpotPrice: '0.900000', Timestamp: new Date('2026-11-22T12:00:00Z') }, // older: ignored
        { AvailabilityZone: 'eu-west-1b', SpotPrice: '0.500000', Timestamp: new Date('2026-11-23T08:00:00Z') },
      ],
    });
    const r = await run(['--tokens-per-month', '1e9', '--instance-type', 'g5.xlarge', '--region', 'eu-west-1', '--live-pricing', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const calls = pricing.commandCalls(GetProductsCommand);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.args[0].input).toEqual({
      ServiceCode: 'AmazonEC2',
      FormatVersion: 'aws_v1',
      MaxResults: 100,
      NextToken: undefined,
      Filters: [
        { Type: 'TERM_MATCH', Field: 'instanceType', Value: 'g5.xlarge' },
        { Type: 'TERM_MATCH', Field: 'location', Value: 'EU (Ireland)' },
        { Type: 'TERM_MATCH', Field: 'operatingSystem', Value: 'Linux' },
        { Type: 'TERM_MATCH', Field: 'tenancy', Value: 'Shared' },
        { Type: 'TERM_MATCH', Field: 'preInstalledSw', Value: 'NA' },
        { Type: 'TERM_MATCH', Field: 'capacitystatus', Value: 'Used' },
      ],
    });
    // the Pricing API endpoint is us-east-1 whatever region is priced; spot is asked in the region
    expect(await (calls[0]!.thisValue as PricingClient).config.region()).toBe('us-east-1');
    const spotCall = ec2.commandCalls(DescribeSpotPriceHistoryCommand)[0]!;
    expect(await (spotCall.thisValue as EC2Client).config.region()).toBe('eu-west-1');
    expect(spotCall.args[0].input).toEqual({
      InstanceTypes: ['g5.xlarge'],
      ProductDescriptions: ['Linux/UNIX'],
      StartTime: new Date('2026-11-22T10:00:00Z'),
      EndTime: NOW,
      NextToken: undefined,
    });
    const d = r.json<{ monthly: Record<string, { compute: number }>; assumptions: Array<{ name: string; value: unknown; source: string }> }>();
    expect(d.monthly.onDemand!.compute).toBeCloseTo(1.1 * 730, 6);
    expect(d.monthly.reserved!.compute).toBeCloseTo(0.7 * 730, 6); // the 1yr standard no-upfront term
    expect(d.monthly.spot!.compute).toBeCloseTo(0.45 * 730, 6); // latest per AZ: (0.40 + 0.50) / 2
    const src = d.assumptions.find((a) => a.name === 'g5.xlarge on-demand price')!;
    expect(src.value).toBe(1.1);
    expect(src.source).toMatch(/AWS Pricing API GetProducts \(eu-west-1.*average of 2 AZ/);
    expect(r.stderr).toMatch(/reading live prices/);
  });

  it('prices a type outside the built-in table when a load report gives its capacity', async () => {
    pricing.on(GetProductsCommand).resolves({ PriceList: [product('2.0', [])] });
    ec2.on(DescribeSpotPriceHistoryCommand).resolves({ SpotPriceHistory: [] });
    const capacity = { slo: { p95Ms: 500, maxErrorRate: 0.05 }, embeddingsPerMinute: 50_000, tokensPerMinute: 12_800_000, basis: 'best step at the SLO' };
    writeFileSync(join(dir, 'load.json'), JSON.stringify({ schema: 'embedctl.load-test/v1', generatedAt: '2026-11-20T00:00:00Z', errorRate: 0, latencyMs: { p95: 90 }, texts: { tokensPerText: 256 }, capacity }));
    const r = await run(['--tokens-per-month', '1e9', '--instance-type', 'g6e.xlarge', '--live-pricing', '--capacity-from', 'load.json', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const d = r.json<{ breakEven: Record<string, number | null> }>();
    expect(Object.keys(d.breakEven)).toEqual(['onDemand']); // no reserved term, no spot history: left out
    expect(r.stderr).toMatch(/no 1-year no-upfront reserved price/);
    expect(r.stderr).toMatch(/no spot price history/);
  });

  it('maps AWS failures to one line naming the service, action and fix (exit 1)', async () => {
    pricing.on(GetProductsCommand).rejects(Object.assign(new Error('User is not authorized to perform pricing:GetProducts'), { name: 'AccessDeniedException' }));
    let r = await run(['--tokens-per-month', '1e9', '--live-pricing']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^embedctl: error: AWS PRICING \(us-east-1\): not allowed to call pricing:GetProducts\n  hint: grant pricing:GetProducts/m);
    pricing.reset();
    pricing.on(GetProductsCommand).rejects(Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' }));
    r = await run(['--tokens-per-month', '1e9', '--live-pricing']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/AWS: no credentials found\n  hint: set AWS_PROFILE .* or AWS_ACCESS_KEY_ID/);
    pricing.reset();
    pricing.on(GetProductsCommand).resolves({ PriceList: [product('0.526', [])] });
    ec2.on(DescribeSpotPriceHistoryCommand).rejects(Object.assign(new Error('denied'), { name: 'UnauthorizedOperation' }));
    r = await run(['--tokens-per-month', '1e9', '--live-pricing']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/AWS EC2 \(us-east-1\): not allowed to call ec2:DescribeSpotPriceHistory/);
  });

  it('uses injected clients (ctx.adapters.pricingClient / ec2Client) when given', async () => {
    const seen: string[] = [];
    const fake = (answer: unknown) => ({
      send: async (cmd: { constructor: { name: string } }) => {
        seen.push(cmd.constructor.name);
        return answer;
      },
    });
    const r = await runCli(['cost-report', '--tokens-per-month', '1e9', '--live-pricing', '--pricing', 'on-demand', '--json'], {
      cwd: dir,
      now: () => NOW,
      adapters: {
        pricingClient: fake({ PriceList: [product('0.6', [])] }),
        ec2Client: fake({ SpotPriceHistory: [{ AvailabilityZone: 'us-east-1a', SpotPrice: '0.2', Timestamp: NOW }] }),
      },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(seen).toEqual(['GetProductsCommand', 'DescribeSpotPriceHistoryCommand']);
    expect(pricing.commandCalls(GetProductsCommand)).toHaveLength(0);
    expect(r.json<{ monthly: { onDemand: { compute: number } } }>().monthly.onDemand.compute).toBeCloseTo(0.6 * 730, 6);
  });

  it('a region the Pricing API has no location name for is bad input (exit 2), before any request', async () => {
    const r = await run(['--tokens-per-month', '1e9', '--live-pricing', '--region', 'xx-nowhere-1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--region: no Pricing API location name known for region "xx-nowhere-1"/);
    expect(pricing.commandCalls(GetProductsCommand)).toHaveLength(0);
  });

  it('an empty price list is an error naming the instance type', async () => {
    pricing.on(GetProductsCommand).resolves({ PriceList: [] });
    ec2.on(DescribeSpotPriceHistoryCommand).resolves({ SpotPriceHistory: [] });
    const r = await run(['--tokens-per-month', '1e9', '--live-pricing']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/aws pricing: no on-demand Linux price for g4dn\.xlarge in us-east-1/);
  });
});

describe('--actual', () => {
  const group = (service: string, amount: string) => ({ Keys: [service], Metrics: { UnblendedCost: { Amount: amount, Unit: 'USD' } } });

  it('reads last month and month to date by service, the forecast and CloudWatch usage, and warns about the bill', async () => {
    ce.on(GetCostAndUsageCommand)
      .resolvesOnce({
        ResultsByTime: [
          { TimePeriod: { Start: '2026-10-01', End: '2026-11-01' }, Groups: [group('Amazon Elastic Compute Cloud - Compute', '380.50')], Estimated: false },
        ],
        NextPageToken: 'page2',
      })
      .resolvesOnce({
        ResultsByTime: [
          { TimePeriod: { Start: '2026-10-01', End: '2026-11-01' }, Groups: [group('EC2 - Other', '12.25')] },
          { TimePeriod: { Start: '2026-11-01', End: '2026-11-23' }, Groups: [group('Amazon Elastic Compute Cloud - Compute', '270.10')], Estimated: true },
        ],
      });
    ce.on(GetCostForecastCommand).resolves({ Total: { Amount: '100.5', Unit: 'USD' } });
    ce.on(ListCostAllocationTagsCommand).resolves({ CostAllocationTags: [{ TagKey: 'embedctl:managed', Type: 'UserDefined', Status: 'Active' }] });
    cw.on(GetMetricDataCommand).resolves({
      MetricDataResults: [
        { Id: 'requests', Values: [1000, 2000] },
        { Id: 'embeddings', Values: [40_000, 60_000] },
        { Id: 'tokens', Values: [1_200_000, 800_000] },
        { Id: 'cpu0', Values: [30, 50] },
      ],
    });
    const proj = mkdtempSync(join(dir, 'actual-'));
    mkdirSync(join(proj, '.embedctl'));
    // The state file as provision writes it (src/contracts/state.ts): the instance id is read from it, not guessed.
    const at = '2026-01-01T00:00:00.000Z';
    const deployment = { name: 'default', region: 'us-east-1', createdAt: at, updatedAt: at, attempt: 1, alarms: [], endpoints: [], instance: { id: 'i-0123456789abcdef0', instanceType: 'g4dn.xlarge', market: 'on-demand' } };
    writeFileSync(join(proj, '.embedctl', 'state.json'), JSON.stringify({ version: 1, deployments: { default: deployment } }));
    const r = await run(['--tokens-per-month', '1e9', '--actual', '--json'], proj);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: --actual calls Cost Explorer, which bills \$0\.01 per request/);
    // ListCostAllocationTags is a Cost Explorer request too.
    expect(r.stderr).toMatch(/Cost Explorer requests made: 4 \(\$0\.04\)/);
    expect(ce.commandCalls(ListCostAllocationTagsCommand).map((c) => c.args[0].input)).toEqual([{ TagKeys: ['embedctl:managed'] }]);
    expect(r.stderr).not.toMatch(/cost-allocation tag/);

    const cu = ce.commandCalls(GetCostAndUsageCommand);
    expect(cu).toHaveLength(2);
    expect(cu[0]!.args[0].input).toEqual({
      TimePeriod: { Start: '2026-10-01', End: '2026-11-23' },
      Granularity: 'MONTHLY',
      Metrics: ['UnblendedCost'],
      GroupBy: [{ Type: 'DIMENSION', Key: 'SERVICE' }],
      Filter: { Tags: { Key: 'embedctl:managed', Values: ['true'], MatchOptions: ['EQUALS'] } },
      NextPageToken: undefined,
    });
    expect(cu[1]!.args[0].input.NextPageToken).toBe('page2');
    expect(ce.commandCalls(GetCostForecastCommand)[0]!.args[0].input).toEqual({
      TimePeriod: { Start: '2026-11-23', End: '2026-12-01' },
      Metric: 'UNBLENDED_COST',
      Granularity: 'MONTHLY',
      Filter: { Tags: { Key: 'embedctl:managed', Values: ['true'], MatchOptions: ['EQUALS'] } },
    });
    const q = cw.commandCalls(GetMetricDataCommand)[0]!.args[0].input;
    expect(q.StartTime).toEqual(new Date('2026-10-24T10:00:00Z'));
    expect(q.EndTime).toEqual(NOW);
    // The runtime's EMF metrics (runtime/emf.ts), daily sums added up over every Deployment.
    expect(q.MetricDataQueries!.slice(0, 3).map((m) => [m.Id, m.Expression, m.ReturnData])).toEqual([
      ['requests', `SUM(SEARCH('{Embedctl,Deployment} MetricName="Requests"', 'Sum', 86400))`, true],
      ['embeddings', `SUM(SEARCH('{Embedctl,Deployment} MetricName="Embeddings"', 'Sum', 86400))`, true],
      ['tokens', `SUM(SEARCH('{Embedctl,Deployment} MetricName="Tokens"', 'Sum', 86400))`, true],
    ]);
    expect(q.MetricDataQueries![3]!.MetricStat).toEqual({
      Metric: { Namespace: 'AWS/EC2', MetricName: 'CPUUtilization', Dimensions: [{ Name: 'InstanceId', Value: 'i-0123456789abcdef0' }] },
      Period: 86400,
      Stat: 'Average',
    });
    expect(q.MetricDataQueries).toHaveLength(4);

    const d = r.json<{ actual: { costs: Record<string, any>; usage: Record<string, number> } }>();
    // last month merged across pages: 380.50 + 12.25
    expect(d.actual.costs.lastMonth.total).toBeCloseTo(392.75, 10);
    expect(d.actual.costs.lastMonth.byService.map((s: { service: string }) => s.service)).toEqual(['Amazon Elastic Compute Cloud - Compute', 'EC2 - Other']);
    expect(d.actual.costs.monthToDate).toMatchObject({ total: 270.1, estimated: true });
    expect(d.actual.costs.forecastRestOfMonth).toEqual({ start: '2026-11-23', end: '2026-12-01', amount: 100.5 });
    expect(d.actual.usage).toMatchObject({ requests: 3000, embeddings: 100_000, tokens: 2_000_000, cpuPercent: 40 });
  });

  it('an inactive or unseen embedctl:managed cost-allocation tag: a warning that says why the bill shows $0 and how to activate it', async () => {
    ce.on(GetCostAndUsageCommand).resolves({ ResultsByTime: [] });
    ce.on(GetCostForecastCommand).resolves({ Total: { Amount: '0', Unit: 'USD' } });
    cw.on(GetMetricDataCommand).resolves({ MetricDataResults: [] });
    ce.on(ListCostAllocationTagsCommand).resolves({ CostAllocationTags: [{ TagKey: 'embedctl:managed', Type: 'UserDefined', Status: 'Inactive' }] });
    let r = await run(['--tokens-per-month', '1e9', '--actual', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: the cost-allocation tag embedctl:managed is not active, so Cost Explorer reports \$0 for it; activate it: `aws ce update-cost-allocation-tags-status --cost-allocation-tags-status TagKey=embedctl:managed,Status=Active`/);
    expect(r.stderr).toMatch(/embedctl provision --activate-cost-tags/);
    expect(r.json<{ actual: { costs: { tag: unknown } } }>().actual.costs.tag).toMatchObject({ key: 'embedctl:managed', status: 'inactive' });
    ce.on(ListCostAllocationTagsCommand).resolves({ CostAllocationTags: [] });
    r = await run(['--tokens-per-month', '1e9', '--actual']);
    expect(r.stderr).toMatch(/billing has not seen the tag embedctl:managed on any resource yet/);
  });

  it('a young account without forecast data still reports, with a note', async () => {
    ce.on(GetCostAndUsageCommand).resolves({ ResultsByTime: [] });
    ce.on(GetCostForecastCommand).rejects(Object.assign(new Error('Insufficient amount of historical data'), { name: 'DataUnavailableException' }));
    cw.on(GetMetricDataCommand).resolves({ MetricDataResults: [] });
    const r = await run(['--tokens-per-month', '1e9', '--actual']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/forecast, rest of month\s+n\/a\s+Cost Explorer has too little history/);
    expect(r.stdout).toMatch(/no embeddings metric/);
  });

  it('access denied names the Cost Explorer and CloudWatch actions', async () => {
    ce.on(GetCostAndUsageCommand).rejects(Object.assign(new Error('not authorized'), { name: 'AccessDeniedException' }));
    let r = await run(['--tokens-per-month', '1e9', '--actual']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/AWS CE \(us-east-1\): not allowed to call ce:GetCostAndUsage\n  hint: grant ce:GetCostAndUsage/);
    ce.reset();
    ce.on(GetCostAndUsageCommand).resolves({ ResultsByTime: [] });
    ce.on(GetCostForecastCommand).resolves({ Total: { Amount: '0', Unit: 'USD' } });
    cw.on(GetMetricDataCommand).rejects(Object.assign(new Error('nope'), { name: 'AccessDenied' }));
    r = await run(['--tokens-per-month', '1e9', '--actual']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/AWS CLOUDWATCH \(us-east-1\): not allowed to call cloudwatch:GetMetricData/);
  });
});
