import type { MetricDataQuery, PutDashboardCommandInput, PutMetricAlarmCommandInput } from '@aws-sdk/client-cloudwatch';
import type { CreateBudgetCommandInput } from '@aws-sdk/client-budgets';
import { approxHourlyUsd, DEPLOYMENT_TAG, instanceName, managedTags, MANAGED_TAG, type ProvisionOptions } from './provision-plan.js';
import { DEPLOYMENT_DIMENSION, LATENCY_P95_STAT, SERVICE_METRICS, SERVICE_NAMESPACE } from './service-metrics.js';

/**
 * What provision sets up to watch a deployment: CloudWatch alarms, a CloudWatch dashboard and an
 * AWS Budgets monthly budget. Pure builders; the adapters send them.
 */

export const alarmName = (name: string, what: string) => `embedctl-${name}-${what}`;
export const dashboardName = (name: string) => `embedctl-${name}`;
export const budgetName = (name: string) => `embedctl-${name}-monthly`;

/** Where the host alarms look: one instance, or every instance of the Auto Scaling group. */
export type AlarmTarget = string | { autoScalingGroupName: string };

function hostDimension(t: AlarmTarget) {
  return typeof t === 'string' ? { Name: 'InstanceId', Value: t } : { Name: 'AutoScalingGroupName', Value: t.autoScalingGroupName };
}

/**
 * The runbook's alarms. Host metrics: AWS/EC2 CPUUtilization and StatusCheckFailed, and the
 * CloudWatch agent's `nvidia_smi_utilization_gpu`, `mem_used_percent` and `disk_used_percent`,
 * which templates/user-data.sh configures into namespace `Embedctl` aggregated by InstanceId and
 * by AutoScalingGroupName (the dimensions alarmed on).
 * Service metrics: what runtime/emf.ts writes and the agent ships (src/core/service-metrics.ts),
 * namespace `Embedctl`, dimension Deployment=<name> (user data takes it from the instance's
 * embedctl:deployment tag):
 * - error rate: metric math Errors / Requests (5xx share of embedding requests) > 0.05;
 * - p95: `RequestLatencyP95` is each runtime's p95 per report interval, so the alarm takes its
 *   Maximum per minute (the worst runtime) > 500 ms. A CloudWatch p95 statistic would be a
 *   percentile of percentiles, which means nothing.
 * - traffic drop: Requests below the lower edge of CloudWatch's anomaly-detection band (2
 *   standard deviations, about half the usual traffic for a steady service) for 15 minutes.
 *   Metric math has no time shift, so "50 % below an hour ago" cannot be written directly; the
 *   band is the learned version of that baseline.
 */
