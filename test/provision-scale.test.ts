import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { DeleteParameterCommand, DescribeParametersCommand } from '@aws-sdk/client-ssm';
import {
  CreateLaunchTemplateCommand,
  CreateSecurityGroupCommand,
  DeleteLaunchTemplateCommand,
  DeleteSecurityGroupCommand,
  DescribeLaunchTemplatesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  AuthorizeSecurityGroupIngressCommand,
  RunInstancesCommand,
} from '@aws-sdk/client-ec2';
import {
  CreateAutoScalingGroupCommand,
  DeleteAutoScalingGroupCommand,
  DescribeAutoScalingGroupsCommand,
  PutScalingPolicyCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  CreateListenerCommand,
  CreateLoadBalancerCommand,
  CreateTargetGroupCommand,
  DeleteListenerCommand,
  DeleteLoadBalancerCommand,
  DeleteTargetGroupCommand,
  DescribeListenersCommand,
  DescribeLoadBalancersCommand,
  DescribeTagsCommand,
  DescribeTargetGroupsCommand,
  DescribeTargetHealthCommand,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { DescribeCertificateCommand } from '@aws-sdk/client-acm';
import { DeleteAlarmsCommand, DeleteDashboardsCommand, DescribeAlarmsCommand, GetDashboardCommand, ListTagsForResourceCommand, PutDashboardCommand, PutMetricAlarmCommand } from '@aws-sdk/client-cloudwatch';
import { DeleteBudgetCommand, DescribeBudgetCommand } from '@aws-sdk/client-budgets';
import { runCli } from './helpers/cli.js';
import { acm, ACCOUNT, AMI, asg, awsError, budgets, cw, ec2, elb, fakeSleep, happyAccount, readHistory, readState, resetAws, ssm, tempProject } from './provision-fakes.js';

beforeEach(() => resetAws());
afterAll(() => resetAws());

const CIDR = '203.0.113.7/32';
const CERT = 'arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-aaaa-bbbb-cccc-000000000001';
const LB = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/embedctl-main/50dc6c495c0c9188';
const TG = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/embedctl-main-tg/73e2d6bc24d8a067';
const LISTENER = 'arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/embedctl-main/50dc6c495c0c9188/f2f7dc8efc522ab2';
const args = ['provision', '--region', 'us-east-1', '--allow-cidr', CIDR, '--model', 'BAAI/bge-base-en-v1.5', '--min', '2', '--max', '6', '--certificate-arn', CERT, '--yes'];

const managed = (name = 'main', resource = `embedctl-${name}`) => [
  { Key: 'Name', Value: resource },
  { Key: 'embedctl:managed', Value: 'true' },
  { Key: 'embedctl:deployment', Value: name },
];

function scaleAccount() {
  happyAccount();
  ec2.on(DescribeSubnetsCommand, { Filters: [{ Name: 'vpc-id', Values: ['vpc-default'] }, { Name: 'default-for-az', Values: ['true'] }] }).resolves({
    Subnets: [
      { SubnetId: 'subnet-0a', VpcId: 'vpc-default', AvailabilityZone: 'us-east-1a' },
      { SubnetId: 'subnet-0b', VpcId: 'vpc-default', AvailabilityZone: 'us-east-1b' },
    ],
  });
  ec2.on(DescribeLaunchTemplatesCommand).rejects(awsError('InvalidLaunchTemplateName.NotFoundException'));
  ec2.on(CreateLaunchTemplateCommand).resolves({ LaunchTemplate: { LaunchTemplateId: 'lt-0abc' } });
  acm.on(DescribeCertificateCommand).resolves({ Certificate: { CertificateArn: CERT, DomainName: 'embed.example.com', Status: 'ISSUED' } });
  elb.on(DescribeTargetGroupsCommand).rejects(awsError('TargetGroupNotFoundException'));
  elb.on(CreateTargetGroupCommand).resolves({ TargetGroups: [{ TargetGroupArn: TG }] });
  elb.on(DescribeLoadBalancersCommand).rejects(awsError('LoadBalancerNotFoundException'));
  elb.on(CreateLoadBalancerCommand).resolves({ LoadBalancers: [{ LoadBalancerArn: LB, DNSName: 'embedctl-main-1234.us-east-1.elb.amazonaws.com' }] });
  elb.on(DescribeListenersCommand).resolves({ Listeners: [] });
  elb.on(CreateListenerCommand).resolves({ Listeners: [{ ListenerArn: LISTENER }] });
  asg.on(DescribeAutoScalingGroupsCommand).resolves({ AutoScalingGroups: [] });
  asg.on(CreateAutoScalingGroupCommand).resolves({});
  asg.on(PutScalingPolicyCommand).resolves({ PolicyARN: 'arn:aws:autoscaling:policy' });
}

const input = <T>(calls: Array<{ args: [{ input: T }] }>) => calls.map((c) => c.args[0].input);

describe('provision --min 2 --max 6: launch template, ALB with HTTPS, Auto Scaling group, target tracking', () => {
  it('sends exactly these requests, in dependency order, and records every resource', async () => {
    scaleAccount();
    const cwd = tempProject();
    const r = await runCli(args, { cwd, sleep: fakeSleep().sleep });
    expect(r.code, r.stderr).toBe(0);
    expect(ec2.commandCalls(RunInstancesCommand)).toHaveLength(0);

    // One group for ALB and instances: 443 from the CIDR, the gateway port only from the group itself.
    expect(input(ec2.commandCalls(AuthorizeSecurityGroupIngressCommand))[0]!.IpPermissions).toEqual([
      { IpProtocol: 'tcp', FromPort: 443, ToPort: 443, IpRanges: [{ CidrIp: CIDR, Description: 'embedctl gateway (nginx)' }] },
      { IpProtocol: 'tcp', FromPort: 8000, ToPort: 8000, UserIdGroupPairs: [{ GroupId: 'sg-0new', Description: 'embedctl gateway, from the load balancer only' }] },
    ]);
    expect(input(acm.commandCalls(DescribeCertificateCommand))).toEqual([{ CertificateArn: CERT }]);

    const [lt] = input(ec2.commandCalls(CreateLaunchTemplateCommand));
    const { UserData, ...data } = lt!.LaunchTemplateData!;
    expect(Buffer.from(UserData!, 'base64').length).toBeGreaterThan(1000);
    expect(lt).toMatchObject({ LaunchTemplateName: 'embedctl-main', TagSpecifications: [{ ResourceType: 'launch-template', Tags: managed() }] });
    expect(data).toEqual({
      ImageId: AMI,
      InstanceType: 'g4dn.xlarge',
      MetadataOptions: { HttpTokens: 'required', HttpPutResponseHopLimit: 2, HttpEndpoint: 'enabled', InstanceMetadataTags: 'enabled' },
      BlockDeviceMappings: [{ DeviceName: '/dev/sda1', Ebs: { VolumeSize: 125, VolumeType: 'gp3', Encrypted: true, DeleteOnTermination: true } }],
      SecurityGroupIds: ['sg-0new'],
      TagSpecifications: ['instance', 'volume', 'network-interface'].map((ResourceType) => ({ ResourceType, Tags: managed() })),
    });

    expect(input(elb.commandCalls(CreateTargetGroupCommand))).toEqual([
      {
        Name: 'embedctl-main-tg',
        Protocol: 'HTTP',
        Port: 8000,
        VpcId: 'vpc-default',
        TargetType: 'instance',
        HealthCheckProtocol: 'HTTP',
        HealthCheckPort: 'traffic-port',
        HealthCheckPath: '/ready',
        HealthCheckIntervalSeconds: 15,
        HealthCheckTimeoutSeconds: 5,
        HealthyThresholdCount: 2,
        UnhealthyThresholdCount: 3,
        Matcher: { HttpCode: '200' },
        Tags: managed('main', 'embedctl-main-tg'),
      },
    ]);
    expect(input(elb.commandCalls(CreateLoadBalancerCommand))).toEqual([
      { Name: 'embedctl-main', Type: 'application', Scheme: 'internet-facing', IpAddressType: 'ipv4', Subnets: ['subnet-0a', 'subnet-0b'], SecurityGroups: ['sg-0new'], Tags: managed() },
    ]);
    expect(input(elb.commandCalls(CreateListenerCommand))).toEqual([
      {
        LoadBalancerArn: LB,
        Protocol: 'HTTPS',
        Port: 443,
        SslPolicy: 'ELBSecurityPolicy-TLS13-1-2-2021-06',
        Certificates: [{ CertificateArn: CERT }],
        DefaultActions: [{ Type: 'forward', TargetGroupArn: TG }],
        Tags: managed(),
      },
    ]);
    expect(input(asg.commandCalls(CreateAutoScalingGroupCommand))).toEqual([
      {
        AutoScalingGroupName: 'embedctl-main',
        MinSize: 2,
        MaxSize: 6,
        DesiredCapacity: 2,
        LaunchTemplate: { LaunchTemplateId: 'lt-0abc', Version: '$Latest' },
        VPCZoneIdentifier: 'subnet-0a,subnet-0b',
        TargetGroupARNs: [TG],
        HealthCheckType: 'ELB',
        HealthCheckGracePeriod: 600,
        DefaultInstanceWarmup: 300,
        Tags: managed().map((t) => ({ ...t, PropagateAtLaunch: true, ResourceId: 'embedctl-main', ResourceType: 'auto-scaling-group' })),
      },
    ]);
    expect(input(asg.commandCalls(PutScalingPolicyCommand))).toEqual([
      {
        AutoScalingGroupName: 'embedctl-main',
        PolicyName: 'embedctl-main-target-tracking',
        PolicyType: 'TargetTrackingScaling',
        EstimatedInstanceWarmup: 600,
        TargetTrackingConfiguration: {
          PredefinedMetricSpecification: {
            PredefinedMetricType: 'ALBRequestCountPerTarget',
            ResourceLabel: 'app/embedctl-main/50dc6c495c0c9188/targetgroup/embedctl-main-tg/73e2d6bc24d8a067',
          },
          TargetValue: 1000,
          DisableScaleIn: false,
        },
      },
    ]);
    // Host alarms watch the whole group.
    const alarms = input(cw.commandCalls(PutMetricAlarmCommand));
    expect(alarms.find((a) => a.AlarmName === 'embedctl-main-status-check')!.Dimensions).toEqual([{ Name: 'AutoScalingGroupName', Value: 'embedctl-main' }]);
    const dash = JSON.parse(input(cw.commandCalls(PutDashboardCommand))[0]!.DashboardBody!) as { widgets: Array<{ properties: { metrics?: unknown[][] } }> };
    expect(dash.widgets.flatMap((w) => w.properties.metrics ?? []).map((m) => m.slice(0, 4).join(' '))).toContain('AWS/ApplicationELB RequestCount LoadBalancer app/embedctl-main/50dc6c495c0c9188');

    const st = readState(cwd).deployments.main;
    expect(st.scale).toEqual({
      min: 2,
      max: 6,
      launchTemplateId: 'lt-0abc',
      targetGroupArn: TG,
      loadBalancerArn: LB,
      loadBalancerDns: 'embedctl-main-1234.us-east-1.elb.amazonaws.com',
      listenerArn: LISTENER,
      autoScalingGroup: 'embedctl-main',
      scalingPolicy: 'embedctl-main-target-tracking',
    });
    expect(st.gateway).toBe('https://embedctl-main-1234.us-east-1.elb.amazonaws.com');
    const actions = readHistory(cwd).map((h) => h.action);
    const order = ['create-security-group', 'create-launch-template', 'create-target-group', 'create-load-balancer', 'create-listener', 'create-auto-scaling-group', 'create-scaling-policy', 'alarms', 'dashboard', 'create-budget'];
    expect(actions.filter((a) => order.includes(String(a)))).toEqual(order);
    expect(r.stdout).toMatch(/auto scaling +embedctl-main \(min 2, max 6\)/);

    // A re-run finds every resource (tags checked) and creates nothing again.
    ec2.on(DescribeLaunchTemplatesCommand).resolves({ LaunchTemplates: [{ LaunchTemplateId: 'lt-0abc', Tags: managed() }] });
    elb.on(DescribeTargetGroupsCommand).resolves({ TargetGroups: [{ TargetGroupArn: TG }] });
    elb.on(DescribeLoadBalancersCommand).resolves({ LoadBalancers: [{ LoadBalancerArn: LB, DNSName: 'embedctl-main-1234.us-east-1.elb.amazonaws.com' }] });
    elb.on(DescribeTagsCommand).resolves({ TagDescriptions: [{ Tags: managed() }] });
    elb.on(DescribeListenersCommand).resolves({ Listeners: [{ ListenerArn: LISTENER, Port: 443 }] });
    asg.on(DescribeAutoScalingGroupsCommand).resolves({ AutoScalingGroups: [{ AutoScalingGroupName: 'embedctl-main', Tags: managed(), MinSize: 2, MaxSize: 6, DesiredCapacity: 2, DefaultCooldown: 300, AvailabilityZones: [], HealthCheckType: 'ELB', CreatedTime: new Date() }] });
    ec2.on(DescribeSecurityGroupsCommand, { GroupIds: ['sg-0new'] }).resolves({ SecurityGroups: [{ GroupId: 'sg-0new', OwnerId: ACCOUNT, Tags: managed(), IpPermissions: input(ec2.commandCalls(AuthorizeSecurityGroupIngressCommand))[0]!.IpPermissions }] });
    const again = await runCli(args, { cwd, sleep: fakeSleep().sleep });
    expect(again.code, again.stderr).toBe(0);
    expect(ec2.commandCalls(CreateLaunchTemplateCommand)).toHaveLength(1);
    expect(ec2.commandCalls(AuthorizeSecurityGroupIngressCommand)).toHaveLength(1);
    expect(elb.commandCalls(CreateTargetGroupCommand)).toHaveLength(1);
    expect(elb.commandCalls(CreateLoadBalancerCommand)).toHaveLength(1);
    expect(elb.commandCalls(CreateListenerCommand)).toHaveLength(1);
    expect(asg.commandCalls(CreateAutoScalingGroupCommand)).toHaveLength(1);
  });

  it('in given subnets (which may not assign public IPs) each instance gets a public IP on its primary interface, the group there; the dry run checks the same template', async () => {
    scaleAccount();
    const inSubnets = [...args, '--subnet', 'subnet-0a', '--subnet', 'subnet-0b'];
    const r = await runCli(inSubnets, { cwd: tempProject(), sleep: fakeSleep().sleep });
    expect(r.code, r.stderr).toBe(0);
    const data = input(ec2.commandCalls(CreateLaunchTemplateCommand))[0]!.LaunchTemplateData!;
    // Without a public address an instance cannot pull the image or reach SSM, never turns
    // healthy behind the ALB, and the group (ELB health checks) replaces it in a loop.
    expect(data.NetworkInterfaces).toEqual([{ DeviceIndex: 0, AssociatePublicIpAddress: true, DeleteOnTermination: true, Groups: ['sg-0new'] }]);
    // EC2 refuses a template with both; the subnet comes from the group's VPCZoneIdentifier.
    expect(data.SecurityGroupIds).toBeUndefined();
    expect(data.NetworkInterfaces![0]!.SubnetId).toBeUndefined();
    expect(input(asg.commandCalls(CreateAutoScalingGroupCommand))[0]!.VPCZoneIdentifier).toBe('subnet-0a,subnet-0b');

    // --dry-run before the group exists: the same interface, without a group.
    resetAws();
    scaleAccount();
    ec2.on(CreateLaunchTemplateCommand).rejects(awsError('DryRunOperation', 'Request would have succeeded'));
    ec2.on(CreateSecurityGroupCommand).rejects(awsError('DryRunOperation', 'Request would have succeeded'));
    const dry = await runCli([...inSubnets.filter((a) => a !== '--yes'), '--dry-run'], { cwd: tempProject() });
    expect(dry.code, dry.stderr).toBe(0);
    const checked = input(ec2.commandCalls(CreateLaunchTemplateCommand))[0]!;
    expect(checked.DryRun).toBe(true);
    expect(checked.LaunchTemplateData!.NetworkInterfaces).toEqual([{ DeviceIndex: 0, AssociatePublicIpAddress: true, DeleteOnTermination: true }]);
    expect(checked.LaunchTemplateData!.SecurityGroupIds).toBeUndefined();
  });

  it('--scale-metric p95 tracks the runtime latency metric; a pending certificate is refused before anything is created', async () => {
    scaleAccount();
    const r = await runCli([...args.filter((a) => a !== '--certificate-arn' && a !== CERT), '--scale-metric', 'p95'], { cwd: tempProject(), sleep: fakeSleep().sleep });
    expect(r.code, r.stderr).toBe(0);
    expect(input(elb.commandCalls(CreateListenerCommand))[0]).toMatchObject({ Protocol: 'HTTP', Port: 80 });
    expect(input(asg.commandCalls(PutScalingPolicyCommand))[0]!.TargetTrackingConfiguration).toEqual({
      CustomizedMetricSpecification: { Namespace: 'Embedctl', MetricName: 'RequestLatencyP95', Dimensions: [{ Name: 'Deployment', Value: 'main' }], Statistic: 'Maximum', Unit: 'Milliseconds' },
      TargetValue: 250,
      DisableScaleIn: false,
    });

    resetAws();
    scaleAccount();
    acm.on(DescribeCertificateCommand).resolves({ Certificate: { CertificateArn: CERT, Status: 'PENDING_VALIDATION' } });
    const pending = await runCli(args, { cwd: tempProject(), sleep: fakeSleep().sleep });
    expect(pending.code).toBe(2);
    expect(pending.stderr).toMatch(/--certificate-arn: certificate .* is PENDING_VALIDATION, not ISSUED/);
    expect(ec2.commandCalls(AuthorizeSecurityGroupIngressCommand)).toHaveLength(0);
    expect(elb.commandCalls(CreateLoadBalancerCommand)).toHaveLength(0);
  });

  it('bad scale input is refused before any AWS call', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--min', '3', '--max', '2'], /--max: must be >= --min \(3\), got 2/],
      [['--certificate-arn', CERT], /--certificate-arn: only applies with --min\/--max/],
      [['--min', '2', '--certificate-arn', 'arn:aws:iam::1:server-certificate/x'], /--certificate-arn: expected an ACM certificate ARN/],
      [['--subnet', 'subnet-0a', '--subnet', 'subnet-0b'], /--subnet: one instance lives in one subnet/],
      [['--min', '2', '--scale-metric', 'cpu'], /--scale-metric: expected one of requests, p95/],
    ];
    for (const [extra, re] of cases) {
      const r = await runCli(['provision', '--region', 'us-east-1', '--allow-cidr', CIDR, '--model', 'BAAI/bge-base-en-v1.5', ...extra, '--yes'], { cwd: tempProject() });
      expect(r.code, extra.join(' ')).toBe(2);
      expect(r.stderr).toMatch(re);
    }
    expect(ec2.calls().length + elb.calls().length + asg.calls().length).toBe(0);
  });
});

