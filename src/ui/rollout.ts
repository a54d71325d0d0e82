import { fmtValue } from '../core/rollout/gates.js';
import { unconfirmedMove, verdict } from '../core/rollout/machine.js';
import { fmtDuration, timeline, type StateSummary } from '../core/rollout/plan.js';
import type { GateResult, RolloutState } from '../core/rollout/types.js';
import { table } from './output.js';

/** Text renderers of `embedctl rollout`: the command decides, these only lay it out. */

export function gateTable(gates: GateResult[]): string {
  return table(
    ['gate', 'value', 'limit', 'target', 'status', 'age', 'source'],
    gates.map((g) => [
      g.name,
      fmtValue(g.name, g.value),
      `${g.direction === 'max' ? '<=' : '>='} ${fmtValue(g.name, g.threshold)}`,
      fmtValue(g.name, g.target),
      g.status === 'pass' && g.onTarget === false ? 'pass (off target)' : g.status,
      g.ageSeconds === null ? '-' : fmtDuration(g.ageSeconds * 1000),
      g.source,
    ]),
  );
}

export function gateNotes(gates: GateResult[]): string {
  return gates
    .filter((g) => g.status !== 'pass' && g.note)
    .map((g) => `  ${g.name}: ${g.note}\n`)
    .join('');
}

export function timelineTable(state: RolloutState, now: Date): string {
  return table(
    ['step', 'self-hosted', 'planned', 'reached', 'state'],
    timeline(state, now).map((t) => [t.step, `${t.percent}%`, t.plannedAt.slice(0, 10), t.actualAt?.slice(0, 16).replace('T', ' ') ?? '-', t.state]),
  );
}

/** What `rollout status` says comes next, with the command that does it. */
export function nextStepText(state: RolloutState, s: StateSummary): string {
  if (unconfirmedMove(state)) return `the ${state.percent}% move was not confirmed, so its dwell has not started: embedctl rollout to ${state.percent} (re-applies and confirms)`;
  if (s.nextPercent === null) return `complete: ${state.percent}% self-hosted`;
  if (state.paused) return `paused (${state.pausedReason}): embedctl rollout resume`;
  if (s.dwellRemainingMs > 0) return `${s.nextPercent}% after ${s.dwellEndsAt} (in ${fmtDuration(s.dwellRemainingMs)}), when gates pass: embedctl rollout next`;
  return `${s.nextPercent}% now, when gates pass: embedctl rollout check && embedctl rollout next`;
}

export function statusText(state: RolloutState, s: StateSummary, now: Date): string {
  let out = `self-hosted: ${state.percent}% (step ${state.stepIndex + 1} of ${state.steps.length})${state.paused ? ` PAUSED: ${state.pausedReason}` : ''}\n`;
  out += timelineTable(state, now);
  if (s.dwellEndsAt) out += `dwell: ends ${s.dwellEndsAt}${s.dwellRemainingMs > 0 ? ` (in ${fmtDuration(s.dwellRemainingMs)})` : ' (over)'}\n`;
  if (state.lastGates.length) out += `gates at ${state.lastGatesAt}: ${verdict(state.lastGates)}\n${gateTable(state.lastGates)}`;
  else out += 'gates: not evaluated yet (embedctl rollout check)\n';
  if (state.lastRollback) out += `last rollback: ${state.lastRollback.at} from ${state.lastRollback.from}% in ${fmtDuration(state.lastRollback.durationMs)} (${state.lastRollback.reason})\n`;
  out += `next: ${nextStepText(state, s)}\n`;
  const history = state.history.slice(-10);
  if (history.length) {
    out +=
      '\n' +
      table(
        ['time', 'user', 'action', 'from', 'to', 'reason'],
        history.map((h) => [h.time.slice(0, 19).replace('T', ' '), h.user, h.forced ? `${h.action} (forced)` : h.action, `${h.from}%`, `${h.to}%`, h.reason ?? '']),
      );
  }
  return out;
}
