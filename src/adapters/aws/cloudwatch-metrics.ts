import { CloudWatchClient, GetMetricDataCommand, type MetricDataQuery } from '@aws-sdk/client-cloudwatch';
import type { Context } from '../../context.js';
import { mapAwsError } from './pricing.js';

/**
 * Real usage over the last 30 days from CloudWatch: the runtime's counters as the CloudWatch agent
 * publishes them from /metrics into the `Embedctl` namespace, and EC2 CPU of embedctl's instances.
 * Injected client: ctx.adapters.cloudwatchClient.
 */

export const USAGE_NAMESPACE = 'Embedctl';
export const REQUESTS_METRIC = 'embedctl_requests_total';
export const EMBEDDINGS_METRIC = 'embedctl_embeddings_total';

export interface UsageMetrics {
  start: string;
  end: string;
  days: number;
  requests: number | null;
  embeddings: number | null;
  /** Mean of the daily CPU averages across the instances given; null without instances or data. */
  cpuPercent: number | null;
}

export async function fetchUsage(ctx: Context, region: string, instanceIds: string[], days = 30): Promise<UsageMetrics> {
  const cw = (ctx.adapters.cloudwatchClient as CloudWatchClient | undefined) ?? new CloudWatchClient({ region });
  const end = ctx.now();
  const start = new Date(end.getTime() - days * 86400_000);
  const queries: MetricDataQuery[] = [
    { Id: 'requests', MetricStat: { Metric: { Namespace: USAGE_NAMESPACE, MetricName: REQUESTS_METRIC }, Period: 86400, Stat: 'Sum' }, ReturnData: true },
    { Id: 'embeddings', MetricStat: { Metric: { Namespace: USAGE_NAMESPACE, MetricName: EMBEDDINGS_METRIC }, Period: 86400, Stat: 'Sum' }, ReturnData: true },
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
    throw mapAwsError('aws cloudwatch', 'cloudwatch:GetMetricData', err);
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
    cpuPercent: cpu.length ? cpu.reduce((a, b) => a + b, 0) / cpu.length : null,
  };
}
