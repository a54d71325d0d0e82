import type { Command } from 'commander';
import type { Context } from '../context.js';
import { ExternalError } from '../errors.js';
import { buildCreateSecurityGroup, buildIngress, isGpuInstanceType } from '../core/provision-plan.js';
import { buildLaunchTemplate, listenerPort } from '../core/provision-scale.js';
import { readState, statePaths, StateStore, type DeploymentRecord } from '../core/state.js';
import { requireProductionModel } from '../core/deploy-config.js';
import { gatewayKeysParameterFor } from '../core/gateway-config.js';
import { renderUserData, userDataBytes } from '../core/render.js';
import type { DryRunResult, Waiter } from '../adapters/aws/ec2.js';
import { awsErrorCode, offlineReason } from '../adapters/aws/errors.js';
import { printJson } from '../ui/output.js';
import { confirmOrRefuse } from '../ui/prompts.js';
import { action, examples, type ExitHolder } from './shared.js';
import { addDeployOptions } from './render.js';
import { collect, PROVISION_DEPLOY_FLAGS, resolveOptions, type ProvisionFlags, type Resolved } from './provision/options.js';
import { buildPlan, discover, renderNotChecked, renderPlan, type Discovery, type PlanDoc } from './provision/plan.js';
import { awsClients, deploymentStep, ingressStep, instanceStep, runSteps, securityGroupStep, waitStep, type AwsClients, type Step } from './provision/steps.js';
import { SCALE_STEPS } from './provision/scale-steps.js';
import { alarmsStep, budgetStep, costTagsStep, dashboardStep } from './provision/watch-steps.js';
import { gatewayKeysApplyStep, gatewayKeysStep } from './provision/gateway-keys-step.js';

export { PROVISION_DEPLOY_FLAGS };

/** What the instance's role needs, as the help, the warning and the README say it. */
export const INSTANCE_ROLE_POLICIES =
  'AmazonSSMManagedInstanceCore (SSM agent: the parameters, Run Command for key rotation and rollout --driver ssm) and CloudWatchAgentServerPolicy (metrics, logs); kms:Decrypt too if the parameters use a customer-managed key';

