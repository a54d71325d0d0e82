import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  RunInstancesCommand,
} from '@aws-sdk/client-ec2';
import { GetParameterCommand } from '@aws-sdk/client-ssm';
import { PutDashboardCommand, PutMetricAlarmCommand } from '@aws-sdk/client-cloudwatch';
import { CreateBudgetCommand } from '@aws-sdk/client-budgets';
import { ListCostAllocationTagsCommand, UpdateCostAllocationTagsStatusCommand } from '@aws-sdk/client-cost-explorer';
import { emfRecord, readSnapshot, ZERO_SNAPSHOT } from '../runtime/hooks/emf.js';
import { RuntimeMetrics } from '../runtime/hooks/metrics.js';
import { buildAlarms } from '../src/core/provision-plan.js';
import { runCli } from './helpers/cli.js';
import { ACCOUNT, AMI, awsError, budgets, ce, cw, ec2, fakeSleep, happyAccount, readHistory, readState, resetAws, ssm, tempProject } from './provision-fakes.js';

const CIDR = '203.0.113.7/32';
const base = ['provision', '--region', 'us-east-1', '--allow-cidr', CIDR, '--allow-demo-model'];

const managed = (name = 'main') => [
  { Key: 'Name', Value: `embedctl-${name}` },
  { Key: 'embedctl:managed', Value: 'true' },
  { Key: 'embedctl:deployment', Value: name },
];

beforeEach(() => resetAws());
afterAll(() => resetAws());