export function buildAlarms(o: ProvisionOptions, target: AlarmTarget): PutMetricAlarmCommandInput[] {
  const tags = managedTags(o.name, instanceName(o.name));
  const actions = o.alarmTopicArn ? { AlarmActions: [o.alarmTopicArn], OKActions: [o.alarmTopicArn] } : {};
  const dimension = hostDimension(target);
  const host = (what: string, namespace: string, metric: string, threshold: number, desc: string): PutMetricAlarmCommandInput => ({
    AlarmName: alarmName(o.name, what),
    AlarmDescription: `embedctl ${o.name}: ${desc}`,
    Namespace: namespace,
    MetricName: metric,
    Dimensions: [dimension],
    Statistic: 'Average',
    Period: 300,
    EvaluationPeriods: 2,
    DatapointsToAlarm: 2,
    Threshold: threshold,
    ComparisonOperator: 'GreaterThanThreshold',
    TreatMissingData: 'missing',
    Tags: tags,
    ...actions,
  });
  const dim = [{ Name: DEPLOYMENT_DIMENSION, Value: o.name }];
  const stat = (Id: string, MetricName: string): MetricDataQuery => ({
    Id,
    MetricStat: { Metric: { Namespace: SERVICE_NAMESPACE, MetricName, Dimensions: dim }, Period: 60, Stat: 'Sum' },
    ReturnData: false,
  });
  return [
    host('cpu-high', 'AWS/EC2', 'CPUUtilization', 80, 'CPU above 80% for 10 minutes'),
    host('gpu-high', SERVICE_NAMESPACE, 'nvidia_smi_utilization_gpu', 90, 'GPU utilisation above 90% for 10 minutes'),
    host('memory-high', SERVICE_NAMESPACE, 'mem_used_percent', 85, 'memory above 85% for 10 minutes'),
    {
      AlarmName: alarmName(o.name, 'error-rate'),
      AlarmDescription: `embedctl ${o.name}: more than 5% of embedding requests failed (5xx) in 3 of 5 minutes`,
      Metrics: [
        stat('errors', SERVICE_METRICS.errors),
        stat('requests', SERVICE_METRICS.requests),
        { Id: 'rate', Expression: 'IF(requests > 0, errors / requests, 0)', Label: 'error rate (5xx / requests)', ReturnData: true },
      ],
      EvaluationPeriods: 5,
      DatapointsToAlarm: 3,
      Threshold: 0.05,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
      Tags: tags,
      ...actions,
    },
    {
      AlarmName: alarmName(o.name, 'latency-p95'),
      AlarmDescription: `embedctl ${o.name}: p95 latency above 500 ms (worst runtime) in 3 of 5 minutes`,
      Namespace: SERVICE_NAMESPACE,
      MetricName: SERVICE_METRICS.latencyP95,
      Dimensions: dim,
      Statistic: LATENCY_P95_STAT,
      Unit: 'Milliseconds',
      Period: 60,
      EvaluationPeriods: 5,
      DatapointsToAlarm: 3,
      Threshold: 500,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
      Tags: tags,
      ...actions,
    },
    {
      ...host('status-check', 'AWS/EC2', 'StatusCheckFailed', 0, 'an EC2 status check (system or instance) failed for 2 minutes'),
      Statistic: 'Maximum',
      Period: 60,
    },
    host('disk-high', SERVICE_NAMESPACE, 'disk_used_percent', 80, 'root disk more than 80% full'),
    {
      AlarmName: alarmName(o.name, 'traffic-drop'),
      AlarmDescription: `embedctl ${o.name}: embedding requests fell below the expected band (roughly half the usual traffic) for 15 minutes`,
      Metrics: [
        { ...stat('requests', SERVICE_METRICS.requests), MetricStat: { ...stat('requests', SERVICE_METRICS.requests).MetricStat!, Period: 300 }, ReturnData: true },
        { Id: 'band', Expression: 'ANOMALY_DETECTION_BAND(requests, 2)', Label: 'expected requests', ReturnData: true },
      ],
      ThresholdMetricId: 'band',
      EvaluationPeriods: 3,
      DatapointsToAlarm: 3,
      ComparisonOperator: 'LessThanLowerThreshold',
      // No requests at all is the biggest drop there is.
      TreatMissingData: 'breaching',
      Tags: tags,
      ...actions,
    },
  ];
}

/**
 * The monthly budget: the list price of the most instances the deployment may run, all month,
 * plus 20 % for disk and traffic, unless --monthly-budget says otherwise. Filtered on the
 * deployment tag, which Cost Explorer only honours once it is an active cost-allocation tag.
 */
export function defaultMonthlyBudgetUsd(instanceType: string, maxInstances: number): number | undefined {
  const hourly = approxHourlyUsd(instanceType);
  if (hourly === undefined) return undefined;
  return Math.ceil((hourly * 730 * maxInstances * 1.2) / 10) * 10;
}

export function buildBudget(o: ProvisionOptions, r: { accountId: string; amountUsd: number }): CreateBudgetCommandInput {
  const notify = (type: 'ACTUAL' | 'FORECASTED', threshold: number) => ({
    Notification: { NotificationType: type, ComparisonOperator: 'GREATER_THAN' as const, Threshold: threshold, ThresholdType: 'PERCENTAGE' as const },
    Subscribers: [{ SubscriptionType: 'SNS' as const, Address: o.alarmTopicArn! }],
  });
  return {
    AccountId: r.accountId,
    Budget: {
      BudgetName: budgetName(o.name),
      BudgetType: 'COST',
      TimeUnit: 'MONTHLY',
      BudgetLimit: { Amount: r.amountUsd.toFixed(2), Unit: 'USD' },
      CostFilters: { TagKeyValue: [`user:${DEPLOYMENT_TAG}$${o.name}`] },
    },
    // Without an SNS topic the budget still shows in the console; with one it warns at 80 % spent and 100 % forecast.
    ...(o.alarmTopicArn ? { NotificationsWithSubscribers: [notify('ACTUAL', 80), notify('FORECASTED', 100)] } : {}),
    ResourceTags: managedTags(o.name, budgetName(o.name)).filter((t) => t.Key !== 'Name'),
  };
}

