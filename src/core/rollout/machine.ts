import { dwellEndsAt, fmtDuration, stepIndexOf } from './plan.js';
import type { DriverName, GateResult, GateStatus, HistoryAction, HistoryEntry, RolloutState } from './types.js';

/**
 * The rollout state machine. It only decides; the command asks the driver to move traffic and
 * writes the state. Rules (Argo Rollouts' canary steps, Flagger's analysis):
 * - forward one step at a time, and only after the current step's dwell;
 * - --force with a reason lifts those two rules, never a failed or inconclusive gate;
 * - moving back (or rolling back) is always allowed: less exposure is always safe;
 * - a paused rollout does not move forward until --resume; a rollback does not pause (the runbook
 *   restarts with --percent 10 once the cause is fixed), it is recorded in lastRollback and history;
 * - a step is done only once the driver confirmed its share: until then its dwell has not started,
 *   the same target (or `next`) re-applies it, and nothing moves further forward.
 */
export type Refusal = { ok: false; exit: 'usage' | 'gate'; message: string; hint?: string };

export interface MovePlan {
  ok: true;
  /** reapply: the current share again, because its move was never confirmed. */
  kind: 'advance' | 'back' | 'noop' | 'reapply';
  from: number;
  to: number;
  /** The rules --force lifted, e.g. ["skips 2 steps", "dwell ends in 3d 4h"]. */
  overridden: string[];
  forced: boolean;
  /** Forward moves are gated; moves back are not. */
  needsGates: boolean;
}

export interface MoveRequest {
  target: number;
  force: boolean;
  reason: string | null;
  now: Date;
}

const MOVES: readonly HistoryAction[] = ['set', 'advance', 'back', 'rollback', 'auto-rollback'];

/**
 * The move that put the rollout on its current (non-zero) share when the driver did not confirm
 * that share (false: observed otherwise; null: could not tell). Entries of older versions, which
 * did not record `confirmed`, count as confirmed.
 */
export function unconfirmedMove(state: RolloutState): HistoryEntry | undefined {
  if (state.percent === 0) return undefined;
  const last = state.history.findLast((h) => MOVES.includes(h.action));
  return last && last.to === state.percent && (last.confirmed === false || last.confirmed === null) ? last : undefined;
}

export function targetOfNext(state: RolloutState): number | Refusal {
  // An unconfirmed step is not done: `next` finishes it (re-applies and confirms) first.
  if (unconfirmedMove(state)) return state.percent;
  const next = state.steps[state.stepIndex + 1];
  if (next === undefined) return { ok: false, exit: 'usage', message: `the rollout is complete (${state.percent}% self-hosted); there is no next step` };
  return next;
}