describe('provision: the exact AWS calls', () => {
  it('on-demand in the default VPC: IMDSv2, encrypted gp3 125 GiB, tags, token, SG only from the CIDR, alarms, state', async () => {
    const { id, dns } = happyAccount();
    const cwd = tempProject();
    const s = fakeSleep();
    const r = await runCli([...base, '--yes'], { cwd, sleep: s.sleep });
    expect(r.stderr).not.toMatch(/error:/);
    expect(r.code).toBe(0);

    expect(ssm.commandCalls(GetParameterCommand)[0]!.args[0].input).toEqual({
      Name: '/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id',
    });
    const sg = ec2.commandCalls(CreateSecurityGroupCommand);
    expect(sg).toHaveLength(1);
    expect(sg[0]!.args[0].input).toMatchObject({
      GroupName: 'embedctl-main',
      VpcId: 'vpc-default',
      TagSpecifications: [{ ResourceType: 'security-group', Tags: managed() }],
    });
    const ingress = ec2.commandCalls(AuthorizeSecurityGroupIngressCommand);
    expect(ingress).toHaveLength(1);
    const perms = ingress[0]!.args[0].input.IpPermissions!;
    expect(perms.map((p) => p.FromPort)).toEqual([8000]);
    for (const p of perms) {
      expect(p.ToPort).toBe(p.FromPort);
      expect(p.IpRanges!.map((x) => x.CidrIp)).toEqual([CIDR]);
      expect(p.Ipv6Ranges).toBeUndefined();
    }

    const runs = ec2.commandCalls(RunInstancesCommand);
    expect(runs).toHaveLength(1);
    const input = runs[0]!.args[0].input;
    const { UserData, ...rest } = input;
    // render's user-data.sh, gzipped when over EC2's 16 KB (cloud-init reads gzip natively).
    const raw = Buffer.from(UserData!, 'base64');
    const script = (raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw).toString('utf8');
    expect(script).toMatch(/^#!\/bin\/bash/);
    expect(script).toContain('GATEWAY_PORT=8000');
    expect(script).toContain('MODEL=default');
    expect(raw.length).toBeLessThanOrEqual(16_384);
    expect(rest).toEqual({
      ImageId: AMI,
      InstanceType: 'g4dn.xlarge',
      MinCount: 1,
      MaxCount: 1,
      ClientToken: 'embedctl-main-1',
      // Tags in IMDS: user data reads embedctl:deployment, the Deployment dimension of the service metrics.
      MetadataOptions: { HttpTokens: 'required', HttpPutResponseHopLimit: 2, HttpEndpoint: 'enabled', InstanceMetadataTags: 'enabled' },
      BlockDeviceMappings: [
        { DeviceName: '/dev/sda1', Ebs: { VolumeSize: 125, VolumeType: 'gp3', Encrypted: true, DeleteOnTermination: true } },
      ],
      TagSpecifications: [
        { ResourceType: 'instance', Tags: managed() },
        { ResourceType: 'volume', Tags: managed() },
        { ResourceType: 'network-interface', Tags: managed() },
      ],
      SecurityGroupIds: ['sg-0new'],
      Monitoring: { Enabled: false },
    });
    expect(input.InstanceMarketOptions).toBeUndefined();
    expect(input.DryRun).toBeUndefined();

    const alarms = cw.commandCalls(PutMetricAlarmCommand).map((c) => c.args[0].input);
    expect(alarms.map((a) => a.AlarmName)).toEqual([
      'embedctl-main-cpu-high',
      'embedctl-main-gpu-high',
      'embedctl-main-memory-high',
      'embedctl-main-error-rate',
      'embedctl-main-latency-p95',
      'embedctl-main-status-check',
      'embedctl-main-disk-high',
      'embedctl-main-traffic-drop',
    ]);
    expect(alarms[0]).toMatchObject({ Namespace: 'AWS/EC2', MetricName: 'CPUUtilization', Threshold: 80, Dimensions: [{ Name: 'InstanceId', Value: id }] });
    // The CloudWatch agent of templates/user-data.sh publishes host metrics into Embedctl, by InstanceId.
    expect(alarms[1]).toMatchObject({ Namespace: 'Embedctl', MetricName: 'nvidia_smi_utilization_gpu', Threshold: 90, Dimensions: [{ Name: 'InstanceId', Value: id }] });
    expect(alarms[2]).toMatchObject({ Namespace: 'Embedctl', MetricName: 'mem_used_percent', Threshold: 85 });
    // The service alarms read what runtime/emf.ts publishes: Errors / Requests and RequestLatencyP95, by Deployment.
    const dep = [{ Name: 'Deployment', Value: 'main' }];
    expect(alarms[3]).toMatchObject({ Threshold: 0.05, ComparisonOperator: 'GreaterThanThreshold', EvaluationPeriods: 5, DatapointsToAlarm: 3 });
    expect(alarms[3]!.Metrics!.filter((m) => m.MetricStat).map((m) => [m.Id, m.MetricStat!.Metric!.Namespace, m.MetricStat!.Metric!.MetricName, m.MetricStat!.Stat, m.MetricStat!.Metric!.Dimensions])).toEqual([
      ['errors', 'Embedctl', 'Errors', 'Sum', dep],
      ['requests', 'Embedctl', 'Requests', 'Sum', dep],
    ]);
    expect(alarms[3]!.Metrics!.find((m) => m.ReturnData)!.Expression).toBe('IF(requests > 0, errors / requests, 0)');
    expect(alarms[4]).toMatchObject({ Namespace: 'Embedctl', MetricName: 'RequestLatencyP95', Statistic: 'Maximum', Dimensions: dep, Threshold: 500, Unit: 'Milliseconds' });
    expect(alarms[4]!.ExtendedStatistic).toBeUndefined();
    expect(alarms[5]).toMatchObject({ Namespace: 'AWS/EC2', MetricName: 'StatusCheckFailed', Statistic: 'Maximum', Period: 60, Threshold: 0, Dimensions: [{ Name: 'InstanceId', Value: id }] });
    // disk_used_percent: the CloudWatch agent's disk plugin for "/", aggregated by InstanceId in user data.
    expect(alarms[6]).toMatchObject({ Namespace: 'Embedctl', MetricName: 'disk_used_percent', Threshold: 80, ComparisonOperator: 'GreaterThanThreshold', Dimensions: [{ Name: 'InstanceId', Value: id }] });
    expect(alarms[7]).toMatchObject({ ComparisonOperator: 'LessThanLowerThreshold', ThresholdMetricId: 'band', TreatMissingData: 'breaching', EvaluationPeriods: 3 });
    expect(alarms[7]!.Metrics!.map((m) => m.Expression ?? m.MetricStat!.Metric!.MetricName)).toEqual(['Requests', 'ANOMALY_DETECTION_BAND(requests, 2)']);
    for (const a of alarms) expect(a.Tags).toEqual(managed());

    // The CloudWatch dashboard, the monthly budget (account from the group's owner), the cost tags.
    const dash = cw.commandCalls(PutDashboardCommand).map((c) => c.args[0].input);
    expect(dash).toHaveLength(1);
    expect(dash[0]!.DashboardName).toBe('embedctl-main');
    const body = JSON.parse(dash[0]!.DashboardBody!) as { widgets: Array<{ properties: { markdown?: string; metrics?: unknown[][] } }> };
    expect(body.widgets[0]!.properties.markdown).toContain('embedctl:managed=true, embedctl:deployment=main');
    const dashMetrics = body.widgets.flatMap((w) => w.properties.metrics ?? []).map((m) => m.slice(0, 4).join(' '));
    expect(dashMetrics).toEqual(expect.arrayContaining(['Embedctl Requests Deployment main', 'Embedctl RequestLatencyP95 Deployment main', `Embedctl disk_used_percent InstanceId ${id}`]));
    const budget = budgets.commandCalls(CreateBudgetCommand).map((c) => c.args[0].input);
    expect(budget).toEqual([
      {
        AccountId: ACCOUNT,
        // g4dn.xlarge list price x 730 h x 1.2, rounded up to $10.
        Budget: { BudgetName: 'embedctl-main-monthly', BudgetType: 'COST', TimeUnit: 'MONTHLY', BudgetLimit: { Amount: '470.00', Unit: 'USD' }, CostFilters: { TagKeyValue: ['user:embedctl:deployment$main'] } },
        ResourceTags: managed().slice(1),
      },
    ]);
    expect(ce.commandCalls(ListCostAllocationTagsCommand)[0]!.args[0].input).toEqual({ TagKeys: ['embedctl:managed'] });
    expect(ce.commandCalls(UpdateCostAllocationTagsStatusCommand)).toHaveLength(0);

    const st = readState(cwd);
    expect(st.version).toBe(1);
    expect(st.deployments.main).toMatchObject({
      name: 'main',
      region: 'us-east-1',
      amiId: AMI,
      clientToken: 'embedctl-main-1',
      instance: { id, instanceType: 'g4dn.xlarge', market: 'on-demand', state: 'running', publicDns: dns, availabilityZone: 'us-east-1a' },
      securityGroup: { id: 'sg-0new', vpcId: 'vpc-default', name: 'embedctl-main', createdByUs: true },
      gateway: `http://${dns}:8000`,
      endpoints: [],
    });
    expect(st.deployments.main.alarms).toHaveLength(8);
    expect(st.deployments.main.dashboard).toBe('embedctl-main');
    expect(st.deployments.main.budget).toEqual({ name: 'embedctl-main-monthly', accountId: ACCOUNT });
    const actions = readHistory(cwd).map((h) => h.action);
    expect(actions).toEqual(expect.arrayContaining(['start', 'create-security-group', 'run-instances', 'instance', 'running', 'alarms']));
    expect(actions.indexOf('run-instances')).toBeLessThan(actions.indexOf('instance'));

    // Waits went through ctx.sleep: one poll for running (5 s), one for status checks (15 s).
    expect(s.calls).toEqual([5000, 15000]);
    expect(r.stderr).toMatch(new RegExp(`instance ${id}: pending`));
    expect(r.stderr).toMatch(/status checks: system ok, instance ok/);
    expect(r.stdout).toMatch(/Provisioned "main" in us-east-1/);
    expect(r.stdout).toContain(dns);
  });

  it('spot in a given subnet with a key pair: market options, public IP on the interface, SSH from the CIDR only', async () => {
    happyAccount();
    const cwd = tempProject();
    const r = await runCli(
      [...base, '--market', 'spot', '--subnet', 'subnet-0aa', '--key-name', 'me', '--instance-type', 'g5.xlarge', '--name', 'blue', '--gateway-port', '9000', '--yes', '--json'],
      { cwd, sleep: fakeSleep().sleep },
    );
    expect(r.code).toBe(0);
    expect(r.json().schema).toBe('embedctl.provision/v1');
    expect(ec2.commandCalls(CreateSecurityGroupCommand)[0]!.args[0].input.VpcId).toBe('vpc-custom');
    const input = ec2.commandCalls(RunInstancesCommand)[0]!.args[0].input;
    expect(input.InstanceMarketOptions).toEqual({
      MarketType: 'spot',
      SpotOptions: { SpotInstanceType: 'one-time', InstanceInterruptionBehavior: 'terminate' },
    });
    expect(input.NetworkInterfaces).toEqual([
      { DeviceIndex: 0, SubnetId: 'subnet-0aa', AssociatePublicIpAddress: true, DeleteOnTermination: true, Groups: ['sg-0new'] },
    ]);
    expect(input.SecurityGroupIds).toBeUndefined();
    expect(input.KeyName).toBe('me');
    expect(input.InstanceType).toBe('g5.xlarge');
    expect(input.ClientToken).toBe('embedctl-blue-1');
    expect(input.TagSpecifications!.map((t) => t.ResourceType)).toContain('spot-instances-request');
    const perms = ec2.commandCalls(AuthorizeSecurityGroupIngressCommand)[0]!.args[0].input.IpPermissions!;
    expect(perms.map((p) => p.FromPort)).toEqual([9000, 22]);
    expect(r.json<{ deployment: { gateway: string } }>().deployment.gateway).toMatch(/:9000$/);
    expect(perms.flatMap((p) => p.IpRanges!.map((x) => x.CidrIp))).toEqual([CIDR, CIDR]);
  });

  it('reuses an embedctl-tagged group and only adds the rules it lacks', async () => {
    happyAccount();
    ec2.on(DescribeSecurityGroupsCommand, { Filters: [{ Name: 'vpc-id', Values: ['vpc-default'] }, { Name: 'group-name', Values: ['embedctl-main'] }] }).resolves({
      SecurityGroups: [{ GroupId: 'sg-0old', Tags: managed() }],
    });
    ec2.on(DescribeSecurityGroupsCommand, { GroupIds: ['sg-0old'] }).resolves({
      SecurityGroups: [{ GroupId: 'sg-0old', IpPermissions: [{ IpProtocol: 'tcp', FromPort: 8000, ToPort: 8000, IpRanges: [{ CidrIp: CIDR }, { CidrIp: '198.51.100.0/24' }] }] }],
    });
    const cwd = tempProject();
    const r = await runCli([...base, '--key-name', 'me', '--gateway-port', '8000', '--yes'], { cwd, sleep: fakeSleep().sleep });
    expect(r.code).toBe(0);
    expect(ec2.commandCalls(CreateSecurityGroupCommand)).toHaveLength(0);
    const perms = ec2.commandCalls(AuthorizeSecurityGroupIngressCommand)[0]!.args[0].input.IpPermissions!;
    expect(perms.map((p) => p.FromPort)).toEqual([22]);
    expect(r.stderr).toMatch(/warning: security group sg-0old also allows tcp\/8000 from 198\.51\.100\.0\/24 \(not in --allow-cidr\)/);
    expect(readState(cwd).deployments.main.securityGroup).toMatchObject({ id: 'sg-0old', createdByUs: false });
  });

  it('refuses a same-named group that embedctl did not tag', async () => {
    happyAccount();
    ec2.on(DescribeSecurityGroupsCommand).resolves({ SecurityGroups: [{ GroupId: 'sg-0theirs', Tags: [{ Key: 'Name', Value: 'x' }] }] });
    const r = await runCli([...base, '--yes'], { cwd: tempProject(), sleep: fakeSleep().sleep });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--name: security group sg-0theirs .* not tagged as embedctl's/);
    expect(ec2.commandCalls(RunInstancesCommand)).toHaveLength(0);
  });
});

describe('provision: the service alarms read what the runtime publishes', () => {
  it('every Embedctl metric with a Deployment dimension in the alarms is in the runtime EMF line, with that dimension set', async () => {
    const m = new RuntimeMetrics(() => undefined);
    m.requests.inc({ route: '/v1/embeddings', status: '200' }, 3);
    m.duration.observe({ route: '/v1/embeddings' }, 0.1);
    const rec = emfRecord(ZERO_SNAPSHOT, await readSnapshot(m), { deployment: 'blue', timestamp: Date.now() });
    const published = rec._aws.CloudWatchMetrics.flatMap((d) => d.Metrics.map((x) => `${d.Namespace}/${x.Name}[${d.Dimensions.map((s) => s.join(',')).join(';')}]`));
    const opts = { name: 'blue', region: 'us-east-1', instanceType: 'g4dn.xlarge', market: 'on-demand' as const, allowCidrs: ['203.0.113.7/32'], volumeSize: 125, gatewayPort: 8000 };
    const read = buildAlarms(opts, 'i-0123456789abcdef0').flatMap((a) => [
      ...(a.MetricName ? [{ ns: a.Namespace!, name: a.MetricName, dims: a.Dimensions ?? [] }] : []),
      ...(a.Metrics ?? []).filter((q) => q.MetricStat).map((q) => ({ ns: q.MetricStat!.Metric!.Namespace!, name: q.MetricStat!.Metric!.MetricName!, dims: q.MetricStat!.Metric!.Dimensions ?? [] })),
    ]);
    const service = read.filter((r) => r.dims.some((d) => d.Name === 'Deployment'));
    expect([...new Set(service.map((r) => r.name))].sort()).toEqual(['Errors', 'RequestLatencyP95', 'Requests']);
    for (const r of service) {
      expect(published).toContain(`${r.ns}/${r.name}[${r.dims.map((d) => d.Name).join(',')}]`);
      expect(r.dims.find((d) => d.Name === 'Deployment')!.Value).toBe(rec.Deployment);
    }
  });
});

describe('provision: inputs and confirmation', () => {
  it('--allow-cidr is required and names the flag', async () => {
    const r = await runCli(['provision', '--region', 'us-east-1', '--yes'], { cwd: tempProject() });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--allow-cidr: required/);
    expect(r.stderr).toMatch(/\/32/);
    expect(ssm.calls()).toHaveLength(0);
  });

  it('0.0.0.0/0 is refused unless --allow-world', async () => {
    const r = await runCli(['provision', '--region', 'us-east-1', '--allow-cidr', '0.0.0.0/0', '--yes'], { cwd: tempProject() });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--allow-cidr: 0\.0\.0\.0\/0 is shorter than \/8: that opens the endpoint to the whole internet/);
    expect(r.stderr.trim().split('\n')).toHaveLength(2);
    expect(ec2.calls()).toHaveLength(0);

    happyAccount();
    const ok = await runCli(['provision', '--region', 'us-east-1', '--allow-cidr', '0.0.0.0/0', '--allow-world', '--model', 'BAAI/bge-small-en-v1.5', '--yes'], {
      cwd: tempProject(),
      sleep: fakeSleep().sleep,
    });
    expect(ok.code).toBe(0);
    expect(ec2.commandCalls(AuthorizeSecurityGroupIngressCommand)[0]!.args[0].input.IpPermissions![0]!.IpRanges![0]!.CidrIp).toBe('0.0.0.0/0');
  });

  it('bad CIDR, unknown region and bad name are usage errors before any AWS call', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--allow-cidr', '203.0.113.7'], /--allow-cidr: "203\.0\.113\.7" is not a CIDR/],
      [['--allow-cidr', CIDR, '--region', 'us-esat-1'], /--region: unknown AWS region "us-esat-1"; did you mean us-east-1/],
      [['--allow-cidr', CIDR, '--name', 'Bad_Name'], /--name: expected 1-40 characters/],
      [['--allow-cidr', CIDR, '--market', 'reserved'], /--market: expected one of on-demand, spot/],
      [['--allow-cidr', CIDR, '--volume-size', '20'], /--volume-size: must be >= 100/],
      [['--allow-cidr', CIDR, '--percent', '150'], /--percent: must be <= 100/],
      [['--allow-cidr', CIDR, '--image', 'not an image'], /--image: expected an image reference/],
    ];
    for (const [args, re] of cases) {
      const r = await runCli(['provision', ...args, '--yes'], { cwd: tempProject() });
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(re);
    }
    expect(ssm.calls()).toHaveLength(0);
    expect(ec2.calls()).toHaveLength(0);
  });

  it('without --yes and without a terminal: plan on stderr, exit 2 naming --yes, nothing created', async () => {
    happyAccount();
    const cwd = tempProject();
    const r = await runCli(base, { cwd });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Plan for deployment "main"/);
    expect(r.stderr).toMatch(/--yes: confirmation needed/);
    expect(ec2.commandCalls(CreateSecurityGroupCommand)).toHaveLength(0);
    expect(ec2.commandCalls(RunInstancesCommand)).toHaveLength(0);
    expect(existsSync(join(cwd, '.embedctl', 'state.json'))).toBe(false);
  });
});