export function register(program: Command, ctx: Context, holder: ExitHolder): void {
  const cmd = program
    .command('provision')
    .description('Launch GPU capacity on EC2 for the runtime: one instance, or an Auto Scaling group behind a load balancer (--min/--max)')
    .option('--instance-type <type>', 'EC2 instance type (default g4dn.xlarge; env EMBEDCTL_INSTANCE_TYPE)')
    .option('--market <market>', 'on-demand or spot (default on-demand)')
    .option('--region <region>', 'AWS region (default: EMBEDCTL_REGION, embedctl.yaml aws.region, AWS_REGION, us-east-1)')
    .option('--subnet <subnet-id>', 'public subnet to launch in (repeatable with --min/--max; default: the default VPC)', collect)
    .option('--allow-cidr <cidr>', 'who may connect, e.g. "203.0.113.7/32" (repeatable, comma-separated; required)', collect)
    .option('--allow-world', 'needed for CIDRs that add up to the internet (0.0.0.0/0, two /1s, 2000::/3, anything shorter than /8)')
    .option('--key-name <name>', 'EC2 key pair for SSH (opens port 22 to --allow-cidr; needed for up --docker-host ssh://)')
    .option('--name <name>', 'deployment name, used in tags and resource names (default "main")')
    .option('--volume-size <GiB>', 'encrypted gp3 root volume size (default 125)')
    .option('--iam-instance-profile <name-or-arn>', `instance profile; its role needs ${INSTANCE_ROLE_POLICIES}`)
    .option('--alarm-topic <sns-arn>', 'SNS topic the alarms and the budget notify')
    .option('--min <n>', 'scale-out: at least this many instances in an Auto Scaling group behind an ALB')
    .option('--max <n>', 'scale-out: at most this many instances')
    .option('--certificate-arn <arn>', 'scale-out: ACM certificate for an HTTPS listener on 443 (default: HTTP on 80)')
    .option('--scale-metric <metric>', 'scale-out: requests (ALB requests per target, default) or p95 (the runtime\'s latency)')
    .option('--scale-target <n>', 'scale-out: target value (requests per target per minute, default 1000; or p95 ms, default 250)')
    .option('--monthly-budget <USD>', 'AWS Budgets monthly limit (default: list price of --max instances all month + 20%)')
    .option('--gateway-keys <file>', 'gateway keys ("client <key> [name=... rpm=...]" / "operator <key>" lines) to store in the SSM parameter the instance reads, and apply on a running instance over SSM (a rotation) (default: keep it, or create it with fresh keys saved to .embedctl/gateway-keys/<name>)')
    .option('--activate-cost-tags', 'activate embedctl:managed and embedctl:deployment as cost-allocation tags (asked on a terminal)')
    .option('--no-wait', 'return once RunInstances succeeded, without waiting for status checks')
    .option('--wait-timeout <minutes>', 'how long to wait for running + status OK (default 20)')
    .option('--dry-run', "print the plan (offline without credentials; with them, checked with EC2's DryRun); creates nothing")
    .option('--yes', 'create without asking (required without a terminal)');
  addDeployOptions(cmd, PROVISION_DEPLOY_FLAGS);
  examples(cmd, [
    'embedctl provision --allow-cidr 203.0.113.7/32 --dry-run',
    'embedctl provision --allow-cidr 203.0.113.7/32 --model BAAI/bge-base-en-v1.5 --key-name me --yes',
    'embedctl provision --allow-cidr 203.0.113.7/32 --model BAAI/bge-base-en-v1.5 --min 2 --max 6 --dry-run',
    'embedctl provision --allow-cidr 203.0.113.7/32 --model BAAI/bge-base-en-v1.5 --tls letsencrypt --domain embed.example.com --email ops@example.com --dry-run',
    'embedctl provision --instance-type g5.xlarge --market spot --region eu-west-1 --allow-cidr 10.0.0.0/8 --subnet subnet-0abc --model BAAI/bge-small-en-v1.5 --yes',
  ]);
  cmd.action(
    action<ProvisionFlags>(ctx, holder, async ({ opts, globals, log }) => {
      // Everything that can be refused without asking AWS is refused here, before any call.
      const o = resolveOptions(ctx, opts);
      if (!o.dryRun) requireProductionModel(o.deploy);
      // What the state records of this deployment: a resumed run's ClientToken, and the gateway
      // keys parameter its instances read (named in the user data, so resolved before rendering).
      const known = await readState(statePaths(ctx.cwd, ctx.env).state);
      const dep0 = known.deployments[o.name];
      o.deploy.gatewayKeysParameter = gatewayKeysParameterFor(o.deploy.gatewayKeysParameter, o.name, dep0?.gatewayKeys?.parameter);
      const userData = loadUserData(o);
      if (!isGpuInstanceType(o.instanceType)) log.warn(`${o.instanceType} has no NVIDIA GPU; the runtime will fall back to CPU`);
      if (!o.iamInstanceProfile) {
        log.warn(
          `no --iam-instance-profile: the instance cannot read ${o.deploy.hostedKeyParameter} from SSM, take SSM Run Command (key rotation, rollout --driver ssm) or publish CloudWatch metrics, so its user data stops before starting the gateway (attach a profile whose role has ${INSTANCE_ROLE_POLICIES})`,
        );
      }
      const aws = awsClients(o);
      log.info(`looking up the Deep Learning AMI and network in ${o.region}...`);
      let d: Discovery | undefined;
      let offline: string | undefined;
      try {
        d = await discover(aws, o);
      } catch (err) {
        offline = offlineReason(err);
        // Without credentials a dry run is still a review of the plan; a real run cannot go on.
        if (!offline || !o.dryRun) throw err;
        log.warn(`${offline}: printing the plan without checking it against the account`);
      }
      // The token a real run would send: a resumed run's recorded one, else the next attempt's.
      const plan = buildPlan(o, d, userData, { clientToken: dep0?.clientToken, attempt: dep0?.attempt ?? known.attempts[o.name] ?? 1 }, offline);

      if (o.dryRun) return dryRun(ctx, globals.json, o, plan, aws, d, userData);

      if (!globals.json) ctx.stderr.write(renderPlan(plan));
      if (!o.yes) {
        await confirmOrRefuse(ctx, {
          message: `Create these resources in ${o.region} (billed by the hour)?`,
          noTerminal: 'confirmation needed and there is no terminal to ask on',
          hint: 'review the plan above (or run with --dry-run), then re-run with --yes',
          refused: 'not confirmed; nothing was created',
        });
      }
      const w: Waiter = { sleep: ctx.sleep, now: () => ctx.now(), signal: ctx.signal, onProgress: (m) => log.status(m) };
      const dep = await StateStore.locked({ cwd: ctx.cwd, env: ctx.env, command: 'provision', now: () => ctx.now() }, async (store) => {
        const e = { ctx, store, o, aws, d: d!, userData, w, log, dep: undefined as unknown as DeploymentRecord };
        await runSteps(provisionSteps(o), e);
        if (o.scale && e.dep.scale?.loadBalancerDns) {
          const gateway = `${o.scale.certificateArn ? 'https' : 'http'}://${e.dep.scale.loadBalancerDns}${[80, 443].includes(listenerPort(o.scale)) ? '' : `:${listenerPort(o.scale)}`}`;
          await store.update(o.name, 'gateway', () => void (e.dep.gateway = gateway), { gateway });
        }
        return e.dep;
      });
      if (globals.json) printJson(ctx, 'provision', { dryRun: false, plan, deployment: dep });
      else ctx.stdout.write(renderResult(dep, o));
      return 0;
    }),
  );
}

