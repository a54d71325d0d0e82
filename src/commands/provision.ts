import type { Command } from 'commander';
import type { RunInstancesCommandInput } from '@aws-sdk/client-ec2';
import type { Context } from '../context.js';
import { ExternalError, UsageError } from '../errors.js';
import { parsers, resolveOption } from '../config.js';
import {
  alarmName,
  approxHourlyUsd,
  buildAlarms,
  buildCreateSecurityGroup,
  buildIngress,
  buildRunInstances,
  checkDeploymentName,
  checkRegion,
  clientToken,
  ingressRules,
  isGpuInstanceType,
  parseCidr,
  securityGroupName,
  tagsConfirm,
  type Market,
  type ProvisionOptions,
} from '../core/provision-plan.js';
import { newDeployment, readState, statePaths, StateStore, type DeploymentRecord } from '../core/state.js';
import { resolveDeployConfig, type DeployConfig, type DeployKey } from '../core/deploy-config.js';
import { renderUserData, userDataBytes } from '../core/render.js';
import { Ec2, ec2Client, type DryRunResult, type Waiter } from '../adapters/aws/ec2.js';
import { latestDlamiId, ssmClient } from '../adapters/aws/ssm.js';
import { cloudWatchClient, putAlarms } from '../adapters/aws/alarms.js';
import { awsErrorCode } from '../adapters/aws/errors.js';
import { fmtUsd, printJson, type Logger } from '../ui/output.js';
import { action, examples, type ExitHolder } from './shared.js';
import { addDeployOptions } from './render.js';
import { DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { confirmOrRefuse } from '../ui/prompts.js';

interface Opts {
  instanceType?: string;
  market?: string;
  region?: string;
  subnet?: string;
  allowCidr?: string[];
  allowWorld?: boolean;
  keyName?: string;
  name?: string;
  volumeSize?: string;
  iamInstanceProfile?: string;
  alarmTopic?: string;
  wait: boolean;
  waitTimeout?: string;
  dryRun?: boolean;
  yes?: boolean;
}

const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), ...v.split(',').map((s) => s.trim()).filter(Boolean)];