describe('provision --dry-run', () => {
  it("uses EC2's DryRun on every mutating call, prints the plan, creates nothing", async () => {
    happyAccount();
    ec2.on(CreateSecurityGroupCommand).rejects(awsError('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.', 412));
    ec2.on(RunInstancesCommand).rejects(awsError('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.', 412));
    const cwd = tempProject();
    const r = await runCli([...base, '--dry-run'], { cwd });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Plan for deployment "main"/);
    expect(r.stdout).toMatch(/125 GiB gp3, encrypted/);
    expect(r.stdout).toMatch(/workload +1 x ghcr\.io\/embedctl\/runtime:\S+ \(model default\) behind nginx on port 8000/);
    expect(r.stderr).toMatch(/warning: no --iam-instance-profile/);
    expect(r.stdout).toMatch(/ok +ec2:CreateSecurityGroup/);
    expect(r.stdout).toMatch(/ok +ec2:RunInstances/);
    for (const c of [...ec2.commandCalls(CreateSecurityGroupCommand), ...ec2.commandCalls(RunInstancesCommand)]) {
      expect(c.args[0].input.DryRun).toBe(true);
    }
    expect(cw.calls()).toHaveLength(0);
    expect(existsSync(join(cwd, '.embedctl', 'state.json'))).toBe(false);

    const j = await runCli([...base, '--dry-run', '--json'], { cwd });
    expect(j.code).toBe(0);
    const doc = j.json<{ schema: string; dryRun: boolean; plan: { runInstances: { ClientToken: string } }; checks: unknown[] }>();
    expect(doc.schema).toBe('embedctl.provision/v1');
    expect(doc.dryRun).toBe(true);
    expect(doc.plan.runInstances.ClientToken).toBe('embedctl-main-1');
    expect(doc.checks).toEqual([
      { action: 'ec2:CreateSecurityGroup', ok: true },
      { action: 'ec2:RunInstances', ok: true },
    ]);
  });

  it('UnauthorizedOperation: exit 1 naming the missing action', async () => {
    happyAccount();
    ec2.on(CreateSecurityGroupCommand).rejects(awsError('DryRunOperation', 'would succeed', 412));
    ec2.on(RunInstancesCommand).rejects(awsError('UnauthorizedOperation', 'You are not authorized to perform this operation.', 403));
    const r = await runCli([...base, '--dry-run'], { cwd: tempProject() });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/DENIED +ec2:RunInstances/);
    expect(r.stderr).toMatch(/not allowed to call ec2:RunInstances/);
    expect(r.stderr).toMatch(/hint: grant ec2:RunInstances/);
  });
});