/** The ordered steps: each checks, creates what is missing, records it (see provision/steps.ts). */
export function provisionSteps(o: Resolved): Array<Step<unknown>> {
  const compute = o.scale ? SCALE_STEPS : [instanceStep, waitStep, gatewayKeysApplyStep];
  // The keys before anything boots: user data reads them at start.
  return [deploymentStep, securityGroupStep, ingressStep, gatewayKeysStep, ...compute, alarmsStep, dashboardStep, budgetStep, costTagsStep];
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

async function dryRun(ctx: Context, json: boolean, o: Resolved, plan: PlanDoc, aws: AwsClients, d: Discovery | undefined, userData: Uint8Array): Promise<number> {
  const checks = d ? await dryRunChecks(aws, o, d, plan, userData) : [];
  const denied = checks.filter((c) => !c.ok);
  if (json) printJson(ctx, 'provision', { dryRun: true, offline: !d, plan, checks, created: [] });
  else {
    ctx.stdout.write(renderPlan(plan));
    if (d) {
      ctx.stdout.write('\nEC2 dry run (nothing was created):\n');
      for (const c of checks) ctx.stdout.write(`  ${c.ok ? 'ok     ' : 'DENIED '} ${c.action}${c.ok ? '' : `  (${c.reason})`}\n`);
    } else ctx.stdout.write('\nOffline plan (nothing was created or checked).\n');
    ctx.stdout.write(renderNotChecked(plan));
  }
  if (denied.length) {
    throw new ExternalError(`AWS EC2 (${o.region})`, `not allowed to call ${denied.map((x) => x.action).join(', ')}`, {
      hint: `grant ${denied.map((x) => x.action).join(', ')} to this IAM identity`,
    });
  }
  return 0;
}

/** EC2's DryRun on every mutating EC2 call the run would make; every missing permission is collected. */
async function dryRunChecks(aws: AwsClients, o: Resolved, d: Discovery, plan: PlanDoc, userData: Uint8Array): Promise<DryRunResult[]> {
  const { AuthorizeSecurityGroupIngressCommand, CreateLaunchTemplateCommand, CreateSecurityGroupCommand, RunInstancesCommand } = await import('@aws-sdk/client-ec2');
  const ec2 = aws.ec2;
  const checks: DryRunResult[] = [];
  const check = async (a: string, send: () => Promise<unknown>) => {
    try {
      checks.push(await ec2.dryRun(a, send));
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      if (['UnauthorizedOperation', 'AccessDenied'].includes(awsErrorCode(cause))) checks.push({ action: a, ok: false, reason: awsErrorCode(cause) });
      else throw err;
    }
  };
  const sgId = d.existingSg?.GroupId;
  if (!sgId) {
    await check('ec2:CreateSecurityGroup', () => ec2.client.send(new CreateSecurityGroupCommand({ ...buildCreateSecurityGroup(o, d.vpcId), DryRun: true })));
  } else {
    await check('ec2:AuthorizeSecurityGroupIngress', () => ec2.client.send(new AuthorizeSecurityGroupIngressCommand({ ...buildIngress(o, sgId), DryRun: true })));
  }
  if (o.scale) {
    // Before the group exists EC2 checks the template without one.
    const lt = buildLaunchTemplate(o, { amiId: d.amiId, securityGroupId: sgId, userData });
    await check('ec2:CreateLaunchTemplate', () => ec2.client.send(new CreateLaunchTemplateCommand({ ...lt, DryRun: true })));
  } else {
    const { UserData: _shown, ...run } = plan.runInstances!;
    const input = { ...run, UserData: Buffer.from(userData).toString('base64') };
    await check('ec2:RunInstances', () => ec2.client.send(new RunInstancesCommand({ ...input, DryRun: true })));
  }
  return checks;
}

function renderResult(d: DeploymentRecord, o: Resolved): string {
  const host = d.instance?.publicDns ?? d.instance?.publicIp;
  const lines = [`Provisioned "${d.name}" in ${d.region}`];
  if (d.scale) {
    lines.push(
      `  auto scaling    ${d.scale.autoScalingGroup} (min ${d.scale.min}, max ${d.scale.max})`,
      `  load balancer   ${d.scale.loadBalancerDns ?? d.scale.loadBalancerArn}`,
      `  gateway         ${d.gateway ?? '(once the load balancer is active)'}`,
    );
  } else {
    lines.push(
      `  instance        ${d.instance?.id} (${d.instance?.instanceType}, ${d.instance?.market}) ${d.instance?.state ?? ''}${o.wait ? ', status checks ok' : ''}`,
      `  public address  ${host ?? '(not yet known: run embedctl status)'}`,
      `  gateway         ${d.gateway ?? '(once running: embedctl status finds it and records it)'}`,
    );
  }
  lines.push(
    `  security group  ${d.securityGroup?.id} (${d.securityGroup?.createdByUs ? 'created' : 'reused'})`,
    `  alarms          ${d.alarms.length}`,
    ...(d.dashboard ? [`  dashboard       ${d.dashboard}`] : []),
    ...(d.budget ? [`  budget          ${d.budget.name}`] : []),
    '',
    'Next:',
    d.scale
      ? '  embedctl status   (instances and target health)'
      : host && o.keyName
        ? `  embedctl up --docker-host ssh://ubuntu@${host}`
        : '  embedctl up --docker-host ssh://ubuntu@<public address>   (needs --key-name at provision)',
    '  embedctl status',
    '',
  );
  return lines.join('\n');
}
