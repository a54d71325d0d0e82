import { createHash } from 'node:crypto';
import type { AuthorizeSecurityGroupIngressCommandInput, CreateLaunchTemplateCommandInput, LaunchTemplateBlockDeviceMappingRequest } from '@aws-sdk/client-ec2';
import type { CreateAutoScalingGroupCommandInput, PutScalingPolicyCommandInput } from '@aws-sdk/client-auto-scaling';
import type {
  CreateListenerCommandInput,
  CreateLoadBalancerCommandInput,
  CreateTargetGroupCommandInput,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import {
  buildIngress,
  DEPLOYMENT_DIMENSION,
  ingressRules,
  instanceName,
  managedTags,
  ROOT_DEVICE,
  SERVICE_METRICS,
  SERVICE_NAMESPACE,
  type ProvisionOptions,
} from './provision-plan.js';
import { LATENCY_P95_STAT } from './service-metrics.js';

/**
 * Scale-out (`provision --min N --max M`): the exact requests for a launch template, an Auto
 * Scaling group, an Application Load Balancer in front of it and a target-tracking policy. Pure,
 * like provision-plan.ts, so tests and `--dry-run` see what would be sent.
 */

export type ScaleMetric = 'requests' | 'p95';

export interface ScaleOptions {
  min: number;
  max: number;
  /** ACM certificate: the listener speaks HTTPS on 443; without it, HTTP on 80. */
  certificateArn?: string;
  metric: ScaleMetric;
  /** Requests per target per minute (requests) or milliseconds (p95). */
  target: number;
}

export const SCALE_TARGET_DEFAULTS: Record<ScaleMetric, number> = { requests: 1000, p95: 250 };

/** The ALB's target-group health check: the gateway answers /ready once a runtime behind it is ready. */
export const HEALTH_CHECK_PATH = '/ready';

/** ELB names: at most 32 characters of [a-zA-Z0-9-]; long deployment names get a short hash. */
export function elbName(name: string, suffix: '' | '-tg' = ''): string {
  const full = `embedctl-${name}${suffix}`;
  if (full.length <= 32) return full;
  const h = createHash('sha256').update(name).digest('hex').slice(0, 6);
  return `embedctl-${name.slice(0, 32 - 9 - 7 - suffix.length).replace(/-+$/, '')}-${h}${suffix}`;
}

export const launchTemplateName = (name: string) => `embedctl-${name}`;
export const autoScalingGroupName = (name: string) => `embedctl-${name}`;
export const scalingPolicyName = (name: string) => `embedctl-${name}-target-tracking`;

export function listenerPort(s: ScaleOptions): number {
  return s.certificateArn ? 443 : 80;
}

/**
 * `securityGroupId` is undefined only in a dry run before the group exists. With --subnet the
 * instances get a public address on their primary interface, as the single instance does
 * (buildRunInstances): a custom subnet may not assign one, and without it they cannot pull the
 * image or reach SSM, so the load balancer never sees them healthy and the group replaces them
 * in a loop. The subnet itself comes from the group's VPCZoneIdentifier, not from here.
 */
export function buildLaunchTemplate(o: ProvisionOptions, r: { amiId: string; securityGroupId?: string; userData: Uint8Array }): CreateLaunchTemplateCommandInput {
  const root: LaunchTemplateBlockDeviceMappingRequest = {
    DeviceName: ROOT_DEVICE,
    Ebs: { VolumeSize: o.volumeSize, VolumeType: 'gp3', Encrypted: true, DeleteOnTermination: true },
  };
  const tags = managedTags(o.name, instanceName(o.name));
  return {
    LaunchTemplateName: launchTemplateName(o.name),
    VersionDescription: 'embedctl provision',
    TagSpecifications: [{ ResourceType: 'launch-template', Tags: managedTags(o.name, launchTemplateName(o.name)) }],
    LaunchTemplateData: {
      ImageId: r.amiId,
      InstanceType: o.instanceType as never,
      // The same metadata rules as the single instance: IMDSv2 only, tags readable (Deployment dimension).
      MetadataOptions: { HttpTokens: 'required', HttpPutResponseHopLimit: 2, HttpEndpoint: 'enabled', InstanceMetadataTags: 'enabled' },
      BlockDeviceMappings: [root],
      ...(o.subnetId
        ? { NetworkInterfaces: [{ DeviceIndex: 0, AssociatePublicIpAddress: true, DeleteOnTermination: true, ...(r.securityGroupId ? { Groups: [r.securityGroupId] } : {}) }] }
        : r.securityGroupId
          ? { SecurityGroupIds: [r.securityGroupId] }
          : {}),
      UserData: Buffer.from(r.userData).toString('base64'),
      TagSpecifications: (['instance', 'volume', 'network-interface'] as const).map((ResourceType) => ({ ResourceType, Tags: tags })),
      ...(o.keyName ? { KeyName: o.keyName } : {}),
      ...(o.iamInstanceProfile
        ? { IamInstanceProfile: o.iamInstanceProfile.startsWith('arn:') ? { Arn: o.iamInstanceProfile } : { Name: o.iamInstanceProfile } }
        : {}),
      ...(o.market === 'spot' ? { InstanceMarketOptions: { MarketType: 'spot', SpotOptions: { SpotInstanceType: 'one-time', InstanceInterruptionBehavior: 'terminate' } } } : {}),
    },
  };
}

export function buildTargetGroup(o: ProvisionOptions, vpcId: string): CreateTargetGroupCommandInput {
  return {
    Name: elbName(o.name, '-tg'),
    Protocol: 'HTTP',
    Port: o.gatewayPort,
    VpcId: vpcId,
    TargetType: 'instance',
    HealthCheckProtocol: 'HTTP',
    HealthCheckPort: 'traffic-port',
    HealthCheckPath: HEALTH_CHECK_PATH,
    HealthCheckIntervalSeconds: 15,
    HealthCheckTimeoutSeconds: 5,
    HealthyThresholdCount: 2,
    UnhealthyThresholdCount: 3,
    Matcher: { HttpCode: '200' },
    Tags: managedTags(o.name, elbName(o.name, '-tg')),
  };
}

export function buildLoadBalancer(o: ProvisionOptions, subnetIds: string[], securityGroupId: string): CreateLoadBalancerCommandInput {
  return {
    Name: elbName(o.name),
    Type: 'application',
    Scheme: 'internet-facing',
    IpAddressType: 'ipv4',
    Subnets: subnetIds,
    SecurityGroups: [securityGroupId],
    Tags: managedTags(o.name, elbName(o.name)),
  };
}

/**
 * TLS policy: TLS 1.2 and 1.3 only, forward-secret ciphers (AWS's recommended policy for new
 * listeners as of 2023).
 */
export const TLS_POLICY = 'ELBSecurityPolicy-TLS13-1-2-2021-06';

export function buildListener(o: ProvisionOptions, s: ScaleOptions, loadBalancerArn: string, targetGroupArn: string): CreateListenerCommandInput {
  const tls = s.certificateArn ? { Protocol: 'HTTPS' as const, Port: 443, SslPolicy: TLS_POLICY, Certificates: [{ CertificateArn: s.certificateArn }] } : { Protocol: 'HTTP' as const, Port: 80 };
  return {
    LoadBalancerArn: loadBalancerArn,
    ...tls,
    DefaultActions: [{ Type: 'forward', TargetGroupArn: targetGroupArn }],
    Tags: managedTags(o.name, elbName(o.name)),
  };
}

/** The ASG's tags, propagated to instances as well so teardown and billing see them. */
function asgTags(name: string) {
  return managedTags(name, instanceName(name)).map((t) => ({
    Key: t.Key,
    Value: t.Value,
    PropagateAtLaunch: true,
    ResourceId: autoScalingGroupName(name),
    ResourceType: 'auto-scaling-group',
  }));
}

export function buildAutoScalingGroup(
  o: ProvisionOptions,
  s: ScaleOptions,
  r: { launchTemplateId: string; subnetIds: string[]; targetGroupArn: string },
): CreateAutoScalingGroupCommandInput {
  return {
    AutoScalingGroupName: autoScalingGroupName(o.name),
    MinSize: s.min,
    MaxSize: s.max,
    DesiredCapacity: s.min,
    LaunchTemplate: { LaunchTemplateId: r.launchTemplateId, Version: '$Latest' },
    VPCZoneIdentifier: r.subnetIds.join(','),
    TargetGroupARNs: [r.targetGroupArn],
    // Replace instances the load balancer finds unhealthy, after the model has had time to load.
    HealthCheckType: 'ELB',
    HealthCheckGracePeriod: 600,
    DefaultInstanceWarmup: 300,
    Tags: asgTags(o.name),
  };
}

/** "app/name/id/targetgroup/name/id" from the two ARNs, as ALBRequestCountPerTarget wants it. */
export function requestCountResourceLabel(loadBalancerArn: string, targetGroupArn: string): string {
  const lb = /:loadbalancer\/(app\/[^/]+\/[^/]+)$/.exec(loadBalancerArn)?.[1];
  const tg = /:(targetgroup\/[^/]+\/[^/]+)$/.exec(targetGroupArn)?.[1];
  if (!lb || !tg) throw new Error(`cannot build a resource label from ${loadBalancerArn} and ${targetGroupArn}`);
  return `${lb}/${tg}`;
}

export function buildScalingPolicy(o: ProvisionOptions, s: ScaleOptions, r: { loadBalancerArn: string; targetGroupArn: string }): PutScalingPolicyCommandInput {
  const metric =
    s.metric === 'requests'
      ? {
          PredefinedMetricSpecification: {
            PredefinedMetricType: 'ALBRequestCountPerTarget' as const,
            ResourceLabel: requestCountResourceLabel(r.loadBalancerArn, r.targetGroupArn),
          },
        }
      : {
          // The runtime's own p95 (EMF, worst runtime per minute): scale before users feel the queue.
          CustomizedMetricSpecification: {
            Namespace: SERVICE_NAMESPACE,
            MetricName: SERVICE_METRICS.latencyP95,
            Dimensions: [{ Name: DEPLOYMENT_DIMENSION, Value: o.name }],
            Statistic: LATENCY_P95_STAT as 'Maximum',
            Unit: 'Milliseconds',
          },
        };
  return {
    AutoScalingGroupName: autoScalingGroupName(o.name),
    PolicyName: scalingPolicyName(o.name),
    PolicyType: 'TargetTrackingScaling',
    // A GPU instance needs minutes to boot, pull and warm up: do not count it before then.
    EstimatedInstanceWarmup: 600,
    TargetTrackingConfiguration: { ...metric, TargetValue: s.target, DisableScaleIn: false },
  };
}

/**
 * One security group for the load balancer and the instances: the listener (and SSH with a key
 * pair) open to --allow-cidr, the gateway port only to members of the group itself, i.e. the ALB.
 */
export function buildScaleIngress(o: ProvisionOptions, s: ScaleOptions, groupId: string): AuthorizeSecurityGroupIngressCommandInput {
  const fromCidrs = buildIngress({ ...o, gatewayPort: listenerPort(s) }, groupId);
  return {
    ...fromCidrs,
    IpPermissions: [
      ...(fromCidrs.IpPermissions ?? []),
      {
        IpProtocol: 'tcp',
        FromPort: o.gatewayPort,
        ToPort: o.gatewayPort,
        UserIdGroupPairs: [{ GroupId: groupId, Description: 'embedctl gateway, from the load balancer only' }],
      },
    ],
  };
}

/** The rules as the plan shows them: port and who may connect. */
export function scaleIngressSummary(o: ProvisionOptions, s: ScaleOptions): Array<{ port: number; from: string }> {
  return [
    ...ingressRules({ ...o, gatewayPort: listenerPort(s) }).map((r) => ({ port: r.port, from: r.cidr })),
    { port: o.gatewayPort, from: 'the load balancer (same security group)' },
  ];
}
