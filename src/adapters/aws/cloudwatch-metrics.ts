import { CloudWatchClient, GetMetricDataCommand, type MetricDataQuery } from '@aws-sdk/client-cloudwatch';
import type { Context } from '../../context.js';
import { DEPLOYMENT_DIMENSION, SERVICE_METRICS, SERVICE_NAMESPACE } from '../../core/service-metrics.js';
import { mapAwsError } from './errors.js';

/**
 * Real usage over the last 30 days from CloudWatch: what the runtimes published (runtime/emf.ts,
 * shipped by the instance's CloudWatch agent; src/core/service-metrics.ts) and EC2 CPU of
 * embedctl's instances. Injected client: ctx.adapters.cloudwatchClient.
 *
 * Usage is summed over every deployment (a SEARCH over the Deployment dimension), like the bill
 * beside it, which Cost Explorer filters on the embedctl:managed tag of all of them.
 */

export const USAGE_NAMESPACE = SERVICE_NAMESPACE;
export const REQUESTS_METRIC = SERVICE_METRICS.requests;
export const EMBEDDINGS_METRIC = SERVICE_METRICS.embeddings;
export const TOKENS_METRIC = SERVICE_METRICS.tokens;

/** Daily sums of one service metric, added up across deployments. */
export function usageExpression(metric: string, period = 86400): string {
  return `SUM(SEARCH('{${SERVICE_NAMESPACE},${DEPLOYMENT_DIMENSION}} MetricName="${metric}"', 'Sum', ${period}))`;
}

export interface UsageMetrics {
  start: string;
  end: string;
  days: number;
  requests: number | null;
  embeddings: number | null;
  /** Input tokens embedded: what a hosted API would have billed. */
  tokens: number | null;
  /** Mean of the daily CPU averages across the instances given; null without instances or data. */
  cpuPercent: number | null;
}

export async function fetchUsage(ctx: Context, region: string, instanceIds: string[], days = 30): Promise<UsageMetrics> {
  const cw = ctx.adapters.cloudwatchClient ?? new CloudWatchClient({ region });
  const end = ctx.now();
  const start = new Date(end.getTime() - days * 86400_000);
  const queries: MetricDataQuery[] = [
    { Id: 'requests', Expression: usageExpression(REQUESTS_METRIC), Label: REQUESTS_METRIC, ReturnData: true },
    { Id: 'embeddings', Expression: usageExpression(EMBEDDINGS_METRIC), Label: EMBEDDINGS_METRIC, ReturnData: true },
    { Id: 'tokens', Expression: usageExpression(TOKENS_METRIC), Label: TOKENS_METRIC, ReturnData: true },
    ...instanceIds.slice(0, 100).map(
      (id, i): MetricDataQuery => ({
        Id: `cpu${i}`,
        MetricStat: {
          Metric: { Namespace: 'AWS/EC2', MetricName: 'CPUUtilization', Dimensions: [{ Name: 'InstanceId', Value: id }] },
          Period: 86400,
          Stat: 'Average',
        },
        ReturnData: true,
      }),
    ),
  ];
  const values = new Map<string, number[]>();
  try {
    let token: string | undefined;
    let pages = 0;
    do {
      const out = await cw.send(
        new GetMetricDataCommand({ MetricDataQueries: queries, StartTime: start, EndTime: end, NextToken: token }),
        { abortSignal: ctx.signal },
      );
      for (const r of out.MetricDataResults ?? []) {
        const list = values.get(r.Id ?? '') ?? [];
        list.push(...(r.Values ?? []));
        values.set(r.Id ?? '', list);
      }
      token = out.NextToken;
    } while (token && ++pages < 20);
  } catch (err) {
    throw mapAwsError(err, { action: 'cloudwatch:GetMetricData', region });
  }
  const sum = (id: string) => {
    const v = values.get(id);
    return v && v.length ? v.reduce((a, b) => a + b, 0) : null;
  };
  const cpu = [...values.entries()].filter(([k]) => k.startsWith('cpu')).flatMap(([, v]) => v);
  return {
    start: start.toISOString(),
    end: end.toISOString(),
    days,
    requests: sum('requests'),
    embeddings: sum('embeddings'),
    tokens: sum('tokens'),
    cpuPercent: cpu.length ? cpu.reduce((a, b) => a + b, 0) / cpu.length : null,
  };
}