describe('teardown and status of a scale-out deployment', () => {
  it('status lists the instances with target health; teardown removes everything in dependency order', async () => {
    scaleAccount();
    const cwd = tempProject();
    expect((await runCli(args, { cwd, sleep: fakeSleep().sleep })).code).toBe(0);

    // What AWS now says about the resources provision created.
    asg.on(DescribeAutoScalingGroupsCommand)
      .resolves({ AutoScalingGroups: [{ AutoScalingGroupName: 'embedctl-main', Tags: managed(), MinSize: 2, MaxSize: 6, DesiredCapacity: 2, DefaultCooldown: 300, AvailabilityZones: [], HealthCheckType: 'ELB', CreatedTime: new Date(), Instances: [
        { InstanceId: 'i-01', LifecycleState: 'InService', HealthStatus: 'Healthy', AvailabilityZone: 'us-east-1a', ProtectedFromScaleIn: false },
        { InstanceId: 'i-02', LifecycleState: 'Pending', HealthStatus: 'Healthy', AvailabilityZone: 'us-east-1b', ProtectedFromScaleIn: false },
      ] }] });
    elb.on(DescribeTargetHealthCommand, { TargetGroupArn: TG }).resolves({
      TargetHealthDescriptions: [
        { Target: { Id: 'i-01', Port: 8000 }, TargetHealth: { State: 'healthy' } },
        { Target: { Id: 'i-02', Port: 8000 }, TargetHealth: { State: 'initial', Description: 'Target registration is in progress' } },
      ],
    });
    const status = await runCli(['status', '--timeout', '200ms'], { cwd });
    expect(status.stdout).toMatch(/deployment "main" in us-east-1: scale-out/);
    expect(status.stdout).toMatch(/auto scaling group embedctl-main: 2 instance\(s\), desired 2 \(min 2, max 6\) behind embedctl-main-1234/);
    expect(status.stdout).toMatch(/i-01 +InService, Healthy; target healthy/);
    expect(status.stdout).toMatch(/i-02 +Pending, Healthy; target initial \(Target registration is in progress\)/);

    const order: string[] = [];
    const track = (name: string, out: object = {}) => () => (order.push(name), out);
    ec2.on(DescribeLaunchTemplatesCommand).resolves({ LaunchTemplates: [{ LaunchTemplateId: 'lt-0abc', Tags: managed() }] });
    elb.on(DescribeTargetGroupsCommand).resolves({ TargetGroups: [{ TargetGroupArn: TG }] });
    elb.on(DescribeLoadBalancersCommand).resolves({ LoadBalancers: [{ LoadBalancerArn: LB }] });
    elb.on(DescribeTagsCommand).resolves({ TagDescriptions: [{ Tags: managed() }] });
    ec2.on(DescribeSecurityGroupsCommand, { GroupIds: ['sg-0new'] }).resolves({ SecurityGroups: [{ GroupId: 'sg-0new', Tags: managed() }] });
    const alarmNames = readState(cwd).deployments.main.alarms as string[];
    cw.on(DescribeAlarmsCommand).resolves({ MetricAlarms: alarmNames.map((n) => ({ AlarmName: n, AlarmArn: `arn:aws:cloudwatch:us-east-1:1:alarm:${n}` })) });
    cw.on(ListTagsForResourceCommand).resolves({ Tags: managed() });
    cw.on(GetDashboardCommand).resolves({ DashboardBody: input(cw.commandCalls(PutDashboardCommand))[0]!.DashboardBody });
    budgets.on(DescribeBudgetCommand).resolves({ Budget: { BudgetName: 'embedctl-main-monthly', BudgetType: 'COST', TimeUnit: 'MONTHLY', CostFilters: { TagKeyValue: ['user:embedctl:deployment$main'] } } });
    cw.on(DeleteAlarmsCommand).callsFake(track('alarms'));
    cw.on(DeleteDashboardsCommand).callsFake(track('dashboard'));
    budgets.on(DeleteBudgetCommand).callsFake(track('budget'));
    asg.on(DeleteAutoScalingGroupCommand).callsFake(() => {
      order.push('asg');
      asg.on(DescribeAutoScalingGroupsCommand).resolves({ AutoScalingGroups: [] });
      return {};
    });
    elb.on(DeleteListenerCommand).callsFake(track('listener'));
    elb.on(DeleteLoadBalancerCommand).callsFake(track('lb'));
    elb.on(DeleteTargetGroupCommand).rejectsOnce(awsError('ResourceInUse', 'target group is in use')).callsFake(track('tg'));
    ec2.on(DeleteLaunchTemplateCommand).callsFake(track('lt'));
    ec2.on(DeleteSecurityGroupCommand).callsFake(track('sg'));
    // The gateway keys parameter provision created (with its marker).
    ssm.on(DescribeParametersCommand).resolves({ Parameters: [{ Name: '/embedctl/main/gateway-keys', Type: 'SecureString', Description: 'embedctl gateway keys for deployment main' }] });
    ssm.on(DeleteParameterCommand).callsFake(track('keys'));

    const r = await runCli(['teardown', '--yes'], { cwd, sleep: fakeSleep().sleep });
    expect(r.code, r.stderr).toBe(0);
    expect(order).toEqual(['alarms', 'dashboard', 'budget', 'keys', 'asg', 'listener', 'lb', 'tg', 'lt', 'sg']);
    expect(input(ssm.commandCalls(DeleteParameterCommand))).toEqual([{ Name: '/embedctl/main/gateway-keys' }]);
    expect(input(asg.commandCalls(DeleteAutoScalingGroupCommand))).toEqual([{ AutoScalingGroupName: 'embedctl-main', ForceDelete: true }]);
    expect(input(elb.commandCalls(DeleteListenerCommand))).toEqual([{ ListenerArn: LISTENER }]);
    expect(input(elb.commandCalls(DeleteLoadBalancerCommand))).toEqual([{ LoadBalancerArn: LB }]);
    expect(input(elb.commandCalls(DeleteTargetGroupCommand))).toEqual([{ TargetGroupArn: TG }, { TargetGroupArn: TG }]);
    expect(input(ec2.commandCalls(DeleteLaunchTemplateCommand))).toEqual([{ LaunchTemplateId: 'lt-0abc' }]);
    expect(input(budgets.commandCalls(DeleteBudgetCommand))).toEqual([{ AccountId: ACCOUNT, BudgetName: 'embedctl-main-monthly' }]);
    expect(input(cw.commandCalls(DeleteDashboardsCommand))).toEqual([{ DashboardNames: ['embedctl-main'] }]);
    expect(r.stdout).toMatch(/Teardown of "main" in us-east-1: 17 removed, 0 already gone, 0 skipped/);
    expect(r.stdout).toContain('removed  parameter /embedctl/main/gateway-keys');
    expect(readState(cwd).deployments).toEqual({});
  });

  it('a load balancer without embedctl tags is left alone, and so is the group it still uses', async () => {
    scaleAccount();
    const cwd = tempProject();
    expect((await runCli(args, { cwd, sleep: fakeSleep().sleep })).code).toBe(0);
    elb.on(DescribeLoadBalancersCommand).resolves({ LoadBalancers: [{ LoadBalancerArn: LB }] });
    elb.on(DescribeTagsCommand).resolves({ TagDescriptions: [{ Tags: [{ Key: 'Name', Value: 'theirs' }] }] });
    ec2.on(DescribeSecurityGroupsCommand, { GroupIds: ['sg-0new'] }).resolves({ SecurityGroups: [{ GroupId: 'sg-0new', Tags: managed() }] });
    cw.on(DescribeAlarmsCommand).resolves({ MetricAlarms: [] });
    cw.on(GetDashboardCommand).resolves({ DashboardBody: input(cw.commandCalls(PutDashboardCommand))[0]!.DashboardBody });
    const r = await runCli(['teardown', '--yes', '--json'], { cwd, sleep: fakeSleep().sleep });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(elb.commandCalls(DeleteLoadBalancerCommand)).toHaveLength(0);
    expect(ec2.commandCalls(DeleteSecurityGroupCommand)).toHaveLength(0);
    const skipped = r.json<{ deployments: Array<{ skipped: Array<{ resource: string; reason: string }> }> }>().deployments[0]!.skipped;
    expect(skipped.map((s) => s.resource)).toEqual([`listener ${LISTENER}`, 'load balancer embedctl-main', 'security group sg-0new']);
    expect(skipped[2]!.reason).toMatch(/load balancer embedctl-main still uses it/);
    expect(readState(cwd).deployments.main.scale.loadBalancerArn).toBe(LB);
  });
});