/** A line every embedctl dashboard carries: teardown deletes only dashboards that have it. */
export function dashboardMarker(name: string): string {
  return `Managed by embedctl (${MANAGED_TAG}=true, ${DEPLOYMENT_TAG}=${name})`;
}

export function buildDashboard(o: ProvisionOptions, r: { region: string; target: AlarmTarget; loadBalancer?: string; targetGroup?: string }): PutDashboardCommandInput {
  const dep = [DEPLOYMENT_DIMENSION, o.name];
  const host = hostDimension(r.target);
  const hostDim = [host.Name, host.Value];
  const widget = (title: string, metrics: unknown[], extra: Record<string, unknown> = {}) => ({
    type: 'metric',
    width: 12,
    height: 6,
    properties: { title, region: r.region, view: 'timeSeries', stacked: false, period: 60, metrics, ...extra },
  });
  const widgets: unknown[] = [
    { type: 'text', width: 24, height: 2, properties: { markdown: `## embedctl ${o.name}\n${dashboardMarker(o.name)}` } },
    widget('Requests, errors, throttled (per minute)', [
      [SERVICE_NAMESPACE, SERVICE_METRICS.requests, ...dep, { stat: 'Sum' }],
      [SERVICE_NAMESPACE, SERVICE_METRICS.errors, ...dep, { stat: 'Sum' }],
      [SERVICE_NAMESPACE, SERVICE_METRICS.throttled, ...dep, { stat: 'Sum' }],
    ]),
    widget('Latency p50 / p95 (worst runtime, ms)', [
      [SERVICE_NAMESPACE, SERVICE_METRICS.latencyP50, ...dep, { stat: LATENCY_P95_STAT }],
      [SERVICE_NAMESPACE, SERVICE_METRICS.latencyP95, ...dep, { stat: LATENCY_P95_STAT }],
    ]),
    widget('GPU utilisation and memory (%)', [
      [SERVICE_NAMESPACE, 'nvidia_smi_utilization_gpu', ...hostDim],
      [SERVICE_NAMESPACE, 'nvidia_smi_utilization_memory', ...hostDim],
    ]),
    widget('Host memory and disk (%)', [
      [SERVICE_NAMESPACE, 'mem_used_percent', ...hostDim],
      [SERVICE_NAMESPACE, 'disk_used_percent', ...hostDim],
    ]),
    widget('Tokens and inputs embedded (per minute)', [
      [SERVICE_NAMESPACE, SERVICE_METRICS.tokens, ...dep, { stat: 'Sum' }],
      [SERVICE_NAMESPACE, SERVICE_METRICS.embeddings, ...dep, { stat: 'Sum' }],
    ]),
  ];
  if (r.loadBalancer && r.targetGroup) {
    widgets.push(
      widget('Load balancer: requests and 5xx', [
        ['AWS/ApplicationELB', 'RequestCount', 'LoadBalancer', r.loadBalancer, { stat: 'Sum' }],
        ['AWS/ApplicationELB', 'HTTPCode_Target_5XX_Count', 'LoadBalancer', r.loadBalancer, { stat: 'Sum' }],
      ]),
      widget('Load balancer: healthy targets', [['AWS/ApplicationELB', 'HealthyHostCount', 'TargetGroup', r.targetGroup, 'LoadBalancer', r.loadBalancer, { stat: 'Minimum' }]]),
    );
  }
  return { DashboardName: dashboardName(o.name), DashboardBody: JSON.stringify({ widgets }) };
}
