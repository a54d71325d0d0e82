import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mockClient } from 'aws-sdk-client-mock';
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  DeleteSecurityGroupCommand,
  DescribeInstancesCommand,
  DescribeInstanceStatusCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  EC2Client,
  EC2ServiceException,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { CloudWatchClient, DeleteAlarmsCommand, DeleteDashboardsCommand, GetDashboardCommand, PutDashboardCommand, PutMetricAlarmCommand } from '@aws-sdk/client-cloudwatch';
import { BudgetsClient, BudgetsServiceException, CreateBudgetCommand, DeleteBudgetCommand, DescribeBudgetCommand } from '@aws-sdk/client-budgets';
import { CostExplorerClient, ListCostAllocationTagsCommand, UpdateCostAllocationTagsStatusCommand } from '@aws-sdk/client-cost-explorer';
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { ACMClient } from '@aws-sdk/client-acm';

/**
 * The real AWS SDK clients with `send` intercepted by aws-sdk-client-mock: each test sets the
 * answers, the code under test builds real Command objects, the test asserts their inputs.
 */
export const ec2 = mockClient(EC2Client);
export const ssm = mockClient(SSMClient);
export const cw = mockClient(CloudWatchClient);
export const budgets = mockClient(BudgetsClient);
export const ce = mockClient(CostExplorerClient);
export const asg = mockClient(AutoScalingClient);
export const elb = mockClient(ElasticLoadBalancingV2Client);
export const acm = mockClient(ACMClient);

export const ACCOUNT = '123456789012';

/** A Budgets "not found" the way the SDK throws it. */
export function budgetsNotFound() {
  return new BudgetsServiceException({ name: 'NotFoundException', $fault: 'client', $metadata: { httpStatusCode: 404 }, message: 'not found' });
}

export const AMI = 'ami-0123456789abcdef0';

/** An AWS service error the way the SDK throws it (name = AWS error code). */
export function awsError(code: string, message = code, httpStatusCode = 400) {
  return new EC2ServiceException({ name: code, $fault: 'client', $metadata: { httpStatusCode }, message });
}

export function resetAws() {
  ec2.reset();
  ssm.reset();
  cw.reset();
  budgets.reset();
  ce.reset();
  asg.reset();
  elb.reset();
  acm.reset();
}

/** A working account: default VPC, no group yet, an instance that boots after one poll. */
export function happyAccount(opts: { instanceId?: string; dns?: string } = {}) {
  const id = opts.instanceId ?? 'i-0abc';
  const dns = opts.dns ?? 'ec2-203-0-113-10.compute-1.amazonaws.com';
  ssm.on(GetParameterCommand).resolves({ Parameter: { Value: AMI } });
  ec2.on(DescribeVpcsCommand).resolves({ Vpcs: [{ VpcId: 'vpc-default', IsDefault: true }] });
  ec2.on(DescribeSubnetsCommand).resolves({ Subnets: [{ SubnetId: 'subnet-0aa', VpcId: 'vpc-custom', AvailabilityZone: 'us-east-1b' }] });
  ec2.on(DescribeSecurityGroupsCommand).resolves({ SecurityGroups: [] });
  ec2.on(DescribeSecurityGroupsCommand, { GroupIds: ['sg-0new'] }).resolves({ SecurityGroups: [{ GroupId: 'sg-0new', OwnerId: ACCOUNT, IpPermissions: [] }] });
  ec2.on(CreateSecurityGroupCommand).resolves({ GroupId: 'sg-0new' });
  ec2.on(AuthorizeSecurityGroupIngressCommand).resolves({ Return: true });
  ec2.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: id, State: { Name: 'pending' } }] });
  ec2
    .on(DescribeInstancesCommand)
    .resolvesOnce({ Reservations: [{ Instances: [{ InstanceId: id, State: { Name: 'pending' } }] }] })
    .resolves({
      Reservations: [
        {
          Instances: [
            { InstanceId: id, State: { Name: 'running' }, PublicDnsName: dns, PublicIpAddress: '203.0.113.10', Placement: { AvailabilityZone: 'us-east-1a' } },
          ],
        },
      ],
    });
  ec2
    .on(DescribeInstanceStatusCommand)
    .resolvesOnce({ InstanceStatuses: [{ InstanceId: id, SystemStatus: { Status: 'initializing' }, InstanceStatus: { Status: 'initializing' } }] })
    .resolves({ InstanceStatuses: [{ InstanceId: id, SystemStatus: { Status: 'ok' }, InstanceStatus: { Status: 'ok' } }] });
  cw.on(PutMetricAlarmCommand).resolves({});
  cw.on(PutDashboardCommand).resolves({});
  cw.on(GetDashboardCommand).resolves({ DashboardBody: '' });
  cw.on(DeleteDashboardsCommand).resolves({});
  cw.on(DeleteAlarmsCommand).resolves({});
  budgets.on(DescribeBudgetCommand).rejects(budgetsNotFound());
  budgets.on(CreateBudgetCommand).resolves({});
  budgets.on(DeleteBudgetCommand).resolves({});
  ce.on(ListCostAllocationTagsCommand).resolves({ CostAllocationTags: [{ TagKey: 'embedctl:managed', Type: 'UserDefined', Status: 'Active' }] });
  ce.on(UpdateCostAllocationTagsStatusCommand).resolves({ Errors: [] });
  ec2.on(TerminateInstancesCommand).resolves({});
  ec2.on(DeleteSecurityGroupCommand).resolves({});
  return { id, dns };
}

export function tempProject(): string {
  return mkdtempSync(join(tmpdir(), 'embedctl-prov-'));
}

export function readState(dir: string) {
  return JSON.parse(readFileSync(join(dir, '.embedctl', 'state.json'), 'utf8'));
}

export function readHistory(dir: string): Array<Record<string, unknown>> {
  const p = join(dir, '.embedctl', 'state.history.jsonl');
  if (!existsSync(p)) return [];
  return readFileSync(p, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

/** A sleep that returns at once and records what was asked for. */
export function fakeSleep() {
  const calls: number[] = [];
  const sleep = async (ms: number) => {
    calls.push(ms);
  };
  return { calls, sleep };
}