describe('provision: idempotent retries', () => {
  it('a retry after a lost response sends the same ClientToken; a definite refusal gets a fresh one', async () => {
    happyAccount();
    const timeout = Object.assign(new Error('socket hang up'), { name: 'TimeoutError' });
    ec2
      .on(RunInstancesCommand)
      .rejectsOnce(timeout)
      .rejectsOnce(awsError('InsufficientInstanceCapacity', 'no capacity', 500))
      .resolves({ Instances: [{ InstanceId: 'i-0abc', State: { Name: 'pending' } }] });
    const cwd = tempProject();
    const sleep = fakeSleep().sleep;
    const first = await runCli([...base, '--yes'], { cwd, sleep });
    expect(first.code).toBe(1);
    expect(readState(cwd).deployments.main.clientToken).toBe('embedctl-main-1');

    const second = await runCli([...base, '--yes'], { cwd, sleep });
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/another availability zone/);
    const third = await runCli([...base, '--yes'], { cwd, sleep });
    expect(third.code).toBe(0);

    const tokens = ec2.commandCalls(RunInstancesCommand).map((c) => c.args[0].input.ClientToken);
    expect(tokens).toEqual(['embedctl-main-1', 'embedctl-main-1', 'embedctl-main-2']);
    // The group from the first run is reused by later runs, never created twice.
    expect(ec2.commandCalls(CreateSecurityGroupCommand)).toHaveLength(1);
  });

  it('re-running a finished provision launches nothing new', async () => {
    happyAccount();
    const cwd = tempProject();
    const sleep = fakeSleep().sleep;
    expect((await runCli([...base, '--yes'], { cwd, sleep })).code).toBe(0);
    const again = await runCli([...base, '--yes'], { cwd, sleep });
    expect(again.code).toBe(0);
    expect(again.stderr).toMatch(/instance i-0abc already exists \(running\)/);
    expect(ec2.commandCalls(RunInstancesCommand)).toHaveLength(1);
  });

  it('IdempotentParameterMismatch adopts the instance an interrupted run launched', async () => {
    happyAccount();
    const cwd = tempProject();
    mkdirSync(join(cwd, '.embedctl'));
    writeFileSync(
      join(cwd, '.embedctl', 'state.json'),
      JSON.stringify({
        version: 1,
        attempts: { main: 1 },
        deployments: { main: { name: 'main', region: 'us-east-1', createdAt: 'x', updatedAt: 'x', attempt: 1, clientToken: 'embedctl-main-1', alarms: [], endpoints: [] } },
      }),
    );
    ec2.on(RunInstancesCommand).rejects(awsError('IdempotentParameterMismatch', 'token reused with different parameters'));
    ec2.on(DescribeInstancesCommand, { Filters: [{ Name: 'client-token', Values: ['embedctl-main-1'] }] }).resolves({
      Reservations: [{ Instances: [{ InstanceId: 'i-0earlier', State: { Name: 'running' } }] }],
    });
    const r = await runCli([...base, '--yes', '--no-wait'], { cwd });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/i-0earlier\) was adopted/);
    expect(readState(cwd).deployments.main.instance.id).toBe('i-0earlier');
  });

  it('a wait that never ends times out through ctx.sleep, in milliseconds, and keeps the instance in state', async () => {
    happyAccount();
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: 'i-0abc', State: { Name: 'pending' } }] }] });
    const cwd = tempProject();
    const s = fakeSleep();
    const t0 = Date.now();
    const r = await runCli([...base, '--yes', '--wait-timeout', '1'], { cwd, sleep: s.sleep });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/timed out after 60 s waiting for instance i-0abc to be running/);
    expect(s.calls.reduce((a, b) => a + b, 0)).toBe(60_000);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(readState(cwd).deployments.main.instance.id).toBe('i-0abc');
  });
});