export function register(program: Command, ctx: Context, holder: ExitHolder): void {
  const cmd = program
    .command('provision')
    .description('Launch a GPU instance on EC2 for the runtime (Deep Learning AMI, locked-down security group, alarms)')
    .option('--instance-type <type>', 'EC2 instance type (default g4dn.xlarge; env EMBEDCTL_INSTANCE_TYPE)')
    .option('--market <market>', 'on-demand or spot (default on-demand)')
    .option('--region <region>', 'AWS region (default: EMBEDCTL_REGION, embedctl.yaml aws.region, AWS_REGION, us-east-1)')
    .option('--subnet <subnet-id>', 'public subnet to launch in (default: the default VPC)')
    .option('--allow-cidr <cidr>', 'who may connect, e.g. "203.0.113.7/32" (repeatable, comma-separated; required)', collect)
    .option('--allow-world', 'needed together with --allow-cidr 0.0.0.0/0 to open the endpoint to the whole internet')
    .option('--key-name <name>', 'EC2 key pair for SSH (opens port 22 to --allow-cidr; needed for up --docker-host ssh://)')
    .option('--name <name>', 'deployment name, used in tags and resource names (default "main")')
    .option('--volume-size <GiB>', 'encrypted gp3 root volume size (default 125)')
    .option('--iam-instance-profile <name-or-arn>', 'instance profile (e.g. with CloudWatchAgentServerPolicy for GPU metrics)')
    .option('--alarm-topic <sns-arn>', 'SNS topic the alarms notify')
    .option('--no-wait', 'return once RunInstances succeeded, without waiting for status checks')
    .option('--wait-timeout <minutes>', 'how long to wait for running + status OK (default 20)')
    .option('--dry-run', "check every call with EC2's DryRun and print the plan; creates nothing")
    .option('--yes', 'create without asking (required without a terminal)');
  addDeployOptions(cmd, PROVISION_DEPLOY_FLAGS);
  examples(cmd, [
    'embedctl provision --allow-cidr 203.0.113.7/32 --dry-run',
    'embedctl provision --allow-cidr 203.0.113.7/32 --key-name me --yes',
    'embedctl provision --instance-type g5.xlarge --market spot --region eu-west-1 --allow-cidr 10.0.0.0/8 --subnet subnet-0abc --yes',
  ]);
  cmd.action(
    action<Opts>(ctx, holder, async ({ opts, globals, log }) => {
      const o = resolveOptions(ctx, opts);
      const w: Waiter = { sleep: ctx.sleep, now: () => ctx.now(), signal: ctx.signal, onProgress: (m) => log.info(m) };
      const ec2 = new Ec2(ec2Client(o.region), o.region, { instanceType: o.instanceType, market: o.market });
      if (!isGpuInstanceType(o.instanceType)) log.warn(`${o.instanceType} has no NVIDIA GPU; the runtime will fall back to CPU`);
      if (!o.iamInstanceProfile) {
        log.warn(
          `no --iam-instance-profile: the instance cannot read ${o.deploy.hostedKeyParameter} from SSM or publish CloudWatch metrics, so its user data stops before starting the gateway (attach a profile with ssm:GetParameter and CloudWatchAgentServerPolicy)`,
        );
      }

      log.info(`looking up the Deep Learning AMI and network in ${o.region}...`);
      const amiId = await latestDlamiId(ssmClient(o.region), o.region);
      const { vpcId } = await ec2.resolveVpc(o.subnetId);
      const existingSg = await ec2.findSecurityGroup(vpcId, securityGroupName(o.name));
      if (existingSg && !tagsConfirm(existingSg.Tags, o.name)) {
        throw new UsageError(`security group ${existingSg.GroupId} is named ${securityGroupName(o.name)} but is not tagged as embedctl's`, {
          field: '--name',
          hint: 'pick another --name; embedctl never changes resources it did not create',
        });
      }
      const userData = loadUserData(o);
      // The token a real run would send: a resumed run's recorded one, else the next attempt's.
      const known = await readState(statePaths(ctx.cwd, ctx.env).state);
      const dep0 = known.deployments[o.name];
      const runPreview = buildRunInstances(o, {
        amiId,
        securityGroupId: existingSg?.GroupId,
        userData,
        clientToken: dep0?.clientToken ?? clientToken(o.name, dep0?.attempt ?? known.attempts[o.name] ?? 1),
      });
      const plan = planDoc(o, amiId, vpcId, existingSg?.GroupId, runPreview, o.sources);

      if (o.dryRun) {
        const checks = await dryRunChecks(ec2, o, vpcId, existingSg?.GroupId, runPreview);
        const denied = checks.filter((c) => !c.ok);
        if (globals.json) printJson(ctx, 'provision', { dryRun: true, plan, checks, created: [] });
        else {
          ctx.stdout.write(renderPlan(plan));
          ctx.stdout.write('\nEC2 dry run (nothing was created):\n');
          for (const c of checks) ctx.stdout.write(`  ${c.ok ? 'ok     ' : 'DENIED '} ${c.action}${c.ok ? '' : `  (${c.reason})`}\n`);
          ctx.stdout.write('  not checked: cloudwatch:PutMetricAlarm (CloudWatch has no dry run); ssm:GetParameter ran for real (read-only)\n');
        }
        if (denied.length) {
          throw new ExternalError(`AWS EC2 (${o.region})`, `not allowed to call ${denied.map((d) => d.action).join(', ')}`, {
            hint: `grant ${denied.map((d) => d.action).join(', ')} to this IAM identity`,
          });
        }
        return 0;
      }

      if (!globals.json) ctx.stderr.write(renderPlan(plan));
      if (!o.yes) {
        await confirmOrRefuse(ctx, {
          message: `Create these resources in ${o.region} (billed by the hour)?`,
          noTerminal: 'confirmation needed and there is no terminal to ask on',
          hint: 'review the plan above (or run with --dry-run), then re-run with --yes',
          refused: 'not confirmed; nothing was created',
        });
      }

      const dep = await StateStore.locked({ cwd: ctx.cwd, env: ctx.env, command: 'provision', now: () => ctx.now() }, (store) =>
        execute(store, ec2, o, { amiId, vpcId, existingSg: existingSg?.GroupId, userData }, w, log),
      );
      const result = { plan, deployment: dep };
      if (globals.json) printJson(ctx, 'provision', { dryRun: false, ...result });
      else ctx.stdout.write(renderResult(dep, o));
      return 0;
    }),
  );
}

