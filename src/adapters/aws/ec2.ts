import {
  AuthorizeSecurityGroupIngressCommand,
  CreateLaunchTemplateCommand,
  CreateSecurityGroupCommand,
  DeleteLaunchTemplateCommand,
  DeleteSecurityGroupCommand,
  DescribeLaunchTemplatesCommand,
  DescribeInstancesCommand,
  DescribeInstanceStatusCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  EC2Client,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type AuthorizeSecurityGroupIngressCommandInput,
  type CreateLaunchTemplateCommandInput,
  type CreateSecurityGroupCommandInput,
  type LaunchTemplate,
  type Instance,
  type IpPermission,
  type RunInstancesCommandInput,
  type SecurityGroup,
} from '@aws-sdk/client-ec2';
import { ExternalError, Interrupted, UsageError } from '../../errors.js';
import { awsErrorCode, mapAwsError, NOT_FOUND_CODES, type AwsCallContext } from './errors.js';

/** Sleep and clock used by the waits; `ctx.sleep`/`ctx.now` in commands, instant in tests. */
export interface Waiter {
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  now(): Date;
  signal?: AbortSignal;
  onProgress?: (msg: string) => void;
}

export function ec2Client(region: string): EC2Client {
  return new EC2Client({ region, maxAttempts: 5 });
}

/** Polls `check` until it returns a value, bounded by `timeoutMs` of slept or wall time. */
export async function poll<T>(
  w: Waiter,
  what: string,
  opts: { intervalMs: number; timeoutMs: number },
  check: () => Promise<T | undefined>,
): Promise<T> {
  const started = w.now().getTime();
  let slept = 0;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    const elapsed = Math.max(slept, w.now().getTime() - started);
    if (elapsed >= opts.timeoutMs) {
      throw new ExternalError('AWS EC2', `timed out after ${Math.round(opts.timeoutMs / 1000)} s waiting for ${what}`, {
        hint: 'check the instance in the EC2 console; re-running the command resumes the wait',
      });
    }
    try {
      await w.sleep(opts.intervalMs, w.signal);
    } catch (err) {
      if (w.signal?.aborted) {
        throw new Interrupted(`interrupted while waiting for ${what}; what exists is recorded in .embedctl/state.json, re-run to resume`);
      }
      throw err;
    }
    slept += opts.intervalMs;
  }
}

export type DryRunResult = { action: string; ok: true } | { action: string; ok: false; reason: string };

export class Ec2 {
  constructor(
    readonly client: EC2Client,
    readonly region: string,
    private readonly base: Omit<AwsCallContext, 'action' | 'region'> = {},
  ) {}