describe('provision: Ctrl-C', () => {
  it('during a wait: exit 130, the instance stays recorded for the next run', async () => {
    happyAccount();
    const cwd = tempProject();
    const ac = new AbortController();
    const r = await runCli([...base, '--yes'], {
      cwd,
      signal: ac.signal,
      sleep: async (_ms, signal) => {
        ac.abort();
        throw signal?.reason ?? new Error('aborted');
      },
    });
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/interrupted while waiting for instance i-0abc to be running; .* re-run to resume/);
    expect(readState(cwd).deployments.main.instance.id).toBe('i-0abc');
    expect(existsSync(join(cwd, '.embedctl', 'state.json.lock'))).toBe(false);
  });
});

describe('provision: AWS errors become one actionable line', () => {
  const cases: Array<{ name: string; setup: () => void; code: number; re: RegExp }> = [
    {
      name: 'no credentials',
      setup: () => ssm.on(GetParameterCommand).rejects(Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' })),
      code: 1,
      re: /AWS: no credentials found\n  hint: set AWS_PROFILE .* or AWS_ACCESS_KEY_ID\/AWS_SECRET_ACCESS_KEY/,
    },
    {
      name: 'permission',
      setup: () => ec2.on(CreateSecurityGroupCommand).rejects(awsError('UnauthorizedOperation', 'You are not authorized', 403)),
      code: 1,
      re: /not allowed to call ec2:CreateSecurityGroup/,
    },
    {
      name: 'vCPU quota (on-demand)',
      setup: () => ec2.on(RunInstancesCommand).rejects(awsError('VcpuLimitExceeded', 'You have requested more vCPU capacity')),
      code: 1,
      re: /vCPU quota .*\n  hint: .*Running On-Demand G and VT instances" \(L-DB2E81BA\)/,
    },
    {
      name: 'unknown instance type',
      setup: () => ec2.on(RunInstancesCommand).rejects(awsError('InvalidParameterValue', "Invalid value 'g9.huge' for InstanceType.")),
      code: 2,
      re: /--instance-type: EC2 does not know instance type/,
    },
    {
      name: 'capacity',
      setup: () => ec2.on(RunInstancesCommand).rejects(awsError('InsufficientInstanceCapacity', 'We currently do not have sufficient capacity', 500)),
      code: 1,
      re: /no g4dn\.xlarge capacity .*\n  hint: try another availability zone/,
    },
    {
      name: 'region not enabled',
      setup: () => ssm.on(GetParameterCommand).rejects(awsError('OptInRequired', 'not subscribed')),
      code: 2,
      re: /--region: region us-east-1 is not enabled/,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      happyAccount();
      c.setup();
      const r = await runCli([...base, '--yes'], { cwd: tempProject(), sleep: fakeSleep().sleep });
      expect(r.code).toBe(c.code);
      expect(r.stderr).toMatch(c.re);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    });
  }

  it('spot quota names the spot quota code', async () => {
    happyAccount();
    ec2.on(RunInstancesCommand).rejects(awsError('MaxSpotInstanceCountExceeded', 'Max spot instance count exceeded'));
    const r = await runCli([...base, '--market', 'spot', '--yes'], { cwd: tempProject(), sleep: fakeSleep().sleep });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/L-3819A6DF/);
  });
});