interface Resolved extends ProvisionOptions {
  deploy: DeployConfig;
  dryRun: boolean;
  yes: boolean;
  wait: boolean;
  waitTimeoutMs: number;
  sources: Record<string, string>;
}

/** The deploy settings `provision` bakes into the instance's user data (same schema as render). */
export const PROVISION_DEPLOY_FLAGS: readonly DeployKey[] = [
  'replicas',
  'model',
  'image',
  'hostedUrl',
  'percent',
  'splitKey',
  'gatewayPort',
  'memoryLimit',
  'gpusPerReplica',
  'prometheus',
  'hostedKeyParameter',
  'hfTokenParameter',
];

function resolveOptions(ctx: Context, opts: Opts): Resolved {
  const deploy = resolveDeployConfig(ctx, opts as unknown as Record<string, unknown>, PROVISION_DEPLOY_FLAGS);
  const envRegion = ctx.env.AWS_REGION || ctx.env.AWS_DEFAULT_REGION;
  const region = resolveOption(ctx, {
    flag: '--region',
    flagValue: opts.region,
    env: 'EMBEDCTL_REGION',
    file: 'aws.region',
    default: envRegion ?? 'us-east-1',
    parse: (raw) => {
      const r = parsers.string()(raw);
      const bad = checkRegion(r);
      // A region newer than this embedctl's list: let the user vouch for it.
      if (bad && ctx.env.EMBEDCTL_ALLOW_UNKNOWN_REGION !== '1') throw new Error(`${bad} (a brand-new region? set EMBEDCTL_ALLOW_UNKNOWN_REGION=1)`);
      return r;
    },
  });
  const instanceType = resolveOption(ctx, {
    flag: '--instance-type',
    flagValue: opts.instanceType,
    env: 'EMBEDCTL_INSTANCE_TYPE',
    file: 'provision.instanceType',
    default: 'g4dn.xlarge',
    parse: (raw) => {
      const t = parsers.string()(raw);
      if (!/^[a-z][a-z0-9-]*\.[a-z0-9]+$/.test(t)) throw new Error(`${JSON.stringify(t)} is not an instance type (e.g. g4dn.xlarge)`);
      return t;
    },
  });
  const market = resolveOption<Market>(ctx, {
    flag: '--market',
    flagValue: opts.market,
    env: 'EMBEDCTL_MARKET',
    file: 'provision.market',
    default: 'on-demand',
    parse: parsers.oneOf(['on-demand', 'spot'] as const),
  });
  const name = resolveOption(ctx, {
    flag: '--name',
    flagValue: opts.name,
    env: 'EMBEDCTL_DEPLOYMENT',
    file: 'provision.name',
    default: 'main',
    parse: (raw) => {
      const n = parsers.string()(raw);
      const bad = checkDeploymentName(n);
      if (bad) throw new Error(bad);
      return n;
    },
  });
  const volumeSize = resolveOption(ctx, {
    flag: '--volume-size',
    flagValue: opts.volumeSize,
    file: 'provision.volumeSize',
    default: 125,
    // The DLAMI's own snapshot is ~75 GB; a smaller root volume fails at launch.
    parse: parsers.number({ min: 100, max: 16384, integer: true }),
  });
  const waitTimeout = resolveOption(ctx, {
    flag: '--wait-timeout',
    flagValue: opts.waitTimeout,
    default: 20,
    parse: parsers.number({ min: 1, max: 120 }),
  });
  const cidrs = resolveOption<string[]>(ctx, {
    flag: '--allow-cidr',
    flagValue: opts.allowCidr?.length ? opts.allowCidr : undefined,
    env: 'EMBEDCTL_ALLOW_CIDR',
    file: 'provision.allowCidr',
    default: [],
    parse: (raw) => {
      const list = Array.isArray(raw) ? raw.map(String) : String(raw).split(',').map((s) => s.trim()).filter(Boolean);
      return list.map((c) => parseCidr(c).cidr);
    },
  });
  if (cidrs.value.length === 0) {
    throw new UsageError('required: who may reach the instance', {
      field: '--allow-cidr',
      hint: 'pass your address, e.g. --allow-cidr "$(curl -s https://checkip.amazonaws.com)/32"',
    });
  }
  const world = cidrs.value.filter((c) => parseCidr(c).world);
  if (world.length && !opts.allowWorld) {
    throw new UsageError(`${world.join(', ')} opens the endpoint to the whole internet`, {
      field: cidrs.origin,
      hint: 'use your own address (<your-ip>/32), or add --allow-world if that is really intended',
    });
  }
  const subnetId = opts.subnet;
  if (subnetId !== undefined && !/^subnet-[0-9a-f]+$/.test(subnetId)) {
    throw new UsageError(`expected a subnet id like subnet-0abc123, got ${JSON.stringify(subnetId)}`, { field: '--subnet' });
  }
  if (opts.alarmTopic !== undefined && !/^arn:aws[a-z-]*:sns:/.test(opts.alarmTopic)) {
    throw new UsageError(`expected an SNS topic ARN (arn:aws:sns:...), got ${JSON.stringify(opts.alarmTopic)}`, { field: '--alarm-topic' });
  }
  return {
    name: name.value,
    region: region.value,
    instanceType: instanceType.value,
    market: market.value,
    allowCidrs: cidrs.value,
    keyName: opts.keyName,
    subnetId,
    volumeSize: volumeSize.value,
    gatewayPort: deploy.config.gatewayPort,
    iamInstanceProfile: opts.iamInstanceProfile,
    alarmTopicArn: opts.alarmTopic,
    deploy: deploy.config,
    dryRun: Boolean(opts.dryRun),
    yes: Boolean(opts.yes),
    wait: opts.wait !== false,
    waitTimeoutMs: waitTimeout.value * 60_000,
    sources: {
      region: region.origin === 'default' && envRegion ? (ctx.env.AWS_REGION ? 'AWS_REGION' : 'AWS_DEFAULT_REGION') : region.origin,
      instanceType: instanceType.origin,
      market: market.origin,
      name: name.origin,
      allowCidr: cidrs.origin,
    },
  };
}