  private async call<T>(action: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw mapAwsError(err, { ...this.base, action, region: this.region });
    }
  }

  /**
   * EC2's own dry run: the call is authorised and validated but nothing is created.
   * `DryRunOperation` = would succeed; `UnauthorizedOperation` = the named action is missing.
   */
  async dryRun(action: string, send: () => Promise<unknown>): Promise<DryRunResult> {
    try {
      await send();
      // A service that ignores DryRun would have acted; say so loudly rather than pretend.
      throw new ExternalError('AWS EC2', `${action} ran although DryRun was set`);
    } catch (err) {
      if (awsErrorCode(err) === 'DryRunOperation') return { action, ok: true };
      throw mapAwsError(err, { ...this.base, action, region: this.region });
    }
  }

  /** The VPC to use: the subnet's, or the region's default VPC. */
  async resolveVpc(subnetId?: string): Promise<{ vpcId: string; availabilityZone?: string }> {
    if (subnetId) {
      const out = await this.call('ec2:DescribeSubnets', () => this.client.send(new DescribeSubnetsCommand({ SubnetIds: [subnetId] })));
      const s = out.Subnets?.[0];
      if (!s?.VpcId) throw new UsageError(`subnet ${subnetId} not found in ${this.region}`, { field: '--subnet' });
      return { vpcId: s.VpcId, availabilityZone: s.AvailabilityZone };
    }
    const out = await this.call('ec2:DescribeVpcs', () =>
      this.client.send(new DescribeVpcsCommand({ Filters: [{ Name: 'is-default', Values: ['true'] }] })),
    );
    const vpcId = out.Vpcs?.[0]?.VpcId;
    if (!vpcId) {
      throw new UsageError(`region ${this.region} has no default VPC`, {
        field: '--subnet',
        hint: 'pass --subnet subnet-... (a public subnet of the VPC to use)',
      });
    }
    return { vpcId };
  }

  async findSecurityGroup(vpcId: string, groupName: string): Promise<SecurityGroup | undefined> {
    const out = await this.call('ec2:DescribeSecurityGroups', () =>
      this.client.send(
        new DescribeSecurityGroupsCommand({
          Filters: [
            { Name: 'vpc-id', Values: [vpcId] },
            { Name: 'group-name', Values: [groupName] },
          ],
        }),
      ),
    );
    return out.SecurityGroups?.[0];
  }

  async describeSecurityGroup(groupId: string): Promise<SecurityGroup | undefined> {
    try {
      const out = await this.client.send(new DescribeSecurityGroupsCommand({ GroupIds: [groupId] }));
      return out.SecurityGroups?.[0];
    } catch (err) {
      if (NOT_FOUND_CODES.has(awsErrorCode(err))) return undefined;
      throw mapAwsError(err, { ...this.base, action: 'ec2:DescribeSecurityGroups', region: this.region });
    }
  }

  async createSecurityGroup(input: CreateSecurityGroupCommandInput): Promise<string> {
    const out = await this.call('ec2:CreateSecurityGroup', () => this.client.send(new CreateSecurityGroupCommand(input)));
    if (!out.GroupId) throw new ExternalError('AWS EC2', 'CreateSecurityGroup returned no GroupId');
    return out.GroupId;
  }

  /** Adds only the rules the group lacks (EC2 rejects a whole request if one rule exists). */
  async authorizeMissing(input: AuthorizeSecurityGroupIngressCommandInput, existing: IpPermission[] = []): Promise<number> {
    const same = (p: IpPermission, port: number | undefined) => p.IpProtocol === 'tcp' && p.FromPort === port && p.ToPort === port;
    const has = (port: number | undefined, cidr: string) =>
      existing.some((p) => same(p, port) && ((p.IpRanges ?? []).some((r) => r.CidrIp === cidr) || (p.Ipv6Ranges ?? []).some((r) => r.CidrIpv6 === cidr)));
    const hasGroup = (port: number | undefined, group: string) => existing.some((p) => same(p, port) && (p.UserIdGroupPairs ?? []).some((g) => g.GroupId === group));
    const missing: IpPermission[] = [];
    for (const p of input.IpPermissions ?? []) {
      const v4 = (p.IpRanges ?? []).filter((r) => !has(p.FromPort, r.CidrIp!));
      const v6 = (p.Ipv6Ranges ?? []).filter((r) => !has(p.FromPort, r.CidrIpv6!));
      const groups = (p.UserIdGroupPairs ?? []).filter((g) => !hasGroup(p.FromPort, g.GroupId!));
      if (v4.length || v6.length || groups.length) {
        missing.push({
          ...p,
          IpRanges: v4.length ? v4 : undefined,
          Ipv6Ranges: v6.length ? v6 : undefined,
          UserIdGroupPairs: groups.length ? groups : undefined,
        });
      }
    }
    const clean = missing.map((p) => Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined)) as IpPermission);
    if (clean.length === 0) return 0;
    try {
      await this.client.send(new AuthorizeSecurityGroupIngressCommand({ ...input, IpPermissions: clean }));
    } catch (err) {
      // A concurrent or earlier partial run added them: the end state is what we wanted.
      if (awsErrorCode(err) !== 'InvalidPermission.Duplicate') {
        throw mapAwsError(err, { ...this.base, action: 'ec2:AuthorizeSecurityGroupIngress', region: this.region });
      }
    }
    return clean.reduce((n, p) => n + (p.IpRanges?.length ?? 0) + (p.Ipv6Ranges?.length ?? 0) + (p.UserIdGroupPairs?.length ?? 0), 0);
  }

  async runInstance(input: RunInstancesCommandInput): Promise<Instance> {
    const out = await this.call('ec2:RunInstances', () => this.client.send(new RunInstancesCommand(input)));
    const inst = out.Instances?.[0];
    if (!inst?.InstanceId) throw new ExternalError('AWS EC2', 'RunInstances returned no instance');
    return inst;
  }

  async describeInstance(id: string): Promise<Instance | undefined> {
    try {
      const out = await this.client.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
      return out.Reservations?.flatMap((r) => r.Instances ?? []).find((i) => i.InstanceId === id);
    } catch (err) {
      if (NOT_FOUND_CODES.has(awsErrorCode(err))) return undefined;
      throw mapAwsError(err, { ...this.base, action: 'ec2:DescribeInstances', region: this.region });
    }
  }

  async waitRunning(id: string, w: Waiter, timeoutMs = 10 * 60_000): Promise<Instance> {
    let last = '';
    return poll(w, `instance ${id} to be running`, { intervalMs: 5_000, timeoutMs }, async () => {
      const inst = await this.describeInstance(id);
      const state = inst?.State?.Name ?? 'pending';
      if (state !== last) {
        w.onProgress?.(`instance ${id}: ${state}`);
        last = state;
      }
      if (state === 'running') return inst;
      if (state === 'terminated' || state === 'shutting-down' || state === 'stopped') {
        const reason = inst?.StateReason?.Message ?? inst?.StateTransitionReason ?? 'no reason given';
        throw new ExternalError('AWS EC2', `instance ${id} is ${state} instead of running (${reason})`, {
          hint: 'a spot instance may have been reclaimed; run `embedctl teardown` then provision again',
        });
      }
      return undefined;
    });
  }

  /** Both status checks (system and instance) "ok": the OS booted and the network works. */
  async waitStatusOk(id: string, w: Waiter, timeoutMs = 15 * 60_000): Promise<void> {
    let last = '';
    await poll(w, `instance ${id} status checks`, { intervalMs: 15_000, timeoutMs }, async () => {
      const out = await this.call('ec2:DescribeInstanceStatus', () =>
        this.client.send(new DescribeInstanceStatusCommand({ InstanceIds: [id], IncludeAllInstances: true })),
      );
      const s = out.InstanceStatuses?.[0];
      const sys = s?.SystemStatus?.Status ?? 'initializing';
      const ins = s?.InstanceStatus?.Status ?? 'initializing';
      const line = `status checks: system ${sys}, instance ${ins}`;
      if (line !== last) {
        w.onProgress?.(`instance ${id}: ${line}`);
        last = line;
      }
      if (sys === 'impaired' || ins === 'impaired') {
        throw new ExternalError('AWS EC2', `instance ${id} failed its status checks (${line})`, {
          hint: 'look at the system log in the EC2 console; `embedctl teardown` removes it',
        });
      }
      return sys === 'ok' && ins === 'ok' ? true : undefined;
    });
  }

  async terminate(id: string): Promise<'terminating' | 'gone'> {
    try {
      await this.client.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
      return 'terminating';
    } catch (err) {
      if (NOT_FOUND_CODES.has(awsErrorCode(err))) return 'gone';
      throw mapAwsError(err, { ...this.base, action: 'ec2:TerminateInstances', region: this.region });
    }
  }

  async waitTerminated(id: string, w: Waiter, timeoutMs = 10 * 60_000): Promise<void> {
    let last = '';
    await poll(w, `instance ${id} to terminate`, { intervalMs: 5_000, timeoutMs }, async () => {
      const inst = await this.describeInstance(id);
      const state = inst?.State?.Name ?? 'terminated';
      if (state !== last) {
        w.onProgress?.(`instance ${id}: ${state}`);
        last = state;
      }
      return state === 'terminated' ? true : undefined;
    });
  }

  /**
   * Deletes a group; the network interface of a just-terminated instance can hold it for a
   * minute, so DependencyViolation is retried for a bounded time.
   */
  async deleteSecurityGroup(id: string, w: Waiter, timeoutMs = 3 * 60_000): Promise<'deleted' | 'gone'> {
    return poll(w, `security group ${id} to be released`, { intervalMs: 10_000, timeoutMs }, async () => {
      try {
        await this.client.send(new DeleteSecurityGroupCommand({ GroupId: id }));
        return 'deleted' as const;
      } catch (err) {
        const code = awsErrorCode(err);
        if (NOT_FOUND_CODES.has(code)) return 'gone' as const;
        if (code === 'DependencyViolation') {
          w.onProgress?.(`security group ${id}: still in use, retrying`);
          return undefined;
        }
        throw mapAwsError(err, { ...this.base, action: 'ec2:DeleteSecurityGroup', region: this.region });
      }
    });
  }

  /** The instance an interrupted earlier run launched with this ClientToken, if any. */
  async findByClientToken(token: string): Promise<Instance | undefined> {
    const out = await this.call('ec2:DescribeInstances', () =>
      this.client.send(new DescribeInstancesCommand({ Filters: [{ Name: 'client-token', Values: [token] }] })),
    );
    return out.Reservations?.flatMap((r) => r.Instances ?? []).find((i) => i.State?.Name !== 'terminated');
  }

  /** The default subnets (one per availability zone) of a VPC: where the ALB and the ASG go by default. */
  async defaultSubnets(vpcId: string): Promise<Array<{ id: string; availabilityZone?: string }>> {
    const out = await this.call('ec2:DescribeSubnets', () =>
      this.client.send(
        new DescribeSubnetsCommand({
          Filters: [
            { Name: 'vpc-id', Values: [vpcId] },
            { Name: 'default-for-az', Values: ['true'] },
          ],
        }),
      ),
    );
    return (out.Subnets ?? []).filter((s) => s.SubnetId).map((s) => ({ id: s.SubnetId!, availabilityZone: s.AvailabilityZone }));
  }

  async findLaunchTemplate(name: string): Promise<LaunchTemplate | undefined> {
    try {
      const out = await this.client.send(new DescribeLaunchTemplatesCommand({ LaunchTemplateNames: [name] }));
      return out.LaunchTemplates?.[0];
    } catch (err) {
      // A missing name is an error in this API, not an empty list.
      if (/NotFound/.test(awsErrorCode(err))) return undefined;
      throw mapAwsError(err, { ...this.base, action: 'ec2:DescribeLaunchTemplates', region: this.region });
    }
  }

  async findLaunchTemplateById(id: string): Promise<LaunchTemplate | undefined> {
    try {
      const out = await this.client.send(new DescribeLaunchTemplatesCommand({ LaunchTemplateIds: [id] }));
      return out.LaunchTemplates?.[0];
    } catch (err) {
      if (/NotFound/.test(awsErrorCode(err))) return undefined;
      throw mapAwsError(err, { ...this.base, action: 'ec2:DescribeLaunchTemplates', region: this.region });
    }
  }

  async createLaunchTemplate(input: CreateLaunchTemplateCommandInput): Promise<string> {
    const out = await this.call('ec2:CreateLaunchTemplate', () => this.client.send(new CreateLaunchTemplateCommand(input)));
    if (!out.LaunchTemplate?.LaunchTemplateId) throw new ExternalError('AWS EC2', 'CreateLaunchTemplate returned no id');
    return out.LaunchTemplate.LaunchTemplateId;
  }

  async deleteLaunchTemplate(id: string): Promise<'deleted' | 'gone'> {
    try {
      await this.client.send(new DeleteLaunchTemplateCommand({ LaunchTemplateId: id }));
      return 'deleted';
    } catch (err) {
      if (/NotFound/.test(awsErrorCode(err))) return 'gone';
      throw mapAwsError(err, { ...this.base, action: 'ec2:DeleteLaunchTemplate', region: this.region });
    }
  }
}
