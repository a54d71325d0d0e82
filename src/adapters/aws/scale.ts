import {
  AutoScalingClient,
  CreateAutoScalingGroupCommand,
  DeleteAutoScalingGroupCommand,
  DescribeAutoScalingGroupsCommand,
  PutScalingPolicyCommand,
  type AutoScalingGroup,
  type CreateAutoScalingGroupCommandInput,
  type PutScalingPolicyCommandInput,
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
  ElasticLoadBalancingV2Client,
  type CreateListenerCommandInput,
  type CreateLoadBalancerCommandInput,
  type CreateTargetGroupCommandInput,
  type LoadBalancer,
  type Tag,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { ExternalError } from '../../errors.js';
import { poll, type Waiter } from './ec2.js';
import { awsErrorCode, mapAwsError } from './errors.js';

/**
 * Scale-out: the Auto Scaling group and the Application Load Balancer in front of it. Every
 * Auto Scaling and ELBv2 call of embedctl goes through here.
 */

export function autoScalingClient(region: string): AutoScalingClient {
  return new AutoScalingClient({ region, maxAttempts: 5 });
}

export function elbClient(region: string): ElasticLoadBalancingV2Client {
  return new ElasticLoadBalancingV2Client({ region, maxAttempts: 5 });
}

const notFound = (err: unknown) => /NotFound/.test(awsErrorCode(err));

export interface TargetHealth {
  instanceId: string;
  state: string;
  reason?: string;
}

export class Scale {
  constructor(
    readonly asg: AutoScalingClient,
    readonly elb: ElasticLoadBalancingV2Client,
    readonly region: string,
  ) {}

  private async call<T>(action: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw mapAwsError(err, { action, region: this.region });
    }
  }

  async findTargetGroup(name: string): Promise<{ arn: string; tags: Tag[] } | undefined> {
    let arn: string | undefined;
    try {
      const out = await this.elb.send(new DescribeTargetGroupsCommand({ Names: [name] }));
      arn = out.TargetGroups?.[0]?.TargetGroupArn;
    } catch (err) {
      if (notFound(err)) return undefined;
      throw mapAwsError(err, { action: 'elasticloadbalancing:DescribeTargetGroups', region: this.region });
    }
    return arn ? { arn, tags: await this.tagsOf(arn) } : undefined;
  }

  async createTargetGroup(input: CreateTargetGroupCommandInput): Promise<string> {
    const out = await this.call('elasticloadbalancing:CreateTargetGroup', () => this.elb.send(new CreateTargetGroupCommand(input)));
    const arn = out.TargetGroups?.[0]?.TargetGroupArn;
    if (!arn) throw new ExternalError('AWS ELASTICLOADBALANCING', 'CreateTargetGroup returned no ARN');
    return arn;
  }

  async findLoadBalancer(name: string): Promise<{ lb: LoadBalancer; tags: Tag[] } | undefined> {
    let lb: LoadBalancer | undefined;
    try {
      const out = await this.elb.send(new DescribeLoadBalancersCommand({ Names: [name] }));
      lb = out.LoadBalancers?.[0];
    } catch (err) {
      if (notFound(err)) return undefined;
      throw mapAwsError(err, { action: 'elasticloadbalancing:DescribeLoadBalancers', region: this.region });
    }
    return lb?.LoadBalancerArn ? { lb, tags: await this.tagsOf(lb.LoadBalancerArn) } : undefined;
  }

  async createLoadBalancer(input: CreateLoadBalancerCommandInput): Promise<LoadBalancer> {
    const out = await this.call('elasticloadbalancing:CreateLoadBalancer', () => this.elb.send(new CreateLoadBalancerCommand(input)));
    const lb = out.LoadBalancers?.[0];
    if (!lb?.LoadBalancerArn) throw new ExternalError('AWS ELASTICLOADBALANCING', 'CreateLoadBalancer returned no load balancer');
    return lb;
  }

  async findListener(loadBalancerArn: string, port: number): Promise<string | undefined> {
    try {
      const out = await this.elb.send(new DescribeListenersCommand({ LoadBalancerArn: loadBalancerArn }));
      return out.Listeners?.find((l) => l.Port === port)?.ListenerArn;
    } catch (err) {
      if (notFound(err)) return undefined;
      throw mapAwsError(err, { action: 'elasticloadbalancing:DescribeListeners', region: this.region });
    }
  }

  async createListener(input: CreateListenerCommandInput): Promise<string> {
    const out = await this.call('elasticloadbalancing:CreateListener', () => this.elb.send(new CreateListenerCommand(input)));
    const arn = out.Listeners?.[0]?.ListenerArn;
    if (!arn) throw new ExternalError('AWS ELASTICLOADBALANCING', 'CreateListener returned no ARN');
    return arn;
  }

  async tagsOf(arn: string): Promise<Tag[]> {
    const out = await this.call('elasticloadbalancing:DescribeTags', () => this.elb.send(new DescribeTagsCommand({ ResourceArns: [arn] })));
    return out.TagDescriptions?.[0]?.Tags ?? [];
  }

  async targetHealth(targetGroupArn: string): Promise<TargetHealth[]> {
    const out = await this.call('elasticloadbalancing:DescribeTargetHealth', () =>
      this.elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: targetGroupArn })),
    );
    return (out.TargetHealthDescriptions ?? []).map((d) => ({
      instanceId: d.Target?.Id ?? '?',
      state: d.TargetHealth?.State ?? 'unknown',
      reason: d.TargetHealth?.Description,
    }));
  }

  async findGroup(name: string): Promise<AutoScalingGroup | undefined> {
    const out = await this.call('autoscaling:DescribeAutoScalingGroups', () =>
      this.asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [name] })),
    );
    // A group being deleted still answers for a while; it is as good as gone.
    return out.AutoScalingGroups?.find((g) => g.AutoScalingGroupName === name && !g.Status?.startsWith('Delete'));
  }

  async createGroup(input: CreateAutoScalingGroupCommandInput): Promise<void> {
    try {
      await this.asg.send(new CreateAutoScalingGroupCommand(input));
    } catch (err) {
      // The name is the idempotency key: a lost response means it exists.
      if (awsErrorCode(err) !== 'AlreadyExists') throw mapAwsError(err, { action: 'autoscaling:CreateAutoScalingGroup', region: this.region });
    }
  }

  /** PutScalingPolicy creates or replaces by name. */
  async putScalingPolicy(input: PutScalingPolicyCommandInput): Promise<string | undefined> {
    const out = await this.call('autoscaling:PutScalingPolicy', () => this.asg.send(new PutScalingPolicyCommand(input)));
    return out.PolicyARN;
  }

  /** ForceDelete terminates the group's instances with it; the wait ends when the group is gone. */
  async deleteGroup(name: string, w: Waiter, timeoutMs = 15 * 60_000): Promise<'deleted' | 'gone'> {
    if (!(await this.findGroup(name))) return 'gone';
    try {
      await this.asg.send(new DeleteAutoScalingGroupCommand({ AutoScalingGroupName: name, ForceDelete: true }));
    } catch (err) {
      if (!/not found|NotFound/i.test(`${awsErrorCode(err)} ${(err as Error).message}`)) {
        throw mapAwsError(err, { action: 'autoscaling:DeleteAutoScalingGroup', region: this.region });
      }
    }
    await poll(w, `Auto Scaling group ${name} to be deleted`, { intervalMs: 15_000, timeoutMs }, async () => {
      const out = await this.call('autoscaling:DescribeAutoScalingGroups', () => this.asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [name] })));
      return out.AutoScalingGroups?.length ? undefined : true;
    });
    return 'deleted';
  }

  async deleteListener(arn: string): Promise<'deleted' | 'gone'> {
    return this.deleteElb('elasticloadbalancing:DeleteListener', () => this.elb.send(new DeleteListenerCommand({ ListenerArn: arn })));
  }

  async deleteLoadBalancer(arn: string): Promise<'deleted' | 'gone'> {
    return this.deleteElb('elasticloadbalancing:DeleteLoadBalancer', () => this.elb.send(new DeleteLoadBalancerCommand({ LoadBalancerArn: arn })));
  }

  /** A target group stays "in use" for a moment after its load balancer is deleted: retried, bounded. */
  async deleteTargetGroup(arn: string, w: Waiter, timeoutMs = 3 * 60_000): Promise<'deleted' | 'gone'> {
    return poll(w, `target group ${arn} to be released`, { intervalMs: 10_000, timeoutMs }, async () => {
      try {
        await this.elb.send(new DeleteTargetGroupCommand({ TargetGroupArn: arn }));
        return 'deleted' as const;
      } catch (err) {
        if (notFound(err)) return 'gone' as const;
        if (awsErrorCode(err) === 'ResourceInUse') return undefined;
        throw mapAwsError(err, { action: 'elasticloadbalancing:DeleteTargetGroup', region: this.region });
      }
    });
  }

  private async deleteElb(action: string, send: () => Promise<unknown>): Promise<'deleted' | 'gone'> {
    try {
      await send();
      return 'deleted';
    } catch (err) {
      if (notFound(err)) return 'gone';
      throw mapAwsError(err, { action, region: this.region });
    }
  }
}