/**
 * The instance's cloud-init script: render's user-data.sh (Docker + NVIDIA toolkit check, model,
 * compose with nginx and the runtimes, CloudWatch agent), gzipped when over EC2's 16 KB.
 */
function loadUserData(o: Resolved): Uint8Array {
  try {
    return userDataBytes(renderUserData(o.deploy));
  } catch (err) {
    throw new ExternalError('embedctl', `cannot render the instance user data: ${(err as Error).message}`, { cause: err });
  }
}

interface PlanDoc {
  name: string;
  region: string;
  instanceType: string;
  market: Market;
  approxHourlyUsd?: number;
  amiId: string;
  vpcId: string;
  securityGroup: { name: string; id?: string; action: 'create' | 'reuse'; ingress: Array<{ port: number; cidr: string }> };
  runInstances: Omit<RunInstancesCommandInput, 'UserData'> & { UserData: string };
  alarms: string[];
  deploy: Pick<DeployConfig, 'image' | 'model' | 'replicas' | 'gatewayPort' | 'hostedUrl' | 'percent'>;
  sources: Record<string, string>;
}

function planDoc(
  o: Resolved,
  amiId: string,
  vpcId: string,
  sgId: string | undefined,
  run: RunInstancesCommandInput,
  sources: Record<string, string>,
): PlanDoc {
  const alarms = buildAlarms(o, 'i-pending').map((a) => a.AlarmName!);
  return {
    name: o.name,
    region: o.region,
    instanceType: o.instanceType,
    market: o.market,
    approxHourlyUsd: approxHourlyUsd(o.instanceType),
    amiId,
    vpcId,
    securityGroup: {
      name: securityGroupName(o.name),
      id: sgId,
      action: sgId ? 'reuse' : 'create',
      ingress: ingressRules(o).map((r) => ({ port: r.port, cidr: r.cidr })),
    },
    // The user-data is long and base64: show its size, not its bytes.
    runInstances: { ...run, UserData: `<${run.UserData?.length ?? 0} bytes base64>` },
    alarms,
    deploy: {
      image: o.deploy.image,
      model: o.deploy.model,
      replicas: o.deploy.replicas,
      gatewayPort: o.deploy.gatewayPort,
      hostedUrl: o.deploy.hostedUrl,
      percent: o.deploy.percent,
    },
    sources,
  };
}

