import { tagsConfirm } from '../../core/provision-plan.js';
import {
  autoScalingGroupName,
  buildAutoScalingGroup,
  buildLaunchTemplate,
  buildListener,
  buildLoadBalancer,
  buildScalingPolicy,
  buildTargetGroup,
  elbName,
  launchTemplateName,
  listenerPort,
  scalingPolicyName,
  type ScaleOptions,
} from '../../core/provision-scale.js';
import type { ScaleRecord } from '../../core/state.js';
import { UsageError } from '../../errors.js';
import { step, type Step, type StepEnv } from './steps.js';

/**
 * Scale-out steps, in dependency order: launch template -> target group -> load balancer ->
 * listener -> Auto Scaling group (registers into the target group) -> target-tracking policy.
 * Each finds its resource by the state file first, then by name with embedctl's tags.
 */

const scaleOf = (e: StepEnv): ScaleOptions => e.o.scale!;

function notOurs(kind: string, id: string, flag = '--name'): UsageError {
  return new UsageError(`${kind} ${id} exists but is not tagged as embedctl's for this deployment`, {
    field: flag,
    hint: 'pick another --name; embedctl never changes resources it did not create',
  });
}

/** A step that keeps one field of the deployment's scale record. */
function scaleStep(name: string, field: keyof ScaleRecord, def: Omit<Step<string>, 'record' | 'name'> & { label: string }) {
  return step<string>({
    name,
    check: def.check,
    create: def.create,
    async record(e, value, found) {
      e.log.info(`${found ? 'found' : 'created'} ${def.label} ${value}`);
      if (e.dep.scale?.[field] === value) return;
      await e.store.update(e.o.name, `${found ? 'reuse' : 'create'}-${name}`, () => {
        const s = scaleOf(e);
        e.dep.scale = { ...(e.dep.scale ?? { min: s.min, max: s.max }), min: s.min, max: s.max, [field]: value };
      }, { [field]: value });
    },
  });
}

export const launchTemplateStep = scaleStep('launch-template', 'launchTemplateId', {
  label: 'launch template',
  async check(e) {
    const lt = await e.aws.ec2.findLaunchTemplate(launchTemplateName(e.o.name));
    if (!lt) return undefined;
    if (!tagsConfirm(lt.Tags, e.o.name)) throw notOurs('launch template', lt.LaunchTemplateId ?? launchTemplateName(e.o.name));
    return lt.LaunchTemplateId;
  },
  async create(e) {
    return e.aws.ec2.createLaunchTemplate(buildLaunchTemplate(e.o, { amiId: e.d.amiId, securityGroupId: e.dep.securityGroup!.id, userData: e.userData }));
  },
});

export const targetGroupStep = scaleStep('target-group', 'targetGroupArn', {
  label: 'target group',
  async check(e) {
    const tg = await e.aws.scale.findTargetGroup(elbName(e.o.name, '-tg'));
    if (!tg) return undefined;
    if (!tagsConfirm(tg.tags, e.o.name)) throw notOurs('target group', tg.arn);
    return tg.arn;
  },
  create: (e) => e.aws.scale.createTargetGroup(buildTargetGroup(e.o, e.d.vpcId)),
});

export const loadBalancerStep = scaleStep('load-balancer', 'loadBalancerArn', {
  label: 'load balancer',
  async check(e) {
    const found = await e.aws.scale.findLoadBalancer(elbName(e.o.name));
    if (!found) return undefined;
    if (!tagsConfirm(found.tags, e.o.name)) throw notOurs('load balancer', found.lb.LoadBalancerArn!);
    e.dep.scale!.loadBalancerDns = found.lb.DNSName;
    return found.lb.LoadBalancerArn;
  },
  async create(e) {
    const lb = await e.aws.scale.createLoadBalancer(buildLoadBalancer(e.o, e.d.subnetIds, e.dep.securityGroup!.id));
    e.dep.scale!.loadBalancerDns = lb.DNSName;
    return lb.LoadBalancerArn!;
  },
});

export const listenerStep = scaleStep('listener', 'listenerArn', {
  label: 'listener',
  check: (e) => e.aws.scale.findListener(e.dep.scale!.loadBalancerArn!, listenerPort(scaleOf(e))),
  create: (e) => e.aws.scale.createListener(buildListener(e.o, scaleOf(e), e.dep.scale!.loadBalancerArn!, e.dep.scale!.targetGroupArn!)),
});

export const autoScalingGroupStep = scaleStep('auto-scaling-group', 'autoScalingGroup', {
  label: 'Auto Scaling group',
  async check(e) {
    const g = await e.aws.scale.findGroup(autoScalingGroupName(e.o.name));
    if (!g) return undefined;
    const tags = (g.Tags ?? []).map((t) => ({ Key: t.Key, Value: t.Value }));
    if (!tagsConfirm(tags, e.o.name)) throw notOurs('Auto Scaling group', autoScalingGroupName(e.o.name));
    return g.AutoScalingGroupName;
  },
  async create(e) {
    const s = e.dep.scale!;
    await e.aws.scale.createGroup(
      buildAutoScalingGroup(e.o, scaleOf(e), { launchTemplateId: s.launchTemplateId!, subnetIds: e.d.subnetIds, targetGroupArn: s.targetGroupArn! }),
    );
    return autoScalingGroupName(e.o.name);
  },
});

/** PutScalingPolicy replaces by name: always sent, so a changed --scale-target takes effect. */
export const scalingPolicyStep = scaleStep('scaling-policy', 'scalingPolicy', {
  label: 'scaling policy',
  check: async () => undefined,
  async create(e) {
    const s = e.dep.scale!;
    await e.aws.scale.putScalingPolicy(buildScalingPolicy(e.o, scaleOf(e), { loadBalancerArn: s.loadBalancerArn!, targetGroupArn: s.targetGroupArn! }));
    return scalingPolicyName(e.o.name);
  },
});

export const SCALE_STEPS = [launchTemplateStep, targetGroupStep, loadBalancerStep, listenerStep, autoScalingGroupStep, scalingPolicyStep];
