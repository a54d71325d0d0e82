import { performance } from 'node:perf_hooks';
import type { ApplyResult } from '../../adapters/traffic/types.js';
import { planMove, verdict } from '../../core/rollout/machine.js';
import { dwellEndsAt, fmtDuration, stateSummary, timeline } from '../../core/rollout/plan.js';
import type { GateResult, RolloutState } from '../../core/rollout/types.js';
import { ExitCode, UsageError } from '../../errors.js';
import { printJson } from '../../ui/output.js';
import { gateNotes, gateTable, nextStepText, statusText, timelineTable } from '../../ui/rollout.js';
import type { HeldLock } from '../../util/fs.js';
import { buildDriver, chooseDriver, currentDeployment } from './drivers.js';
import { gateError, gatesNow, unconfirmed, type Runner } from './runner.js';

export async function showPlan(r: Runner): Promise<number> {
  const { ctx } = r;
  const { state } = await r.store.current();
  if (r.opts.json) {
    printJson(ctx, 'rollout', { action: 'plan', steps: state.steps, dwellMs: state.dwellMs, timeline: timeline(state, ctx.now()), state: stateSummary(state, ctx.now()) });
    return ExitCode.ok;
  }
  ctx.stdout.write(timelineTable(state, ctx.now()));
  ctx.stdout.write(`one step per ${fmtDuration(state.dwellMs)}; each move needs passing gates (error rate, p95, consistency, overlap, cost)\n`);
  return ExitCode.ok;
}

export async function showStatus(r: Runner): Promise<number> {
  const { ctx } = r;
  const { state, exists } = await r.store.current();
  const now = ctx.now();
  const summary = stateSummary(state, now);
  if (r.opts.json) {
    printJson(ctx, 'rollout', { action: 'status', started: exists, state: summary, timeline: timeline(state, now), lastGates: state.lastGates, lastGatesAt: state.lastGatesAt, next: nextStepText(state, summary), history: state.history.slice(-10) });
  } else ctx.stdout.write(statusText(state, summary, now));
  return ExitCode.ok;
}

export async function check(r: Runner): Promise<number> {
  const { ctx, opts } = r;
  const { state, exists } = await r.store.current();
  const { gates } = await gatesNow(r);
  const v = verdict(gates);
  // Recorded so `status` shows the latest verdict; a fresh project is not started by a check.
  if (exists && !opts.dryRun) await r.store.mutate('check', async (s) => ({ state: { ...s, lastGates: gates, lastGatesAt: ctx.now().toISOString() }, result: undefined }));
  if (opts.json) printJson(ctx, 'rollout', { action: 'check', verdict: v, gates, state: stateSummary(state, ctx.now()) });
  else ctx.stdout.write(gateTable(gates) + gateNotes(gates) + `verdict: ${v}\n`);
  if (v !== 'pass') throw gateError(gates, `at ${state.percent}%`);
  return ExitCode.ok;
}

export async function pauseResume(r: Runner, act: 'pause' | 'resume'): Promise<number> {
  const { ctx, opts } = r;
  const reason = opts.reason?.trim() || null;
  if (opts.dryRun) {
    if (opts.json) printJson(ctx, 'rollout', { action: act, dryRun: true, reason });
    else ctx.stdout.write(`dry run: would ${act} the rollout\n`);
    return ExitCode.ok;
  }
  const next = await r.store.mutate(act, async (state) => {
    if (state.paused === (act === 'pause')) return { result: state };
    const s = r.store.apply(state, r.store.change(ctx.now(), { action: act, to: state.percent, reason, driver: state.driver }));
    return { state: s, result: s };
  });
  if (opts.json) printJson(ctx, 'rollout', { action: act, reason, state: stateSummary(next, ctx.now()) });
  else ctx.stdout.write(act === 'pause' ? `paused at ${next.percent}% (${next.pausedReason}); \`embedctl rollout resume\` lifts it\n` : `resumed at ${next.percent}%\n`);
  return ExitCode.ok;
}

interface MoveOutcome {
  kind: 'noop' | 'blocked' | 'advance' | 'back';
  state: RolloutState;
  gates: GateResult[];
  applied?: ApplyResult;
  forced?: boolean;
  overridden?: string[];
  from?: number;
  target?: string;
}

