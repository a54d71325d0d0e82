import { DeleteLaunchTemplateCommand, DeleteSecurityGroupCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { DEPLOYMENT_TAG, tagsConfirm } from '../../core/provision-plan.js';
import { dashboardMarker } from '../../core/provision-monitoring.js';
import type { DeploymentRecord, StateStore } from '../../core/state.js';
import type { DryRunResult, Waiter } from '../../adapters/aws/ec2.js';
import { checkAlarms, deleteAlarms, deleteDashboard, getDashboardBody, type AlarmCheck } from '../../adapters/aws/alarms.js';
import { budgetIsOurs, deleteBudget, findBudget } from '../../adapters/aws/budgets.js';
import { deleteParameter, describeParameter } from '../../adapters/aws/parameters.js';
import { gatewayKeysMarker } from './gateway-keys-step.js';
import { awsErrorCode } from '../../adapters/aws/errors.js';
import type { Logger } from '../../ui/output.js';
import { awsClients, type AwsClients } from './steps.js';

/**
 * Teardown as the mirror of provision's steps: a survey of every resource the state lists (what
 * AWS says about it, tags checked), then removal in dependency order, each resource dropped from
 * the state right after it is gone. Only resources whose tags (or marker) say embedctl made them
 * for this deployment are touched.
 */

/** 'shared': ours, but another deployment in the state still uses it: kept, and forgotten here. */
export type Verdict = 'remove' | 'gone' | 'untagged' | 'shared';

interface Item {
  /** "instance i-0abc", as messages and the report name it. */
  label: string;
  verdict: Verdict;
  state?: string;
  /** The history action, e.g. "terminate-instance". */
  action: string;
  remove(w: Waiter, log: Logger): Promise<'deleted' | 'gone'>;
  forget(d: DeploymentRecord): void;
  /** EC2's DryRun of the removal, where the API has one. */
  dryRun?: { action: string; send: () => Promise<unknown> };
  /** Resources that must be gone first (by label). */
  after?: string[];
}

export interface Survey {
  dep: DeploymentRecord;
  aws: AwsClients;
  alarms: AlarmCheck;
  items: Item[];
  /** Something left for the user to do later (a kept shared parameter). */
  note?: string;
}

export interface Outcome {
  name: string;
  region: string;
  removed: string[];
  alreadyGone: string[];
  skipped: Array<{ resource: string; reason: string }>;
  /** Left in place on purpose (another deployment uses it); not a failure. */
  kept: Array<{ resource: string; reason: string }>;
}

const judge = (exists: boolean, ours: boolean): Verdict => (!exists ? 'gone' : ours ? 'remove' : 'untagged');

/**
 * `others`: the deployments in the state that stay (not torn down in this run); a resource one of
 * them also records is kept.
 */
export async function survey(dep: DeploymentRecord, others: DeploymentRecord[] = []): Promise<Survey> {
  const aws = awsClients({ region: dep.region });
  const { ec2, scale, cw, budgets } = aws;
  const s: Survey = { dep, aws, alarms: await checkAlarms(cw, dep.region, dep.alarms, dep.name), items: [] };
  const add = (i: Item) => s.items.push(i);

  if (dep.dashboard) {
    const name = dep.dashboard;
    const body = await getDashboardBody(cw, dep.region, name);
    add({ label: `dashboard ${name}`, verdict: judge(body !== undefined, Boolean(body?.includes(dashboardMarker(dep.name)))), action: 'delete-dashboard', remove: async () => (await deleteDashboard(cw, dep.region, name), 'deleted'), forget: (d) => void (d.dashboard = undefined) });
  }
  if (dep.budget) {
    const { name, accountId } = dep.budget;
    const b = await findBudget(budgets, accountId, name);
    add({ label: `budget ${name}`, verdict: judge(Boolean(b), budgetIsOurs(b, `user:${DEPLOYMENT_TAG}$${dep.name}`)), action: 'delete-budget', remove: () => deleteBudget(budgets, accountId, name), forget: (d) => void (d.budget = undefined) });
  }
  // A gateway keys parameter provision found (shared, hand-made) is left for its owner. One it
  // created is kept too while another deployment reads it: before parameters were per deployment,
  // every --name defaulted to /embedctl/gateway-keys.
  if (dep.gatewayKeys?.createdByUs) {
    const { parameter } = dep.gatewayKeys;
    const users = others.filter((o) => o.name !== dep.name && o.region === dep.region && o.gatewayKeys?.parameter === parameter).map((o) => `"${o.name}"`);
    const forget = (d: DeploymentRecord) => void (d.gatewayKeys = undefined);
    if (users.length) {
      const reason = users.length > 1 ? `deployments ${users.join(', ')} still use it` : `deployment ${users[0]} still uses it`;
      add({ label: `parameter ${parameter}`, verdict: 'shared', state: reason, action: 'keep-gateway-keys', remove: async () => 'gone', forget });
      // Nobody is left to delete it (the others found it, they did not create it).
      s.note = `once no deployment uses ${parameter}: aws ssm delete-parameter --name ${parameter} --region ${dep.region}`;
    } else {
      const p = await describeParameter(aws.ssm, dep.region, parameter);
      add({ label: `parameter ${parameter}`, verdict: judge(Boolean(p), p?.description === gatewayKeysMarker(dep.name)), action: 'delete-gateway-keys', remove: () => deleteParameter(aws.ssm, dep.region, parameter), forget });
    }
  }
  const sc = dep.scale;
  if (sc?.autoScalingGroup) {
    const name = sc.autoScalingGroup;
    const g = await scale.findGroup(name);
    const tags = (g?.Tags ?? []).map((t) => ({ Key: t.Key, Value: t.Value }));
    add({
      label: `auto scaling group ${name}`,
      verdict: judge(Boolean(g), tagsConfirm(tags, dep.name)),
      state: g ? `${g.Instances?.length ?? 0} instance(s)` : undefined,
      action: 'delete-auto-scaling-group',
      remove: async (w, log) => {
        log.info(`deleting Auto Scaling group ${name} and its instances...`);
        return scale.deleteGroup(name, w);
      },
      forget: (d) => void (d.scale!.autoScalingGroup = undefined, d.scale!.scalingPolicy = undefined),
    });
  }
  if (sc?.loadBalancerArn) {
    const arn = sc.loadBalancerArn;
    const name = arn.split('/')[2] ?? arn;
    const lb = await scale.findLoadBalancer(name);
    const verdict = judge(Boolean(lb), tagsConfirm(lb?.tags, dep.name));
    if (sc.listenerArn) {
      const l = sc.listenerArn;
      add({ label: `listener ${l}`, verdict, action: 'delete-listener', remove: () => scale.deleteListener(l), forget: (d) => void (d.scale!.listenerArn = undefined) });
    }
    add({ label: `load balancer ${name}`, verdict, action: 'delete-load-balancer', remove: () => scale.deleteLoadBalancer(arn), forget: (d) => void (d.scale!.loadBalancerArn = undefined, d.scale!.loadBalancerDns = undefined) });
  }
  if (sc?.targetGroupArn) {
    const arn = sc.targetGroupArn;
    const tg = await scale.findTargetGroup(arn.split('/')[1] ?? arn);
    add({ label: `target group ${arn.split('/')[1]}`, verdict: judge(Boolean(tg), tagsConfirm(tg?.tags, dep.name)), action: 'delete-target-group', remove: (w) => scale.deleteTargetGroup(arn, w), forget: (d) => void (d.scale!.targetGroupArn = undefined) });
  }
  if (sc?.launchTemplateId) {
    const id = sc.launchTemplateId;
    const lt = await ec2.findLaunchTemplateById(id);
    add({
      label: `launch template ${id}`,
      verdict: judge(Boolean(lt), tagsConfirm(lt?.Tags, dep.name)),
      action: 'delete-launch-template',
      remove: () => ec2.deleteLaunchTemplate(id),
      forget: (d) => void (d.scale!.launchTemplateId = undefined),
      dryRun: { action: 'ec2:DeleteLaunchTemplate', send: () => ec2.client.send(new DeleteLaunchTemplateCommand({ LaunchTemplateId: id, DryRun: true })) },
    });
  }
  if (dep.instance) {
    const id = dep.instance.id;
    const inst = await ec2.describeInstance(id);
    const state = inst?.State?.Name;
    add({
      label: `instance ${id}`,
      verdict: judge(Boolean(inst) && state !== 'terminated', tagsConfirm(inst?.Tags, dep.name)),
      state: state ?? 'not found',
      action: 'terminate-instance',
      remove: async (w, log) => {
        const r = await ec2.terminate(id);
        if (r === 'gone') return 'gone';
        log.info(`terminating ${id}...`);
        await ec2.waitTerminated(id, w);
        return 'deleted';
      },
      forget: (d) => void (d.instance = undefined),
      dryRun: { action: 'ec2:TerminateInstances', send: () => ec2.client.send(new TerminateInstancesCommand({ InstanceIds: [id], DryRun: true })) },
    });
  }
  if (dep.securityGroup) {
    const id = dep.securityGroup.id;
    const sg = await ec2.describeSecurityGroup(id);
    add({
      label: `security group ${id}`,
      verdict: judge(Boolean(sg), tagsConfirm(sg?.Tags, dep.name)),
      action: 'delete-security-group',
      remove: (w) => ec2.deleteSecurityGroup(id, w),
      forget: (d) => void (d.securityGroup = undefined),
      dryRun: { action: 'ec2:DeleteSecurityGroup', send: () => ec2.client.send(new DeleteSecurityGroupCommand({ GroupId: id, DryRun: true })) },
      // Every instance and the load balancer hold network interfaces in it.
      after: s.items.filter((i) => /^(instance|load balancer|auto scaling group)/.test(i.label)).map((i) => i.label),
    });
  }
  return s;
}

export async function dryRunChecks(s: Survey): Promise<DryRunResult[]> {
  const out: DryRunResult[] = [];
  for (const i of s.items) {
    if (i.verdict !== 'remove' || !i.dryRun) continue;
    try {
      out.push(await s.aws.ec2.dryRun(i.dryRun.action, i.dryRun.send));
    } catch (err) {
      const code = awsErrorCode((err as { cause?: unknown }).cause);
      if (code === 'UnauthorizedOperation' || code === 'AccessDenied') out.push({ action: i.dryRun.action, ok: false, reason: code });
      else throw err;
    }
  }
  return out;
}

const UNTAGGED = 'its tags do not say embedctl:managed=true for this deployment';

/** Removes in dependency order, dropping each resource from the state right after it is gone. */
export async function remove(store: StateStore, s: Survey, w: Waiter, log: Logger): Promise<Outcome> {
  const d = s.dep;
  const o: Outcome = { name: d.name, region: d.region, removed: [], alreadyGone: [], skipped: [], kept: [] };

  if (s.alarms.confirmed.length) {
    await deleteAlarms(s.aws.cw, d.region, s.alarms.confirmed);
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
    log.warn(`alarm ${a} skipped: ${UNTAGGED}`);
    o.skipped.push({ resource: `alarm ${a}`, reason: UNTAGGED });
  }

  const left = new Set<string>();
  for (const i of s.items) {
    const blocker = (i.after ?? []).find((l) => left.has(l));
    if (blocker) {
      o.skipped.push({ resource: i.label, reason: `${blocker} still uses it` });
      left.add(i.label);
      continue;
    }
    if (i.verdict === 'untagged') {
      log.warn(`${i.label} skipped${i.label.startsWith('instance') ? ', not terminated' : ''}: ${UNTAGGED}`);
      o.skipped.push({ resource: i.label, reason: UNTAGGED });
      left.add(i.label);
      continue;
    }
    if (i.verdict === 'shared') {
      log.info(`${i.label} kept: ${i.state}${s.note ? `; ${s.note}` : ''}`);
      o.kept.push({ resource: i.label, reason: i.state ?? 'shared' });
      await store.update(d.name, i.action, () => i.forget(d), { resource: i.label, result: 'kept' });
      continue;
    }
    const r = i.verdict === 'remove' ? await i.remove(w, log) : 'gone';
    (r === 'deleted' ? o.removed : o.alreadyGone).push(i.label);
    await store.update(d.name, i.action, () => i.forget(d), { resource: i.label, result: r });
  }

  const sc = d.scale;
  if (sc && !sc.autoScalingGroup && !sc.loadBalancerArn && !sc.targetGroupArn && !sc.launchTemplateId && !sc.listenerArn) d.scale = undefined;
  if (!d.instance && !d.securityGroup && !d.scale && !d.dashboard && !d.budget && d.alarms.length === 0) {
    await store.update(d.name, 'forget-deployment', (st) => void delete st.deployments[d.name]);
  }
  return o;
}

const verdictText: Record<Verdict, string> = {
  remove: 'will be removed',
  gone: 'already gone',
  untagged: 'NOT embedctl-tagged: will be left alone',
  shared: 'will be kept',
};

export function renderSurvey(s: Survey): string {
  const lines = [`Deployment "${s.dep.name}" in ${s.dep.region}:`];
  for (const i of s.items) lines.push(`  ${i.label}${i.state ? ` (${i.state})` : ''}: ${verdictText[i.verdict]}`);
  for (const a of s.alarms.confirmed) lines.push(`  alarm ${a}: ${verdictText.remove}`);
  for (const a of s.alarms.missing) lines.push(`  alarm ${a}: ${verdictText.gone}`);
  for (const a of s.alarms.untagged) lines.push(`  alarm ${a}: ${verdictText.untagged}`);
  return lines.join('\n') + '\n';
}

export function surveyDoc(s: Survey) {
  return {
    name: s.dep.name,
    region: s.dep.region,
    resources: s.items.map((i) => ({ resource: i.label, verdict: i.verdict, ...(i.state ? { state: i.state } : {}) })),
    alarms: s.alarms,
  };
}

export function renderOutcome(o: Outcome): string {
  const kept = o.kept.length ? `, ${o.kept.length} kept` : '';
  const lines = [`Teardown of "${o.name}" in ${o.region}: ${o.removed.length} removed, ${o.alreadyGone.length} already gone, ${o.skipped.length} skipped${kept}`];
  for (const r of o.removed) lines.push(`  removed  ${r}`);
  for (const r of o.alreadyGone) lines.push(`  gone     ${r}`);
  for (const r of o.kept) lines.push(`  kept     ${r.resource}: ${r.reason}`);
  for (const r of o.skipped) lines.push(`  SKIPPED  ${r.resource}: ${r.reason}`);
  return lines.join('\n') + '\n';
}