function renderPlan(p: PlanDoc): string {
  const price = p.approxHourlyUsd !== undefined ? `, about ${fmtUsd(p.approxHourlyUsd)}/h on-demand list price${p.market === 'spot' ? ' (spot is usually far less)' : ''}` : '';
  const ports = [...new Set(p.securityGroup.ingress.map((r) => r.port))].join(', ');
  const cidrs = [...new Set(p.securityGroup.ingress.map((r) => r.cidr))].join(', ');
  return [
    `Plan for deployment "${p.name}" in ${p.region} (region from ${p.sources.region}):`,
    `  instance        ${p.instanceType}, ${p.market}${price}`,
    `  image           ${p.amiId} (Deep Learning Base OSS Nvidia Driver GPU AMI, Ubuntu 22.04)`,
    `  root volume     ${p.runInstances.BlockDeviceMappings?.[0]?.Ebs?.VolumeSize} GiB gp3, encrypted, deleted with the instance`,
    `  metadata        IMDSv2 required, hop limit 2`,
    `  security group  ${p.securityGroup.name} in ${p.vpcId} (${p.securityGroup.action === 'create' ? 'create' : `reuse ${p.securityGroup.id}`}): tcp ${ports} from ${cidrs}`,
    `  workload        ${p.deploy.replicas} x ${p.deploy.image} (model ${p.deploy.model}) behind nginx on port ${p.deploy.gatewayPort}, ${p.deploy.percent}% self-hosted / rest to ${p.deploy.hostedUrl}`,
    `  alarms          ${p.alarms.join(', ')}`,
    `  tags            embedctl:managed=true, embedctl:deployment=${p.name}`,
    '',
  ].join('\n');
}

async function dryRunChecks(ec2: Ec2, o: ProvisionOptions, vpcId: string, sgId: string | undefined, run: RunInstancesCommandInput) {
  const { AuthorizeSecurityGroupIngressCommand, CreateSecurityGroupCommand, RunInstancesCommand } = await import('@aws-sdk/client-ec2');
  const checks: Array<DryRunResult> = [];
  const check = async (a: string, send: () => Promise<unknown>) => {
    try {
      checks.push(await ec2.dryRun(a, send));
    } catch (err) {
      // Collect every missing permission so one dry run tells the whole story.
      const cause = (err as { cause?: unknown }).cause;
      if (['UnauthorizedOperation', 'AccessDenied'].includes(awsErrorCode(cause))) {
        checks.push({ action: a, ok: false, reason: awsErrorCode(cause) });
      } else throw err;
    }
  };
  if (!sgId) {
    await check('ec2:CreateSecurityGroup', () =>
      ec2.client.send(new CreateSecurityGroupCommand({ ...buildCreateSecurityGroup(o, vpcId), DryRun: true })),
    );
  } else {
    await check('ec2:AuthorizeSecurityGroupIngress', () =>
      ec2.client.send(new AuthorizeSecurityGroupIngressCommand({ ...buildIngress(o, sgId), DryRun: true })),
    );
  }
  await check('ec2:RunInstances', () => ec2.client.send(new RunInstancesCommand({ ...run, DryRun: true })));
  return checks;
}

interface Prepared {
  amiId: string;
  vpcId: string;
  existingSg?: string;
  userData: Uint8Array;
}

