import { performance } from 'node:perf_hooks';
import type { ApplyResult } from '../../adapters/traffic/types.js';
import { planMove, unconfirmedMove, verdict } from '../../core/rollout/machine.js';
import { dwellEndsAt, fmtDuration, stateSummary, timeline } from '../../core/rollout/plan.js';
import type { GateResult, RolloutState } from '../../core/rollout/types.js';
import { ExitCode, RolledBack, UsageError } from '../../errors.js';
import { printJson } from '../../ui/output.js';
import { gateNotes, gateTable, nextStepText, statusText, timelineTable } from '../../ui/rollout.js';
import type { HeldLock } from '../../util/fs.js';
import { buildDriver, chooseDriver, currentDeployment } from './drivers.js';
import { gateError, gatesNow, unconfirmed, type Runner } from './runner.js';
import type { RollbackRequest } from './store.js';

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
  kind: 'noop' | 'blocked' | 'advance' | 'back' | 'reapply';
  state: RolloutState;
  gates: GateResult[];
  applied?: ApplyResult;
  forced?: boolean;
  overridden?: string[];
  from?: number;
  target?: string;
  /** A rollback announced while the driver applied this move: it re-applies 0 % after us. */
  overtakenBy?: RollbackRequest;
}

const describeRollback = (q: RollbackRequest) => `a rollback by ${q.user} (pid ${q.pid} on ${q.host}, since ${q.since}: ${q.reason})`;

/**
 * A rollback announces itself before it moves traffic and does not wait for the lock to do so: a
 * forward move that holds the lock must not write its share over the rollback's 0 %.
 */
async function refuseIfRollingBack(r: Runner, what: string): Promise<void> {
  const [q] = await r.store.pendingRollbacks();
  if (q) {
    throw new RolledBack(`${what}: ${describeRollback(q)} started while this command held the rollout lock; traffic stays with the rollback`, {
      hint: 'nothing was applied; `embedctl rollout status` shows the rollback once it is recorded',
    });
  }
}

export async function move(r: Runner, target: number): Promise<number> {
  const { ctx, opts, log } = r;
  const reason = opts.reason?.trim() || null;
  if (target === 0) return rollback(r, reason ?? 'manual (to 0)', 'rollback');
  if (opts.confirm === false) {
    throw new UsageError('only applies to a rollback (`rollout rollback`, `rollout to 0`, `rollout watch`): a step forward counts once its share is confirmed', {
      field: '--no-confirm',
      hint: 'give the driver a gateway to sample (--nginx-url or --gateway-url, --samples above 0)',
    });
  }
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
    // The gates may have taken minutes: a rollback started meanwhile wins.
    await refuseIfRollingBack(r, `not moving to ${p.to}%`);
    const pending = p.kind === 'reapply' ? unconfirmedMove(state) : undefined;
    log.info(`${pending ? `re-applying ${p.to}% (its move of ${pending.time} was not confirmed)` : `moving ${p.from}% -> ${p.to}%`} self-hosted with the ${driverName} driver (${driver.target}): ${driver.describe(p.to)}`);
    const applied = await driver.apply(p.to, ctx.signal);
    // Recorded as applied either way; a rollback that started during the apply re-applies 0 % once we release the lock.
    const [overtakenBy] = await r.store.pendingRollbacks();
    const action = pending ? pending.action : p.kind === 'back' ? 'back' : state.percent === 0 ? 'set' : 'advance';
    const why = reason ?? (pending ? `re-applied: the move of ${pending.time} was not confirmed` : null);
    const next = r.store.apply(state, r.store.change(ctx.now(), { action, to: p.to, reason: why, forced: p.forced, gates, driver: driverName, target: driver.target, confirmed: applied.confirmed, observedPercent: applied.observedPercent }));
    return { state: next, result: { kind: p.kind, state: next, gates, applied, forced: p.forced, overridden: p.overridden, from: p.from, target: driver.target, overtakenBy } };
  });

  if (outcome.overtakenBy) {
    throw new RolledBack(`applied ${target}% self-hosted, but ${describeRollback(outcome.overtakenBy)} started while it applied; the rollback puts 0% back once this command released the lock`, {
      hint: '`embedctl rollout status` shows the rollback once it is recorded',
    });
  }

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
      action: 'move', moved: true, reapplied: outcome.kind === 'reapply', from: outcome.from, to: target, forced: outcome.forced, overridden: outcome.overridden, reason,
      driver: driverName, target: outcome.target, confirmed: a.confirmed, observedPercent: a.observedPercent, detail: a.detail,
      verdict: outcome.gates.length ? verdict(outcome.gates) : null, gates: outcome.gates, state: stateSummary(outcome.state, ctx.now()),
    });
  } else {
    if (outcome.gates.length) ctx.stdout.write(gateTable(outcome.gates));
    ctx.stdout.write(`${outcome.kind === 'reapply' ? `re-applied ${target}%` : `${outcome.from}% -> ${target}%`} self-hosted (${driverName}: ${a.detail})\n`);
    const end = dwellEndsAt(outcome.state);
    const nextStep = outcome.state.steps[outcome.state.stepIndex + 1];
    if (end && nextStep !== undefined) ctx.stdout.write(`next step ${nextStep}% not before ${end.toISOString()}\n`);
  }
  return unconfirmed(a, target, { driver: driverName });
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
    const change = p.kind === 'noop' ? `already at ${p.to}%` : p.kind === 'reapply' ? `re-apply ${p.to}% (its move was not confirmed)` : `${p.from}% -> ${p.to}%`;
    ctx.stdout.write(`dry run: ${change}${p.forced ? ` (forced: ${p.overridden.join('; ')})` : ''}; gates ${v}${driver ? `; would ${driver.describe(p.to)}` : ''}\n`);
  }
  return v === 'pass' ? ExitCode.ok : ExitCode.gateFailed;
}

