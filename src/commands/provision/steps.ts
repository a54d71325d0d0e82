import type { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import type { SSMClient } from '@aws-sdk/client-ssm';
import type { BudgetsClient } from '@aws-sdk/client-budgets';
import type { CostExplorerClient } from '@aws-sdk/client-cost-explorer';
import type { ACMClient } from '@aws-sdk/client-acm';
import type { Instance } from '@aws-sdk/client-ec2';
import type { Context } from '../../context.js';
import { UsageError } from '../../errors.js';
import { buildCreateSecurityGroup, buildIngress, buildRunInstances, clientToken, instanceGatewayUrl, securityGroupName } from '../../core/provision-plan.js';
import { buildScaleIngress } from '../../core/provision-scale.js';
import { newDeployment, type DeploymentRecord, type StateStore } from '../../core/state.js';
import { Ec2, ec2Client, type Waiter } from '../../adapters/aws/ec2.js';
import { ssmClient } from '../../adapters/aws/ssm.js';
import { cloudWatchClient } from '../../adapters/aws/alarms.js';
import { autoScalingClient, elbClient, Scale } from '../../adapters/aws/scale.js';
import { budgetsClient } from '../../adapters/aws/budgets.js';
import { costExplorerClient } from '../../adapters/aws/cost-explorer.js';
import { acmClient } from '../../adapters/aws/acm.js';
import { awsErrorCode } from '../../adapters/aws/errors.js';
import type { Logger } from '../../ui/output.js';
import type { Discovery } from './plan.js';
import type { Resolved } from './options.js';

/** One client per AWS service for a region; aws-sdk-client-mock intercepts them in tests. */
export interface AwsClients {
  ec2: Ec2;
  ssm: SSMClient;
  cw: CloudWatchClient;
  scale: Scale;
  budgets: BudgetsClient;
  ce: CostExplorerClient;
  acm: ACMClient;
}

export function awsClients(o: { region: string; instanceType?: string; market?: 'on-demand' | 'spot' }): AwsClients {
  return {
    ec2: new Ec2(ec2Client(o.region), o.region, { instanceType: o.instanceType, market: o.market }),
    ssm: ssmClient(o.region),
    cw: cloudWatchClient(o.region),
    scale: new Scale(autoScalingClient(o.region), elbClient(o.region), o.region),
    budgets: budgetsClient(),
    ce: costExplorerClient(),
    acm: acmClient(o.region),
  };
}

export interface StepEnv {
  ctx: Context;
  store: StateStore;
  o: Resolved;
  aws: AwsClients;
  d: Discovery;
  userData: Uint8Array;
  w: Waiter;
  log: Logger;
  /** The deployment's state record (the first step creates or loads it). */
  dep: DeploymentRecord;
  /** The account id, learnt from the security group's owner (AWS Budgets is keyed on it). */
  accountId?: string;
  /** The instance step found one already there: this run changes a running deployment. */
  instanceFound?: boolean;
}

/**
 * One idempotent step of provisioning: `check` finds what exists (the state file first, then
 * AWS), `create` makes what is missing, `record` writes the outcome into the state file, so an
 * interrupted run resumes at the first step whose check comes back empty.
 */
export interface Step<T> {
  name: string;
  check(e: StepEnv): Promise<T | undefined>;
  create(e: StepEnv): Promise<T>;
  record(e: StepEnv, value: T, found: boolean): Promise<void>;
}

export const step = <T>(s: Step<T>): Step<unknown> => s as Step<unknown>;

export async function runSteps(steps: Array<Step<unknown>>, e: StepEnv): Promise<void> {
  for (const s of steps) {
    const found = await s.check(e);
    const value = found !== undefined ? found : await s.create(e);
    await s.record(e, value, found !== undefined);
  }
}

const update = (e: StepEnv, action: string, change: () => void, detail?: Record<string, unknown>) =>
  e.store.update(e.o.name, action, change, detail);

export const deploymentStep = step<DeploymentRecord>({
  name: 'deployment',
  async check(e) {
    const dep = e.store.state.deployments[e.o.name];
    if (dep && dep.region !== e.o.region) {
      throw new UsageError(`deployment "${e.o.name}" already exists in ${dep.region}`, {
        field: '--region',
        hint: `use --region ${dep.region}, another --name, or \`embedctl teardown --name ${e.o.name}\` first`,
      });
    }
    return dep;
  },
  async create(e) {
    return newDeployment(e.o.name, e.o.region, new Date(e.w.now()), e.store.state.attempts[e.o.name] ?? 1);
  },
  async record(e, dep, found) {
    if (found) e.log.info(`deployment "${e.o.name}" is already in the state file; resuming`);
    else {
      await e.store.update(e.o.name, 'start', (s) => {
        s.deployments[e.o.name] = dep;
        s.attempts[e.o.name] = dep.attempt;
      });
    }
    e.dep = e.store.state.deployments[e.o.name]!;
    await update(e, 'ami', () => void (e.dep.amiId = e.d.amiId), { amiId: e.d.amiId });
  },
});

type SgRef = { id: string; createdByUs: boolean };

export const securityGroupStep = step<SgRef>({
  name: 'security-group',
  async check(e) {
    const d = e.dep;
    if (d.securityGroup && !(await e.aws.ec2.describeSecurityGroup(d.securityGroup.id))) {
      e.log.warn(`security group ${d.securityGroup.id} from the state file no longer exists; replacing it`);
      await update(e, 'forget-security-group', () => void (d.securityGroup = undefined));
    }
    if (d.securityGroup) return { id: d.securityGroup.id, createdByUs: d.securityGroup.createdByUs };
    const existing = e.d.existingSg?.GroupId;
    return existing ? { id: existing, createdByUs: false } : undefined;
  },
  async create(e) {
    return { id: await e.aws.ec2.createSecurityGroup(buildCreateSecurityGroup(e.o, e.d.vpcId)), createdByUs: true };
  },
  async record(e, sg, found) {
    const name = securityGroupName(e.o.name);
    if (!e.dep.securityGroup) {
      if (found) e.log.info(`reusing security group ${sg.id} (${name})`);
      else e.log.info(`created security group ${sg.id} (${name})`);
      await update(e, found ? 'reuse-security-group' : 'create-security-group', () => void (e.dep.securityGroup = { id: sg.id, vpcId: e.d.vpcId, name, createdByUs: sg.createdByUs }), { id: sg.id });
    }
  },
});

/** The ingress rules: added when missing; rules this run did not ask for are reported, never removed. */
export const ingressStep = step<number>({
  name: 'ingress',
  async check() {
    return undefined;
  },
  async create(e) {
    const id = e.dep.securityGroup!.id;
    const sg = await e.aws.ec2.describeSecurityGroup(id);
    e.accountId = sg?.OwnerId;
    const input = e.o.scale ? buildScaleIngress(e.o, e.o.scale, id) : buildIngress(e.o, id);
    const added = await e.aws.ec2.authorizeMissing(input, sg?.IpPermissions ?? []);
    // Rules from an earlier run with another --allow-cidr stay open until someone removes them: say so.
    const wanted = new Set((input.IpPermissions ?? []).flatMap((p) => [...(p.IpRanges ?? []).map((r) => `${p.FromPort} ${r.CidrIp}`), ...(p.Ipv6Ranges ?? []).map((r) => `${p.FromPort} ${r.CidrIpv6}`)]));
    for (const p of sg?.IpPermissions ?? []) {
      for (const c of [...(p.IpRanges ?? []).map((r) => r.CidrIp), ...(p.Ipv6Ranges ?? []).map((r) => r.CidrIpv6)]) {
        if (c && !wanted.has(`${p.FromPort} ${c}`)) {
          e.log.warn(
            `security group ${id} also allows tcp/${p.FromPort} from ${c} (not in --allow-cidr); remove it with \`aws ec2 revoke-security-group-ingress --group-id ${id} --protocol tcp --port ${p.FromPort} --cidr ${c} --region ${e.o.region}\` if it is stale`,
          );
        }
      }
    }
    return added;
  },
  async record(e, added) {
    if (added) e.log.info(`security group ${e.dep.securityGroup!.id}: allowed ${added} rule(s) from ${e.o.allowCidrs.join(', ')}`);
  },
});

export const instanceStep = step<Instance>({
  name: 'instance',
  async check(e) {
    const d = e.dep;
    if (!d.instance) return undefined;
    const inst = await e.aws.ec2.describeInstance(d.instance.id);
    const state = inst?.State?.Name ?? 'terminated';
    if (state !== 'terminated' && state !== 'shutting-down') {
      e.log.info(`instance ${d.instance.id} already exists (${state})`);
      return inst ?? { InstanceId: d.instance.id };
    }
    e.log.warn(`instance ${d.instance.id} from the state file is ${state}; launching a new one`);
    const next = d.attempt + 1;
    await e.store.update(e.o.name, 'forget-instance', (s) => {
      d.instance = undefined;
      d.clientToken = undefined;
      d.attempt = next;
      s.attempts[e.o.name] = next;
    }, { state });
    return undefined;
  },
  async create(e) {
    const d = e.dep;
    // The token goes into the state before the call: a retry after a lost answer sends the same one.
    const token = d.clientToken ?? clientToken(e.o.name, d.attempt);
    await update(e, 'run-instances', () => void (d.clientToken = token), { clientToken: token });
    const input = buildRunInstances(e.o, { amiId: e.d.amiId, securityGroupId: d.securityGroup!.id, userData: e.userData, clientToken: token });
    try {
      return await e.aws.ec2.runInstance(input);
    } catch (err) {
      const code = awsErrorCode((err as { cause?: unknown }).cause);
      if (code === 'IdempotentParameterMismatch') {
        // An interrupted earlier run used this token with other parameters and did launch.
        const inst = await e.aws.ec2.findByClientToken(token);
        if (!inst) throw err;
        e.log.warn(`an instance launched by an interrupted earlier run (${inst.InstanceId}) was adopted; its parameters may differ from this run's`);
        return inst;
      }
      if ((err as { cause?: { $metadata?: { httpStatusCode?: number } } }).cause?.$metadata?.httpStatusCode) {
        // AWS answered with a definite "no": the next try may change parameters, so it gets a fresh token.
        const next = d.attempt + 1;
        await e.store.update(e.o.name, 'run-instances-failed', (s) => {
          d.clientToken = undefined;
          d.attempt = next;
          s.attempts[e.o.name] = next;
        }, { code });
      }
      throw err;
    }
  },
  async record(e, inst, found) {
    if (found) {
      e.instanceFound = true;
      return;
    }
    e.log.info(`launched ${inst.InstanceId} (${e.o.instanceType}, ${e.o.market})`);
    // Recorded now, not only after the wait: with --no-wait an HTTPS gateway is already known,
    // and `status` takes the scheme and port from it (and the address from EC2).
    const gateway = gatewayOf(e, inst.PublicDnsName || inst.PublicIpAddress);
    await update(e, 'instance', () => {
      e.dep.instance = { id: inst.InstanceId!, instanceType: e.o.instanceType, market: e.o.market, state: inst.State?.Name, launchedAt: new Date(e.w.now()).toISOString() };
      if (gateway) e.dep.gateway = gateway;
    }, { id: inst.InstanceId });
  },
});

const gatewayOf = (e: StepEnv, host: string | undefined) =>
  instanceGatewayUrl({ gatewayPort: e.o.gatewayPort, httpsPort: e.o.httpsPort, domain: e.o.deploy.domain || undefined }, host || undefined);

/** Waits for running, then for both status checks; skipped with --no-wait. */
export const waitStep = step<boolean>({
  name: 'wait',
  async check(e) {
    return e.o.wait ? undefined : false;
  },
  async create(e) {
    const d = e.dep;
    const id = d.instance!.id;
    const running = await e.aws.ec2.waitRunning(id, e.w, e.o.waitTimeoutMs);
    await update(e, 'running', () => {
      d.instance = {
        ...d.instance!,
        state: 'running',
        publicDns: running.PublicDnsName || undefined,
        publicIp: running.PublicIpAddress,
        availabilityZone: running.Placement?.AvailabilityZone,
      };
      // With HTTPS the gateway is its DNS name (the certificate's); status then reads its expiry.
      d.gateway = gatewayOf(e, running.PublicDnsName || running.PublicIpAddress) ?? d.gateway;
    });
    await e.aws.ec2.waitStatusOk(id, e.w, e.o.waitTimeoutMs);
    return true;
  },
  async record(e, waited) {
    if (waited) await update(e, 'status-ok', () => void (e.dep.instance!.state = 'running'));
  },
});
