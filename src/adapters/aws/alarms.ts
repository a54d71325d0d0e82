import {
  CloudWatchClient,
  DeleteAlarmsCommand,
  DeleteDashboardsCommand,
  DescribeAlarmsCommand,
  GetDashboardCommand,
  PutDashboardCommand,
  ListTagsForResourceCommand,
  PutMetricAlarmCommand,
  type PutDashboardCommandInput,
  type PutMetricAlarmCommandInput,
} from '@aws-sdk/client-cloudwatch';
import { tagsConfirm } from '../../core/provision-plan.js';
import { awsErrorCode, mapAwsError } from './errors.js';

export function cloudWatchClient(region: string): CloudWatchClient {
  return new CloudWatchClient({ region, maxAttempts: 5 });
}

/** PutMetricAlarm creates or replaces by name, so re-running provision is safe. */
export async function putAlarms(client: CloudWatchClient, region: string, alarms: PutMetricAlarmCommandInput[], onEach?: (name: string) => void) {
  for (const a of alarms) {
    try {
      await client.send(new PutMetricAlarmCommand(a));
    } catch (err) {
      throw mapAwsError(err, { action: 'cloudwatch:PutMetricAlarm', region });
    }
    onEach?.(a.AlarmName!);
  }
}

export interface AlarmCheck {
  /** Exist and carry embedctl's tags for this deployment. */
  confirmed: string[];
  /** Exist but without those tags: never deleted. */
  untagged: string[];
  /** Already deleted. */
  missing: string[];
}

/** Which of the named alarms exist, and which of those the tags say embedctl manages. */
export async function checkAlarms(client: CloudWatchClient, region: string, names: string[], deployment: string): Promise<AlarmCheck> {
  const res: AlarmCheck = { confirmed: [], untagged: [], missing: [] };
  if (names.length === 0) return res;
  const found = new Map<string, string>();
  try {
    // DescribeAlarms takes at most 100 names per call.
    for (let i = 0; i < names.length; i += 100) {
      const out = await client.send(new DescribeAlarmsCommand({ AlarmNames: names.slice(i, i + 100), AlarmTypes: ['MetricAlarm'] }));
      for (const a of out.MetricAlarms ?? []) if (a.AlarmName && a.AlarmArn) found.set(a.AlarmName, a.AlarmArn);
    }
    for (const name of names) {
      const arn = found.get(name);
      if (!arn) {
        res.missing.push(name);
        continue;
      }
      const tags = await client.send(new ListTagsForResourceCommand({ ResourceARN: arn }));
      (tagsConfirm(tags.Tags, deployment) ? res.confirmed : res.untagged).push(name);
    }
  } catch (err) {
    throw mapAwsError(err, { action: 'cloudwatch:DescribeAlarms', region });
  }
  return res;
}

export async function deleteAlarms(client: CloudWatchClient, region: string, names: string[]): Promise<void> {
  for (let i = 0; i < names.length; i += 100) {
    try {
      await client.send(new DeleteAlarmsCommand({ AlarmNames: names.slice(i, i + 100) }));
    } catch (err) {
      throw mapAwsError(err, { action: 'cloudwatch:DeleteAlarms', region });
    }
  }
}

/** PutDashboard replaces by name: idempotent. */
export async function putDashboard(client: CloudWatchClient, region: string, input: PutDashboardCommandInput): Promise<void> {
  try {
    await client.send(new PutDashboardCommand(input));
  } catch (err) {
    throw mapAwsError(err, { action: 'cloudwatch:PutDashboard', region });
  }
}

/** The dashboard's body, or undefined when it does not exist. */
export async function getDashboardBody(client: CloudWatchClient, region: string, name: string): Promise<string | undefined> {
  try {
    const out = await client.send(new GetDashboardCommand({ DashboardName: name }));
    return out.DashboardBody ?? '';
  } catch (err) {
    if (/NotFound/.test(awsErrorCode(err))) return undefined;
    throw mapAwsError(err, { action: 'cloudwatch:GetDashboard', region });
  }
}

export async function deleteDashboard(client: CloudWatchClient, region: string, name: string): Promise<void> {
  try {
    await client.send(new DeleteDashboardsCommand({ DashboardNames: [name] }));
  } catch (err) {
    if (!/NotFound/.test(awsErrorCode(err))) throw mapAwsError(err, { action: 'cloudwatch:DeleteDashboards', region });
  }
}
