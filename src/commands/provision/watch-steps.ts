import { alarmName, budgetName, buildAlarms, buildBudget, buildDashboard, type AlarmTarget } from '../../core/provision-monitoring.js';
import { DEPLOYMENT_TAG } from '../../core/provision-plan.js';
import { autoScalingGroupName } from '../../core/provision-scale.js';
import { putAlarms, putDashboard } from '../../adapters/aws/alarms.js';
import { budgetIsOurs, createBudget, findBudget } from '../../adapters/aws/budgets.js';
import { activateCostTags, activateHint, COST_TAGS, costTagStatus } from '../../adapters/aws/cost-explorer.js';
import { UsageError } from '../../errors.js';
import { confirmOrRefuse } from '../../ui/prompts.js';
import { step, type StepEnv } from './steps.js';

/** What provision sets up to watch the deployment: alarms, a dashboard, a budget, cost tags. */

function alarmTarget(e: StepEnv): AlarmTarget {
  return e.o.scale ? { autoScalingGroupName: autoScalingGroupName(e.o.name) } : e.dep.instance!.id;
}

/** PutMetricAlarm creates or replaces by name: nothing to check; names go into the state first. */
export const alarmsStep = step<string[]>({
  name: 'alarms',
  async check() {
    return undefined;
  },
  async create(e) {
    const alarms = buildAlarms(e.o, alarmTarget(e));
    const names = alarms.map((a) => a.AlarmName!);
    // Recorded before they exist, so teardown finds even a half-finished set.
    await e.store.update(e.o.name, 'alarms', () => void (e.dep.alarms = [...new Set([...e.dep.alarms, ...names])]), { names });
    await putAlarms(e.aws.cw, e.o.region, alarms);
    return names;
  },
  async record(e, names) {
    e.log.info(`alarms set: ${names.map((n) => n.replace(alarmName(e.o.name, ''), '')).join(', ')}`);
  },
});

export const dashboardStep = step<string>({
  name: 'dashboard',
  async check() {
    return undefined;
  },
  async create(e) {
    const scale = e.dep.scale;
    const lb = scale?.loadBalancerArn?.split(':loadbalancer/')[1];
    const tg = scale?.targetGroupArn?.split(':')[5];
    const input = buildDashboard(e.o, { region: e.o.region, target: alarmTarget(e), loadBalancer: lb, targetGroup: tg });
    await e.store.update(e.o.name, 'dashboard', () => void (e.dep.dashboard = input.DashboardName));
    await putDashboard(e.aws.cw, e.o.region, input);
    return input.DashboardName!;
  },
  async record(e, name) {
    e.log.info(`dashboard: https://${e.o.region}.console.aws.amazon.com/cloudwatch/home?region=${e.o.region}#dashboards/dashboard/${name}`);
  },
});

export const budgetStep = step<string>({
  name: 'budget',
  async check(e) {
    if (e.o.monthlyBudgetUsd === undefined) {
      e.log.warn(`no monthly budget: no list price known for ${e.o.instanceType}; pass --monthly-budget USD`);
      return '';
    }
    if (!e.accountId) {
      e.log.warn('no monthly budget: the account id is unknown (the security group did not name its owner)');
      return '';
    }
    const existing = await findBudget(e.aws.budgets, e.accountId, budgetName(e.o.name));
    if (existing && !budgetIsOurs(existing, `user:${DEPLOYMENT_TAG}$${e.o.name}`)) {
      throw new UsageError(`a budget named ${budgetName(e.o.name)} exists and does not filter on this deployment's tag`, {
        field: '--name',
        hint: 'pick another --name; embedctl never changes resources it did not create',
      });
    }
    return existing ? budgetName(e.o.name) : undefined;
  },
  async create(e) {
    const input = buildBudget(e.o, { accountId: e.accountId!, amountUsd: e.o.monthlyBudgetUsd! });
    await createBudget(e.aws.budgets, input);
    return input.Budget!.BudgetName!;
  },
  async record(e, name, found) {
    if (!name) return;
    if (!e.dep.budget) await e.store.update(e.o.name, found ? 'reuse-budget' : 'create-budget', () => void (e.dep.budget = { name, accountId: e.accountId! }), { name });
    e.log.info(`budget ${name}: $${e.o.monthlyBudgetUsd}/month`);
  },
});

/**
 * Cost Explorer (cost-report --actual) and the budget only see the tags once they are active
 * cost-allocation tags. Offered, never done silently: a flag without a terminal, a question with one.
 */
export const costTagsStep = step<'active' | 'activated' | 'left'>({
  name: 'cost-tags',
  async check(e) {
    const st = await costTagStatus(e.aws.ce);
    return st.status === 'active' ? 'active' : undefined;
  },
  async create(e) {
    let go = e.o.activateCostTags;
    if (!go && e.ctx.isTTY) {
      try {
        await confirmOrRefuse(e.ctx, {
          message: `Activate ${COST_TAGS.join(' and ')} as cost-allocation tags (so cost-report --actual and the budget see these resources)?`,
          noTerminal: 'no terminal',
          hint: '',
          refused: 'not activated',
        });
        go = true;
      } catch (err) {
        if (!(err instanceof UsageError)) throw err;
      }
    }
    if (!go) {
      e.log.warn(`the cost-allocation tags are not active, so cost-report --actual and the budget show $0; ${activateHint(COST_TAGS)}`);
      return 'left';
    }
    const refused = await activateCostTags(e.aws.ce, COST_TAGS);
    // A tag billing has not seen yet cannot be activated: it shows up within a day of the first tagged resource.
    for (const r of refused) e.log.warn(`cost-allocation tag ${r.key} not activated yet (${r.reason}); re-run provision --activate-cost-tags tomorrow`);
    return 'activated';
  },
  async record(e, v) {
    if (v === 'activated') e.log.info(`cost-allocation tags activated: ${COST_TAGS.join(', ')}`);
  },
});
