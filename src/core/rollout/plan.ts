import type { RolloutState, DriverName } from './types.js';
import { STATE_VERSION } from './types.js';

export const DEFAULT_STEPS = [10, 25, 50, 75, 100];
export const DAY_MS = 24 * 3600 * 1000;
export const DEFAULT_DWELL_MS = 7 * DAY_MS;

/** The one duration grammar (common/values.ts): rollout, status and load-test read the same words. */
export { parseDuration } from '../../../common/values.js';

export function fmtDuration(ms: number): string {
  const neg = ms < 0;
  let left = Math.abs(ms);
  if (left < 1000) return `${neg ? '-' : ''}${Math.round(left)}ms`;
  const parts: string[] = [];
  for (const [unit, size] of [['d', DAY_MS], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    const n = Math.floor(left / size);
    if (n > 0) parts.push(`${n}${unit}`);
    left -= n * size;
    if (parts.length === 2) break;
  }
  return `${neg ? '-' : ''}${parts.join(' ')}`;
}

/** "10,25,50,75,100" or a YAML list -> strictly increasing percentages ending at 100. */
export function parseSteps(raw: unknown): number[] {
  const list = Array.isArray(raw) ? raw : String(raw ?? '').split(',');
  const steps = list.map((v) => (typeof v === 'number' ? v : Number(String(v).trim().replace(/%$/, ''))));
  if (steps.length === 0 || steps.some((n) => !Number.isFinite(n) || n <= 0 || n > 100)) {
    throw new Error(`expected a comma-separated list of percentages in (0, 100], e.g. 10,25,50,75,100; got ${JSON.stringify(raw)}`);
  }
  // The gateway splits traffic in whole percents (100 buckets of 1 %): a fractional step could be
  // planned but never applied, so it is refused here, when the plan is made.
  const fractional = steps.find((n) => !Number.isInteger(n));
  if (fractional !== undefined) throw new Error(`steps are whole percentages (the gateway splits in 1 % buckets), got ${fractional}; round it, e.g. ${Math.max(1, Math.round(fractional))}`);
  for (let i = 1; i < steps.length; i++) {
    if (steps[i]! <= steps[i - 1]!) throw new Error(`steps must increase, got ${steps.join(',')}`);
  }
  if (steps[steps.length - 1] !== 100) throw new Error(`the last step must be 100, got ${steps.join(',')}`);
  return steps;
}

export function initialState(steps: number[], dwellMs: number, driver: DriverName): RolloutState {
  return {
    version: STATE_VERSION,
    percent: 0,
    stepIndex: -1,
    steps,
    dwellMs,
    paused: false,
    pausedReason: null,
    startedAt: null,
    stepStartedAt: null,
    lastGates: [],
    lastGatesAt: null,
    driver,
    lastRollback: null,
    history: [],
  };
}

/** The step a share belongs to: the last step at or below it (-1 below the first step). */
export function stepIndexOf(steps: number[], percent: number): number {
  let idx = -1;
  steps.forEach((s, i) => {
    if (s <= percent) idx = i;
  });
  return idx;
}

export interface TimelineRow {
  step: number;
  percent: number;
  plannedAt: string;
  /** When this step was last reached in the current run (since the last start from 0 %). */
  actualAt: string | null;
  state: 'done' | 'current' | 'next' | 'planned';
}

/**
 * The week-by-week plan. Planned dates start at the rollout's start (or `now` before it starts)
 * and add one dwell per step; once a step is reached, later steps are re-planned from its actual
 * date, so the timeline shows the real schedule rather than the original wish.
 */
export function timeline(state: RolloutState, now: Date): TimelineRow[] {
  const reached = actualDates(state);
  let anchor = state.startedAt ? Date.parse(state.startedAt) : now.getTime();
  let anchorIdx = 0;
  return state.steps.map((percent, i) => {
    const actual = reached.get(i) ?? null;
    if (actual && i <= state.stepIndex) {
      anchor = Date.parse(actual);
      anchorIdx = i;
    }
    const planned = new Date(anchor + (i - anchorIdx) * state.dwellMs).toISOString();
    const rowState: TimelineRow['state'] =
      i < state.stepIndex ? 'done' : i === state.stepIndex ? 'current' : i === state.stepIndex + 1 ? 'next' : 'planned';
    return { step: i + 1, percent, plannedAt: actual && i <= state.stepIndex ? actual : planned, actualAt: i <= state.stepIndex ? actual : null, state: rowState };
  });
}

/** Step index -> when it was last reached, counting only the current run (after the last 0 %). */
function actualDates(state: RolloutState): Map<number, string> {
  const out = new Map<number, string>();
  for (const h of state.history) {
    if (h.to === 0) out.clear();
    else if (h.to !== h.from) {
      const idx = state.steps.indexOf(h.to);
      if (idx >= 0) out.set(idx, h.time);
      // a move back forgets the later steps: they will be reached again
      for (const k of [...out.keys()]) if (k > idx) out.delete(k);
    }
  }
  return out;
}

export function dwellEndsAt(state: RolloutState): Date | null {
  if (state.stepIndex < 0 || !state.stepStartedAt) return null;
  return new Date(Date.parse(state.stepStartedAt) + state.dwellMs);
}

/** The state as commands report it (JSON documents and text): where it is and what comes next. */
export function stateSummary(s: RolloutState, now: Date) {
  const dwellEnd = dwellEndsAt(s);
  return {
    percent: s.percent,
    step: s.stepIndex + 1,
    steps: s.steps,
    paused: s.paused,
    pausedReason: s.pausedReason,
    startedAt: s.startedAt,
    stepStartedAt: s.stepStartedAt,
    dwellEndsAt: dwellEnd?.toISOString() ?? null,
    dwellRemainingMs: dwellEnd ? Math.max(0, dwellEnd.getTime() - now.getTime()) : 0,
    nextPercent: s.steps[s.stepIndex + 1] ?? null,
    driver: s.driver,
    lastRollback: s.lastRollback,
  };
}
export type StateSummary = ReturnType<typeof stateSummary>;