/** Each step records what it is about to do and what it did, so a re-run resumes safely. */
async function execute(store: StateStore, ec2: Ec2, o: Resolved, p: Prepared, w: Waiter, log: Logger): Promise<DeploymentRecord> {
  const now = new Date(w.now());
  let dep = store.state.deployments[o.name];
  if (dep && dep.region !== o.region) {
    throw new UsageError(`deployment "${o.name}" already exists in ${dep.region}`, {
      field: '--region',
      hint: `use --region ${dep.region}, another --name, or \`embedctl teardown --name ${o.name}\` first`,
    });
  }
  if (!dep) {
    const attempt = store.state.attempts[o.name] ?? 1;
    await store.update(o.name, 'start', (s) => {
      s.deployments[o.name] = newDeployment(o.name, o.region, now, attempt);
      s.attempts[o.name] = attempt;
    });
    dep = store.state.deployments[o.name]!;
  } else {
    log.info(`deployment "${o.name}" is already in the state file; resuming`);
  }
  const d = dep;
  await store.update(o.name, 'ami', () => void (d.amiId = p.amiId), { amiId: p.amiId });

  // Security group.
  if (d.securityGroup && !(await ec2.describeSecurityGroup(d.securityGroup.id))) {
    log.warn(`security group ${d.securityGroup.id} from the state file no longer exists; replacing it`);
    await store.update(o.name, 'forget-security-group', () => void (d.securityGroup = undefined));
  }
  if (!d.securityGroup) {
    const name = securityGroupName(o.name);
    if (p.existingSg) {
      log.info(`reusing security group ${p.existingSg} (${name})`);
      await store.update(o.name, 'reuse-security-group', () => void (d.securityGroup = { id: p.existingSg!, vpcId: p.vpcId, name, createdByUs: false }), { id: p.existingSg });
    } else {
      const id = await ec2.createSecurityGroup(buildCreateSecurityGroup(o, p.vpcId));
      log.info(`created security group ${id} (${name})`);
      await store.update(o.name, 'create-security-group', () => void (d.securityGroup = { id, vpcId: p.vpcId, name, createdByUs: true }), { id });
    }
  }
  const sg = await ec2.describeSecurityGroup(d.securityGroup!.id);
  const added = await ec2.authorizeMissing(buildIngress(o, d.securityGroup!.id), sg?.IpPermissions ?? []);
  if (added) log.info(`security group ${d.securityGroup!.id}: allowed ${added} rule(s) from ${o.allowCidrs.join(', ')}`);
  // Rules from an earlier run with another --allow-cidr stay open until someone removes them: say so.
  const wanted = new Set(ingressRules(o).map((r) => `${r.port} ${r.cidr}`));
  for (const p of sg?.IpPermissions ?? []) {
    for (const c of [...(p.IpRanges ?? []).map((r) => r.CidrIp), ...(p.Ipv6Ranges ?? []).map((r) => r.CidrIpv6)]) {
      if (c && !wanted.has(`${p.FromPort} ${c}`)) {
        log.warn(
          `security group ${d.securityGroup!.id} also allows tcp/${p.FromPort} from ${c} (not in --allow-cidr); remove it with \`aws ec2 revoke-security-group-ingress --group-id ${d.securityGroup!.id} --protocol tcp --port ${p.FromPort} --cidr ${c} --region ${o.region}\` if it is stale`,
        );
      }
    }
  }

  // Instance.
  if (d.instance) {
    const inst = await ec2.describeInstance(d.instance.id);
    const state = inst?.State?.Name ?? 'terminated';
    if (state === 'terminated' || state === 'shutting-down') {
      log.warn(`instance ${d.instance.id} from the state file is ${state}; launching a new one`);
      const next = d.attempt + 1;
      await store.update(o.name, 'forget-instance', (s) => {
        d.instance = undefined;
        d.clientToken = undefined;
        d.attempt = next;
        s.attempts[o.name] = next;
      }, { state });
    } else {
      log.info(`instance ${d.instance.id} already exists (${state})`);
    }
  }
  if (!d.instance) {
    const token = d.clientToken ?? clientToken(o.name, d.attempt);
    await store.update(o.name, 'run-instances', () => void (d.clientToken = token), { clientToken: token });
    const input = buildRunInstances(o, { amiId: p.amiId, securityGroupId: d.securityGroup!.id, userData: p.userData, clientToken: token });
    let inst;
    try {
      inst = await ec2.runInstance(input);
    } catch (err) {
      const code = awsErrorCode((err as { cause?: unknown }).cause);
      if (code === 'IdempotentParameterMismatch') {
        // An interrupted earlier run used this token with other parameters and did launch.
        inst = await adoptByToken(ec2, token);
        if (!inst) throw err;
        log.warn(`an instance launched by an interrupted earlier run (${inst.InstanceId}) was adopted; its parameters may differ from this run's`);
      } else {
        if ((err as { cause?: { $metadata?: { httpStatusCode?: number } } }).cause?.$metadata?.httpStatusCode) {
          // AWS answered with a definite "no": the next try may change parameters, so it gets a fresh token.
          const next = d.attempt + 1;
          await store.update(o.name, 'run-instances-failed', (s) => {
            d.clientToken = undefined;
            d.attempt = next;
            s.attempts[o.name] = next;
          }, { code });
        }
        throw err;
      }
    }
    log.info(`launched ${inst.InstanceId} (${o.instanceType}, ${o.market})`);
    await store.update(o.name, 'instance', () => {
      d.instance = { id: inst.InstanceId!, instanceType: o.instanceType, market: o.market, state: inst.State?.Name, launchedAt: new Date(w.now()).toISOString() };
    }, { id: inst.InstanceId });
  }
  const id = d.instance!.id;

  if (o.wait) {
    const running = await ec2.waitRunning(id, w, o.waitTimeoutMs);
    await store.update(o.name, 'running', () => {
      d.instance = {
        ...d.instance!,
        state: 'running',
        publicDns: running.PublicDnsName || undefined,
        publicIp: running.PublicIpAddress,
        availabilityZone: running.Placement?.AvailabilityZone,
      };
      const host = running.PublicDnsName || running.PublicIpAddress;
      d.gateway = host ? `http://${host}:${o.gatewayPort}` : undefined;
    });
    await ec2.waitStatusOk(id, w, o.waitTimeoutMs);
    await store.update(o.name, 'status-ok', () => void (d.instance!.state = 'running'));
  }

  // Alarms: names go into the state first so teardown finds even a half-finished set.
  const alarms = buildAlarms(o, id);
  const names = alarms.map((a) => a.AlarmName!);
  await store.update(o.name, 'alarms', () => void (d.alarms = [...new Set([...d.alarms, ...names])]), { names });
  await putAlarms(cloudWatchClient(o.region), o.region, alarms);
  log.info(`alarms set: ${names.map((n) => n.replace(alarmName(o.name, ''), '')).join(', ')}`);
  return d;
}