export async function move(r: Runner, target: number): Promise<number> {
  const { ctx, opts, log } = r;
  const reason = opts.reason?.trim() || null;
  if (target === 0) return rollback(r, reason ?? 'manual (to 0)', 'rollback');
  if (opts.dryRun) return dryRunMove(r, target, reason);

  const outcome = await r.store.mutate<MoveOutcome>(`to ${target}`, async (state) => {
    const p = planMove(state, { target, force: Boolean(opts.force), reason, now: ctx.now() });
    if (!p.ok) throw new UsageError(p.message, { hint: p.hint });
    if (p.kind === 'noop') return { result: { kind: 'noop', state, gates: [] } };
    let gates: GateResult[] = [];
    if (p.needsGates) {
      gates = (await gatesNow(r)).gates;
      if (verdict(gates) !== 'pass') {
        // Recorded so `status` shows why the rollout is holding.
        const held = { ...state, lastGates: gates, lastGatesAt: ctx.now().toISOString() };
        return { state: held, result: { kind: 'blocked', state: held, gates } };
      }
    }
    if (p.forced) log.warn(`forced (${reason}): ${p.overridden.join('; ')}`);
    const deployment = await currentDeployment(ctx, opts);
    const driverName = chooseDriver(r.settings, state, deployment);
    const driver = buildDriver(ctx, opts, driverName, deployment);
    log.info(`moving ${p.from}% -> ${p.to}% self-hosted with the ${driverName} driver (${driver.target}): ${driver.describe(p.to)}`);
    const applied = await driver.apply(p.to, ctx.signal);
    const action = p.kind === 'back' ? 'back' : state.percent === 0 ? 'set' : 'advance';
    const next = r.store.apply(state, r.store.change(ctx.now(), { action, to: p.to, reason, forced: p.forced, gates, driver: driverName, target: driver.target, confirmed: applied.confirmed, observedPercent: applied.observedPercent }));
    return { state: next, result: { kind: p.kind, state: next, gates, applied, forced: p.forced, overridden: p.overridden, from: p.from, target: driver.target } };
  });

  if (outcome.kind === 'blocked') {
    if (opts.json) printJson(ctx, 'rollout', { action: 'move', moved: false, from: outcome.state.percent, to: target, verdict: verdict(outcome.gates), gates: outcome.gates, state: stateSummary(outcome.state, ctx.now()) });
    else ctx.stdout.write(gateTable(outcome.gates) + gateNotes(outcome.gates));
    throw gateError(outcome.gates, `not moving to ${target}%`);
  }
  if (outcome.kind === 'noop') {
    if (opts.json) printJson(ctx, 'rollout', { action: 'move', moved: false, from: target, to: target, state: stateSummary(outcome.state, ctx.now()) });
    else ctx.stdout.write(`already at ${target}% self-hosted; nothing to do\n`);
    return ExitCode.ok;
  }
  const a = outcome.applied!;
  const driverName = outcome.state.driver;
  if (opts.json) {
    printJson(ctx, 'rollout', {
      action: 'move', moved: true, from: outcome.from, to: target, forced: outcome.forced, overridden: outcome.overridden, reason,
      driver: driverName, target: outcome.target, confirmed: a.confirmed, observedPercent: a.observedPercent, detail: a.detail,
      verdict: outcome.gates.length ? verdict(outcome.gates) : null, gates: outcome.gates, state: stateSummary(outcome.state, ctx.now()),
    });
  } else {
    if (outcome.gates.length) ctx.stdout.write(gateTable(outcome.gates));
    ctx.stdout.write(`${outcome.from}% -> ${target}% self-hosted (${driverName}: ${a.detail})\n`);
    const end = dwellEndsAt(outcome.state);
    const nextStep = outcome.state.steps[outcome.state.stepIndex + 1];
    if (end && nextStep !== undefined) ctx.stdout.write(`next step ${nextStep}% not before ${end.toISOString()}\n`);
  }
  return unconfirmed(a, target);
}

async function dryRunMove(r: Runner, target: number, reason: string | null): Promise<number> {
  const { ctx, opts } = r;
  const { state } = await r.store.current();
  const p = planMove(state, { target, force: Boolean(opts.force), reason, now: ctx.now() });
  if (!p.ok) throw new UsageError(p.message, { hint: p.hint });
  const gates = p.needsGates ? (await gatesNow(r)).gates : [];
  const v = p.needsGates ? verdict(gates) : 'pass';
  const deployment = await currentDeployment(ctx, opts);
  const driverName = chooseDriver(r.settings, state, deployment);
  const driver = p.kind === 'noop' ? undefined : buildDriver(ctx, opts, driverName, deployment);
  if (opts.json) {
    printJson(ctx, 'rollout', { action: 'move', dryRun: true, from: p.from, to: p.to, kind: p.kind, wouldMove: p.kind !== 'noop' && v === 'pass', forced: p.forced, overridden: p.overridden, reason, driver: driverName, target: driver?.target ?? null, wouldDo: driver?.describe(p.to) ?? null, verdict: v, gates });
  } else {
    if (gates.length) ctx.stdout.write(gateTable(gates) + gateNotes(gates));
    ctx.stdout.write(`dry run: ${p.kind === 'noop' ? `already at ${p.to}%` : `${p.from}% -> ${p.to}%`}${p.forced ? ` (forced: ${p.overridden.join('; ')})` : ''}; gates ${v}${driver ? `; would ${driver.describe(p.to)}` : ''}\n`);
  }
  return v === 'pass' ? ExitCode.ok : ExitCode.gateFailed;
}

