import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { DeleteSecurityGroupCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import type { Context } from '../context.js';
import { ExitCode, UsageError } from '../errors.js';
import { tagsConfirm } from '../core/provision-plan.js';
import { readState, statePaths, StateStore, type DeploymentRecord } from '../core/state.js';
import { Ec2, ec2Client, type DryRunResult, type Waiter } from '../adapters/aws/ec2.js';
import { checkAlarms, cloudWatchClient, deleteAlarms, type AlarmCheck } from '../adapters/aws/alarms.js';
import { awsErrorCode } from '../adapters/aws/errors.js';
import { printJson, type Logger } from '../ui/output.js';
import { action, examples, type ExitHolder } from './shared.js';
import { confirmOrRefuse } from '../ui/prompts.js';

interface Opts {
  name?: string;
  yes?: boolean;
  dryRun?: boolean;
  force?: boolean;
}

/** What AWS says about each resource the state lists, before anything is touched. */
type Verdict = 'remove' | 'gone' | 'untagged';

interface Survey {
  dep: DeploymentRecord;
  instance?: { id: string; verdict: Verdict; state?: string };
  securityGroup?: { id: string; verdict: Verdict };
  alarms: AlarmCheck;
}

interface Outcome {
  name: string;
  region: string;
  removed: string[];
  alreadyGone: string[];
  skipped: Array<{ resource: string; reason: string }>;
}

export function register(program: Command, ctx: Context, holder: ExitHolder): void {
  const cmd = program
    .command('teardown')
    .description('Remove what provision created: only resources listed in .embedctl/state.json whose tags confirm embedctl manages them')
    .option('--name <name>', 'only this deployment (default: every deployment in the state file)')
    .option('--dry-run', "check with EC2's DryRun and print what would be removed")
    .option('--yes', 'remove without asking (required without a terminal)')
    .option('--force', 'tear down even though the rollout state still sends traffic to self-hosted');
  examples(cmd, ['embedctl teardown --dry-run', 'embedctl teardown --yes', 'embedctl teardown --name blue --yes --json']);
  cmd.action(
    action<Opts>(ctx, holder, async ({ opts, globals, log }) => {
      const paths = statePaths(ctx.cwd, ctx.env);
      const preview = await readState(paths.state);
      const names = opts.name ? [opts.name] : Object.keys(preview.deployments);
      if (opts.name && !preview.deployments[opts.name]) {
        const known = Object.keys(preview.deployments);
        throw new UsageError(`no deployment "${opts.name}" in ${paths.state}`, {
          field: '--name',
          hint: known.length ? `known: ${known.join(', ')}` : 'nothing is provisioned',
        });
      }
      if (names.length === 0) {
        if (globals.json) printJson(ctx, 'teardown', { dryRun: Boolean(opts.dryRun), deployments: [], nothingToDo: true });
        else ctx.stdout.write(`Nothing to tear down: ${paths.state} lists no deployments.\n`);
        return 0;
      }
      const live = rolloutPercent(paths.rollout);
      if (live > 0 && !opts.dryRun && !opts.force) {
        throw new UsageError(`${paths.rollout} still sends ${live}% of traffic to self-hosted; tearing down would cut it off`, {
          field: '--force',
          hint: 'roll back first (`embedctl rollout rollback --reason teardown`), or pass --force',
        });
      }
      const w: Waiter = { sleep: ctx.sleep, now: () => ctx.now(), signal: ctx.signal, onProgress: (m) => log.info(m) };

      return StateStore.locked({ cwd: ctx.cwd, env: ctx.env, command: 'teardown', now: () => ctx.now() }, async (store) => {
        const surveys: Survey[] = [];
        for (const n of names) {
          const dep = store.state.deployments[n];
          if (dep) surveys.push(await survey(dep));
        }
        const planText = surveys.map(renderSurvey).join('');

        if (opts.dryRun) {
          const checks: DryRunResult[] = [];
          for (const s of surveys) checks.push(...(await dryRun(s)));
          const denied = checks.filter((c) => !c.ok);
          if (globals.json) printJson(ctx, 'teardown', { dryRun: true, deployments: surveys.map(surveyDoc), checks });
          else {
            ctx.stdout.write(planText);
            ctx.stdout.write('\nEC2 dry run (nothing was removed):\n');
            for (const c of checks) ctx.stdout.write(`  ${c.ok ? 'ok     ' : 'DENIED '} ${c.action}${c.ok ? '' : `  (${c.reason})`}\n`);
          }
          return denied.length ? ExitCode.external : ExitCode.ok;
        }

        if (!globals.json) ctx.stderr.write(planText);
        if (!opts.yes) {
          await confirmOrRefuse(ctx, {
            message: 'Remove these resources?',
            noTerminal: 'confirmation needed and there is no terminal to ask on',
            hint: 'review what would be removed with --dry-run, then re-run with --yes',
            refused: 'not confirmed; nothing was removed',
          });
        }

        const outcomes: Outcome[] = [];
        for (const s of surveys) outcomes.push(await remove(store, s, w, log));
        const skipped = outcomes.flatMap((o) => o.skipped);
        if (globals.json) printJson(ctx, 'teardown', { dryRun: false, deployments: outcomes });
        else ctx.stdout.write(outcomes.map(renderOutcome).join(''));
        if (skipped.length) {
          log.warn(`${skipped.length} resource(s) left in place and still listed in ${paths.state}; see above`);
          return ExitCode.external;
        }
        return ExitCode.ok;
      });
    }),
  );
}

function rolloutPercent(path: string): number {
  try {
    const p = (JSON.parse(readFileSync(path, 'utf8')) as { percent?: unknown }).percent;
    return typeof p === 'number' ? p : 0;
  } catch {
    return 0;
  }
}

function ec2For(dep: DeploymentRecord) {
  return new Ec2(ec2Client(dep.region), dep.region);
}

async function survey(dep: DeploymentRecord): Promise<Survey> {
  const ec2 = ec2For(dep);
  const s: Survey = { dep, alarms: await checkAlarms(cloudWatchClient(dep.region), dep.region, dep.alarms, dep.name) };
  if (dep.instance) {
    const inst = await ec2.describeInstance(dep.instance.id);
    const state = inst?.State?.Name;
    const verdict: Verdict = !inst || state === 'terminated' ? 'gone' : tagsConfirm(inst.Tags, dep.name) ? 'remove' : 'untagged';
    s.instance = { id: dep.instance.id, verdict, state };
  }
  if (dep.securityGroup) {
    const sg = await ec2.describeSecurityGroup(dep.securityGroup.id);
    s.securityGroup = { id: dep.securityGroup.id, verdict: !sg ? 'gone' : tagsConfirm(sg.Tags, dep.name) ? 'remove' : 'untagged' };
  }
  return s;
}

async function dryRun(s: Survey): Promise<DryRunResult[]> {
  const ec2 = ec2For(s.dep);
  const out: DryRunResult[] = [];
  const check = async (a: string, send: () => Promise<unknown>) => {
    try {
      out.push(await ec2.dryRun(a, send));
    } catch (err) {
      const code = awsErrorCode((err as { cause?: unknown }).cause);
      if (code === 'UnauthorizedOperation' || code === 'AccessDenied') out.push({ action: a, ok: false, reason: code });
      else throw err;
    }
  };
  if (s.instance?.verdict === 'remove') {
    await check('ec2:TerminateInstances', () => ec2.client.send(new TerminateInstancesCommand({ InstanceIds: [s.instance!.id], DryRun: true })));
  }
  if (s.securityGroup?.verdict === 'remove') {
    await check('ec2:DeleteSecurityGroup', () => ec2.client.send(new DeleteSecurityGroupCommand({ GroupId: s.securityGroup!.id, DryRun: true })));
  }
  return out;
}

/** Removes in dependency order, dropping each resource from the state right after it is gone. */
async function remove(store: StateStore, s: Survey, w: Waiter, log: Logger): Promise<Outcome> {
  const d = s.dep;
  const o: Outcome = { name: d.name, region: d.region, removed: [], alreadyGone: [], skipped: [] };
  const cw = cloudWatchClient(d.region);
  const ec2 = ec2For(d);
  const untaggedReason = 'its tags do not say embedctl:managed=true for this deployment';

  if (s.alarms.confirmed.length) {
    await deleteAlarms(cw, d.region, s.alarms.confirmed);
    log.info(`deleted ${s.alarms.confirmed.length} alarm(s)`);
  }
  const dropAlarms = new Set([...s.alarms.confirmed, ...s.alarms.missing]);
  if (dropAlarms.size) {
    await store.update(d.name, 'delete-alarms', () => void (d.alarms = d.alarms.filter((a) => !dropAlarms.has(a))), {
      deleted: s.alarms.confirmed,
      alreadyGone: s.alarms.missing,
    });
  }
  o.removed.push(...s.alarms.confirmed.map((a) => `alarm ${a}`));
  o.alreadyGone.push(...s.alarms.missing.map((a) => `alarm ${a}`));
  for (const a of s.alarms.untagged) {
    log.warn(`alarm ${a} skipped: ${untaggedReason}`);
    o.skipped.push({ resource: `alarm ${a}`, reason: untaggedReason });
  }

  if (s.instance) {
    const id = s.instance.id;
    if (s.instance.verdict === 'untagged') {
      log.warn(`instance ${id} skipped, not terminated: ${untaggedReason}`);
      o.skipped.push({ resource: `instance ${id}`, reason: untaggedReason });
    } else {
      if (s.instance.verdict === 'remove') {
        const r = await ec2.terminate(id);
        if (r === 'terminating') {
          log.info(`terminating ${id}...`);
          await ec2.waitTerminated(id, w);
        }
        o.removed.push(`instance ${id}`);
      } else o.alreadyGone.push(`instance ${id}`);
      await store.update(d.name, 'terminate-instance', () => void (d.instance = undefined), { id, verdict: s.instance.verdict });
    }
  }

  if (s.securityGroup) {
    const id = s.securityGroup.id;
    if (d.instance) {
      o.skipped.push({ resource: `security group ${id}`, reason: `instance ${d.instance.id} still uses it` });
    } else if (s.securityGroup.verdict === 'untagged') {
      log.warn(`security group ${id} skipped: ${untaggedReason}`);
      o.skipped.push({ resource: `security group ${id}`, reason: untaggedReason });
    } else {
      const r = s.securityGroup.verdict === 'remove' ? await ec2.deleteSecurityGroup(id, w) : 'gone';
      (r === 'deleted' ? o.removed : o.alreadyGone).push(`security group ${id}`);
      await store.update(d.name, 'delete-security-group', () => void (d.securityGroup = undefined), { id, result: r });
    }
  }

  if (!d.instance && !d.securityGroup && d.alarms.length === 0) {
    await store.update(d.name, 'forget-deployment', (st) => void delete st.deployments[d.name]);
  }
  return o;
}

const verdictText: Record<Verdict, string> = {
  remove: 'will be removed',
  gone: 'already gone',
  untagged: 'NOT embedctl-tagged: will be left alone',
};

function renderSurvey(s: Survey): string {
  const lines = [`Deployment "${s.dep.name}" in ${s.dep.region}:`];
  if (s.instance) lines.push(`  instance ${s.instance.id} (${s.instance.state ?? 'not found'}): ${verdictText[s.instance.verdict]}`);
  if (s.securityGroup) lines.push(`  security group ${s.securityGroup.id}: ${verdictText[s.securityGroup.verdict]}`);
  for (const a of s.alarms.confirmed) lines.push(`  alarm ${a}: ${verdictText.remove}`);
  for (const a of s.alarms.missing) lines.push(`  alarm ${a}: ${verdictText.gone}`);
  for (const a of s.alarms.untagged) lines.push(`  alarm ${a}: ${verdictText.untagged}`);
  return lines.join('\n') + '\n';
}

function surveyDoc(s: Survey) {
  return { name: s.dep.name, region: s.dep.region, instance: s.instance, securityGroup: s.securityGroup, alarms: s.alarms };
}

function renderOutcome(o: Outcome): string {
  const lines = [`Teardown of "${o.name}" in ${o.region}: ${o.removed.length} removed, ${o.alreadyGone.length} already gone, ${o.skipped.length} skipped`];
  for (const r of o.removed) lines.push(`  removed  ${r}`);
  for (const r of o.alreadyGone) lines.push(`  gone     ${r}`);
  for (const r of o.skipped) lines.push(`  SKIPPED  ${r.resource}: ${r.reason}`);
  return lines.join('\n') + '\n';
}