async function adoptByToken(ec2: Ec2, token: string) {
  const out = await ec2.client.send(new DescribeInstancesCommand({ Filters: [{ Name: 'client-token', Values: [token] }] }));
  return out.Reservations?.flatMap((r) => r.Instances ?? []).find((i) => i.State?.Name !== 'terminated');
}

function renderResult(d: DeploymentRecord, o: Resolved): string {
  const host = d.instance?.publicDns ?? d.instance?.publicIp;
  return [
    `Provisioned "${d.name}" in ${d.region}`,
    `  instance        ${d.instance?.id} (${d.instance?.instanceType}, ${d.instance?.market}) ${d.instance?.state ?? ''}${o.wait ? ', status checks ok' : ''}`,
    `  public address  ${host ?? '(not yet known: run embedctl status)'}`,
    `  gateway         ${d.gateway ?? '(once running)'}`,
    `  security group  ${d.securityGroup?.id} (${d.securityGroup?.createdByUs ? 'created' : 'reused'})`,
    `  alarms          ${d.alarms.length}`,
    '',
    'Next:',
    host && o.keyName ? `  embedctl up --docker-host ssh://ubuntu@${host}` : '  embedctl up --docker-host ssh://ubuntu@<public address>   (needs --key-name at provision)',
    '  embedctl status',
    '',
  ].join('\n');
}