export interface ScaleOutStatus {
  group: string;
  min?: number;
  max?: number;
  desired?: number;
  instances: Array<{ id: string; lifecycle?: string; health?: string; target: string }>;
  loadBalancer?: string;
}

/** For `status`: the group's instances with their ASG state and the load balancer's view of each. */
export async function scaleOutStatus(region: string, r: { autoScalingGroup?: string; targetGroupArn?: string; loadBalancerDns?: string }): Promise<ScaleOutStatus | undefined> {
  if (!r.autoScalingGroup) return undefined;
  const s = new Scale(autoScalingClient(region), elbClient(region), region);
  const g = await s.findGroup(r.autoScalingGroup);
  const targets = r.targetGroupArn ? await s.targetHealth(r.targetGroupArn) : [];
  const byId = new Map(targets.map((t) => [t.instanceId, t]));
  return {
    group: r.autoScalingGroup,
    min: g?.MinSize,
    max: g?.MaxSize,
    desired: g?.DesiredCapacity,
    instances: (g?.Instances ?? []).map((i) => {
      const t = byId.get(i.InstanceId ?? '');
      return { id: i.InstanceId ?? '?', lifecycle: i.LifecycleState, health: i.HealthStatus, target: t ? `${t.state}${t.reason ? ` (${t.reason})` : ''}` : 'not registered' };
    }),
    loadBalancer: r.loadBalancerDns,
  };
}

export function renderScaleOut(s: ScaleOutStatus): string[] {
  const head = `  auto scaling group ${s.group}: ${s.instances.length} instance(s), desired ${s.desired ?? '?'} (min ${s.min ?? '?'}, max ${s.max ?? '?'})${s.loadBalancer ? ` behind ${s.loadBalancer}` : ''}`;
  return [head, ...s.instances.map((i) => `    ${i.id}  ${i.lifecycle ?? '?'}, ${i.health ?? '?'}; target ${i.target}`)];
}