describe('provision: the state lock', () => {
  it('a corrupt state file stops provision before any AWS change and is left untouched', async () => {
    happyAccount();
    const cwd = tempProject();
    mkdirSync(join(cwd, '.embedctl'));
    writeFileSync(join(cwd, '.embedctl', 'state.json'), '{"version": 1, "deployments": {');
    const r = await runCli([...base, '--yes'], { cwd, sleep: fakeSleep().sleep });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/state\.json is corrupt .* it was left untouched/);
    expect(readFileSync(join(cwd, '.embedctl', 'state.json'), 'utf8')).toBe('{"version": 1, "deployments": {');
    expect(ec2.commandCalls(CreateSecurityGroupCommand)).toHaveLength(0);
    expect(ec2.commandCalls(RunInstancesCommand)).toHaveLength(0);
  });

  it('a second provision while one runs fails at once, naming the holder; the first finishes', async () => {
    happyAccount();
    const cwd = tempProject();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inWait = new Promise<void>((r) => (entered = r));
    const first = runCli([...base, '--yes'], {
      cwd,
      sleep: async () => {
        entered();
        await gate;
      },
    });
    await inWait;
    const second = await runCli([...base, '--yes'], { cwd, sleep: fakeSleep().sleep });
    expect(second.code).toBe(2);
    expect(second.stderr).toMatch(/another embedctl command holds the state lock \(pid \d+ .*running "provision"\)/);
    release();
    const r1 = await first;
    expect(r1.code).toBe(0);
    expect(ec2.commandCalls(RunInstancesCommand)).toHaveLength(1);
    expect(existsSync(join(cwd, '.embedctl', 'state.json.lock'))).toBe(false);
  });
});