/**
 * The emergency path (issue 14): traffic goes to 0 % FIRST, whatever state the files are in, and
 * is recorded afterwards. A stale lock is taken over; a live holder does not delay the move (0 %
 * is always safe) but the record waits for it; an unreadable or invalid rollout.json is moved
 * aside and a fresh state records the rollback. Every repair is said and kept in the history.
 */
export async function rollback(r: Runner, reason: string, kind: 'rollback' | 'auto-rollback', gates: GateResult[] = []): Promise<number> {
  const { ctx, opts, log, store } = r;
  const before = await store.tolerant();
  // Nothing that is merely damaged may stop a rollback: a bad state.json only loses its default.
  const deployment = await currentDeployment(ctx, opts).catch((err: unknown) => {
    if (opts.deployment || opts.driver === 'ssm') throw err;
    return undefined;
  });
  const driverName = chooseDriver(r.settings, before.state, deployment);
  const driver = buildDriver(ctx, opts, driverName, deployment);
  if (opts.dryRun) {
    const from = before.state?.percent ?? null;
    if (opts.json) printJson(ctx, 'rollout', { action: 'rollback', dryRun: true, from, to: 0, reason, driver: driverName, target: driver.target, wouldDo: driver.describe(0), problem: before.problem ?? null });
    else ctx.stdout.write(`dry run: ${from ?? '?'}% -> 0% self-hosted (${reason}); would ${driver.describe(0)}${before.problem ? `; would repair: ${before.problem}` : ''}\n`);
    return ExitCode.ok;
  }
  // The clock starts at the decision and stops when the driver confirms 0 %: the number the
  // runbook's five-minute budget is about.
  const t0 = performance.now();
  let lock: HeldLock | undefined;
  let lockProblem: string | undefined;
  try {
    lock = await store.lock(kind);
  } catch (err) {
    lockProblem = (err as Error).message;
  }
  const repaired: string[] = lock ? lock.tookOver.map((why) => `took over a stale lock (${why})`) : [];
  try {
    log.info(`rolling back to 0% self-hosted with the ${driverName} driver (${driver.target}): ${driver.describe(0)}`);
    const applied = await driver.apply(0, undefined);
    const durationMs = Math.round(performance.now() - t0);
    if (!lock) {
      log.warn(`traffic is at 0%; waiting for the other rollout command to record it (${lockProblem})`);
      lock = await store.lock(kind, 60_000);
      repaired.push(...lock.tookOver.map((why) => `took over a stale lock (${why})`));
    }
    const now = await store.tolerant();
    let base = now.state;
    if (!base) {
      if (now.problem) repaired.push(`moved the unusable state file aside to ${await store.setAside(ctx.now())} (${now.problem.split(';')[0]})`);
      base = store.fresh(driverName);
    }
    const from = now.state?.percent ?? before.state?.percent ?? null;
    const c = store.change(ctx.now(), { action: kind, to: 0, reason, gates, driver: driverName, target: driver.target, confirmed: applied.confirmed, observedPercent: applied.observedPercent, durationMs, ...(repaired.length ? { repaired } : {}) });
    const next = store.apply(base, c);
    if (from !== null && from !== base.percent) next.history[next.history.length - 1]!.from = from;
    await store.save(next, base);
    const doc = {
      action: kind, from, to: 0, reason, driver: driverName, target: driver.target, confirmed: applied.confirmed, observedPercent: applied.observedPercent,
      detail: applied.detail, durationMs, repaired, triggers: gates.filter((g) => g.status === 'fail' && g.rollbackTrigger).map((g) => g.name), gates, state: stateSummary(next, ctx.now()),
    };
    if (opts.json) printJson(ctx, 'rollout', doc);
    else {
      ctx.stdout.write(`rolled back ${from ?? '?'}% -> 0% self-hosted in ${fmtDuration(durationMs)} (${reason}; ${applied.detail})\n`);
      for (const what of repaired) ctx.stdout.write(`repaired: ${what}\n`);
    }
    return unconfirmed(applied, 0);
  } finally {
    await lock?.release();
  }
}