export function planMove(state: RolloutState, req: MoveRequest): MovePlan | Refusal {
  const { target } = req;
  const from = state.percent;
  if (target !== 0 && !state.steps.includes(target)) {
    return {
      ok: false,
      exit: 'usage',
      message: `${target}% is not a step of the plan (${state.steps.join(', ')})`,
      hint: 'use a plan step, or change the plan with --steps / rollout.steps in embedctl.yaml',
    };
  }
  const pending = unconfirmedMove(state);
  // Re-applying a forward move is gated and held by a pause like the move itself; a move back is not.
  const pendingForward = pending !== undefined && pending.action !== 'back';
  if (target === from && !pending) return { ok: true, kind: 'noop', from, to: target, overridden: [], forced: false, needsGates: false };
  if (target < from || (target === from && !pendingForward)) {
    return { ok: true, kind: target === from ? 'reapply' : 'back', from, to: target, overridden: [], forced: false, needsGates: false };
  }

  if (state.paused) {
    return {
      ok: false,
      exit: 'usage',
      message: `the rollout is paused (${state.pausedReason ?? 'no reason given'}); it does not move forward`,
      hint: 'fix the cause, then run `embedctl rollout resume`',
    };
  }
  if (target === from) return { ok: true, kind: 'reapply', from, to: target, overridden: [], forced: false, needsGates: true };
  if (pending) {
    // Not lifted by --force: where traffic really is, is unknown.
    return {
      ok: false,
      exit: 'usage',
      message: `the ${from}% step is not done: its move (${pending.time}) was never confirmed${pending.confirmed === null ? ' (the driver could not tell)' : ''}, so nothing moves further forward`,
      hint: `re-run \`embedctl rollout to ${from}\` (it re-applies and confirms), or \`embedctl rollout rollback\``,
    };
  }
  const targetIdx = state.steps.indexOf(target);
  const blocked: string[] = [];
  const skipped = targetIdx - (state.stepIndex + 1);
  if (skipped > 0) {
    blocked.push(`moving ${from}% -> ${target}% skips ${skipped} step${skipped > 1 ? 's' : ''} (next step is ${state.steps[state.stepIndex + 1]}%)`);
  }
  const dwellEnd = dwellEndsAt(state);
  if (dwellEnd && req.now.getTime() < dwellEnd.getTime()) {
    blocked.push(
      `the ${from}% step's dwell ends ${dwellEnd.toISOString()} (in ${fmtDuration(dwellEnd.getTime() - req.now.getTime())})`,
    );
  }
  if (blocked.length > 0 && !req.force) {
    return {
      ok: false,
      exit: 'usage',
      message: `refused: ${blocked.join('; ')}`,
      hint: '--force --reason "<why>" lifts the step and dwell rules (gates still apply)',
    };
  }
  return { ok: true, kind: 'advance', from, to: target, overridden: blocked, forced: blocked.length > 0, needsGates: true };
}

export type Verdict = GateStatus;

/** fail beats inconclusive beats pass: one failing gate is enough to stop. */
export function verdict(gates: GateResult[]): Verdict {
  if (gates.some((g) => g.status === 'fail')) return 'fail';
  if (gates.some((g) => g.status === 'inconclusive')) return 'inconclusive';
  return 'pass';
}

/** Failed gates that pull traffic back under --watch (cost never does: it does not hurt users). */
export function rollbackTriggers(gates: GateResult[]): GateResult[] {
  return gates.filter((g) => g.status === 'fail' && g.rollbackTrigger);
}

/** What a command decided: a history entry before it is dated and given its starting point. */
export type Change = Omit<HistoryEntry, 'time' | 'from'> & { now: Date };

/** The next state after a change, with its history entry appended. Never mutates `state`. */
export function applyChange(state: RolloutState, c: Change): RolloutState {
  const time = c.now.toISOString();
  const { now: _now, ...decided } = c;
  // JSON drops the optional fields a change left undefined.
  const entry: HistoryEntry = { time, from: state.percent, ...decided };
  const next: RolloutState = { ...state, history: [...state.history, entry], driver: c.driver };
  if (c.gates.length > 0) {
    next.lastGates = c.gates;
    next.lastGatesAt = time;
  }
  if (c.action === 'pause') {
    next.paused = true;
    next.pausedReason = c.reason ?? 'paused by hand';
    return next;
  }
  if (c.action === 'resume') {
    next.paused = false;
    next.pausedReason = null;
    return next;
  }
  // A step's dwell starts when its share is confirmed, not when it was merely written.
  const confirmed = c.confirmed !== false && c.confirmed !== null;
  if (c.to !== state.percent) {
    next.percent = c.to;
    next.stepIndex = stepIndexOf(state.steps, c.to);
    next.stepStartedAt = c.to === 0 || !confirmed ? null : time;
    if (state.percent === 0 && c.to > 0) next.startedAt = time;
  } else if (c.to > 0 && unconfirmedMove(state)) {
    next.stepStartedAt = confirmed ? time : null;
  }
  if (c.action === 'rollback' || c.action === 'auto-rollback') {
    next.lastRollback = { at: time, reason: c.reason ?? 'manual', durationMs: c.durationMs ?? 0, from: state.percent };
  }
  return next;
}