/**
 * The emergency path (issue 14): traffic goes to 0 % FIRST, whatever state the files are in, and
 * is recorded afterwards. A stale lock is taken over; a live holder does not delay the move (0 %
 * is always safe) but the record waits for it; an unreadable or invalid rollout.json is moved
 * aside and a fresh state records the rollback. Every repair is said and kept in the history.
 *
 * The rollback is announced (store.requestRollback) before it moves anything, so a forward move
 * holding the lock does not apply its share over it; one already applying when the rollback came
 * may still have, so a rollback that had to wait for the lock applies and confirms 0 % again
 * before it records it.
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
  const request = await store.requestRollback(reason, ctx.now()).catch((err: unknown) => {
    log.warn(`could not announce the rollback to other rollout commands (${(err as Error).message}); rolling back anyway`);
    return undefined;
  });
  let lock: HeldLock | undefined;
  try {
    let lockProblem: string | undefined;
    try {
      lock = await store.lock(kind);
    } catch (err) {
      lockProblem = (err as Error).message;
    }
    const repaired: string[] = lock ? lock.tookOver.map((why) => `took over a stale lock (${why})`) : [];
    log.info(`rolling back to 0% self-hosted with the ${driverName} driver (${driver.target}): ${driver.describe(0)}`);
    let applied: ApplyResult | undefined;
    let firstError: string | undefined;
    try {
      applied = await driver.apply(0, undefined);
    } catch (err) {
      // The holder may be moving the same split right now: wait for it, then try again.
      if (lock) throw err;
      firstError = (err as Error).message;
    }
    let reapplied = false;
    if (!lock) {
      log.warn(
        applied
          ? `traffic is at 0%; waiting for the other rollout command to record it (${lockProblem})`
          : `could not apply 0% yet (${firstError}); waiting for the other rollout command (${lockProblem}), then applying it again`,
      );
      lock = await store.lock(kind, 60_000);
      repaired.push(...lock.tookOver.map((why) => `took over a stale lock (${why})`));
      // The holder may have applied its own share after our 0 % (a forward move already past its
      // last check): 0 % again, confirmed again, before it is recorded.
      log.info(`applying 0% again now that the other command is done: ${driver.describe(0)}`);
      applied = await driver.apply(0, undefined);
      reapplied = true;
    }
    const a = applied!;
    const durationMs = Math.round(performance.now() - t0);
    const detail = reapplied ? `applied again after waiting for the lock: ${a.detail}` : a.detail;
    const now = await store.tolerant();
    let base = now.state;
    if (!base) {
      if (now.problem) repaired.push(`moved the unusable state file aside to ${await store.setAside(ctx.now())} (${now.problem.split(';')[0]})`);
      base = store.fresh(driverName);
    }
    const from = now.state?.percent ?? before.state?.percent ?? null;
    const c = store.change(ctx.now(), { action: kind, to: 0, reason, gates, driver: driverName, target: driver.target, confirmed: a.confirmed, observedPercent: a.observedPercent, durationMs, ...(repaired.length ? { repaired } : {}) });
    const next = store.apply(base, c);
    if (from !== null && from !== base.percent) next.history[next.history.length - 1]!.from = from;
    await store.save(next, base);
    const doc = {
      action: kind, from, to: 0, reason, driver: driverName, target: driver.target, confirmed: a.confirmed, observedPercent: a.observedPercent,
      detail, reapplied, durationMs, repaired, triggers: gates.filter((g) => g.status === 'fail' && g.rollbackTrigger).map((g) => g.name), gates, state: stateSummary(next, ctx.now()),
    };
    if (opts.json) printJson(ctx, 'rollout', doc);
    else {
      ctx.stdout.write(`rolled back ${from ?? '?'}% -> 0% self-hosted in ${fmtDuration(durationMs)} (${reason}; ${detail})\n`);
      for (const what of repaired) ctx.stdout.write(`repaired: ${what}\n`);
    }
    const code = unconfirmed(a, 0, { driver: driverName, acceptUnconfirmed: opts.confirm === false });
    if (a.confirmed === null) log.warn(`0% is applied but not confirmed (${a.detail}); recorded as unconfirmed (--no-confirm)`);
    return code;
  } finally {
    // Withdrawn under the lock, after the record: a forward move waiting for it sees the 0 % state.
    if (request) await store.withdrawRollback(request).catch(() => undefined);
    await lock?.release();
  }
}
