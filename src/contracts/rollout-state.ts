import { z } from 'zod';
import { DRIVERS, STATE_VERSION, type RolloutState } from '../core/rollout/types.js';

/**
 * `.embedctl/rollout.json`, version 1: written by every `rollout` verb, read by `rollout`,
 * `status` and `rehearse`. Validated on every read so a hand-edited or damaged file is refused
 * with the field that is wrong, instead of a crash deep inside a renderer (issue 14: percent 250
 * was accepted, a null crashed --status).
 */
const percent = z.number().min(0).max(100);
const iso = z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'expected an ISO date');
const driver = z.enum(DRIVERS as unknown as [string, ...string[]]);

const gate = z.object({
  name: z.enum(['errorRate', 'p95LatencyMs', 'consistency', 'overlap', 'monthlyCost']),
  value: z.number().nullable(),
  threshold: z.number(),
  target: z.number(),
  direction: z.enum(['max', 'min']),
  status: z.enum(['pass', 'fail', 'inconclusive']),
  onTarget: z.boolean().nullable(),
  source: z.string(),
  ageSeconds: z.number().nullable(),
  note: z.string().optional(),
  rollbackTrigger: z.boolean(),
});

const historyEntry = z.object({
  time: iso,
  user: z.string(),
  action: z.enum(['set', 'advance', 'back', 'rollback', 'auto-rollback', 'pause', 'resume']),
  from: percent,
  to: percent,
  reason: z.string().nullable(),
  forced: z.boolean(),
  gates: z.array(gate),
  driver,
  confirmed: z.boolean().nullable().optional(),
  observedPercent: z.number().nullable().optional(),
  durationMs: z.number().min(0).optional(),
  /** What an emergency rollback found broken and fixed (stale lock, corrupt state file). */
  repaired: z.array(z.string()).optional(),
  /** Where the driver acted ("nginx at /etc/...", "ssm i-0abc in eu-west-1"). */
  target: z.string().optional(),
});

export const rolloutStateSchema = z
  .object({
    version: z.literal(STATE_VERSION),
    percent,
    stepIndex: z.number().int().min(-1),
    steps: z.array(z.number().gt(0).max(100)).min(1),
    dwellMs: z.number().min(0),
    paused: z.boolean(),
    pausedReason: z.string().nullable(),
    startedAt: iso.nullable(),
    stepStartedAt: iso.nullable(),
    lastGates: z.array(gate),
    lastGatesAt: iso.nullable(),
    driver,
    lastRollback: z.object({ at: iso, reason: z.string(), durationMs: z.number().min(0), from: percent }).nullable(),
    history: z.array(historyEntry),
  })
  .refine((s) => s.stepIndex < s.steps.length, { message: 'is past the last step', path: ['stepIndex'] });

/** One line naming the first bad field, its value and the rule, e.g. "percent: 250 is not <= 100". */
export function describeIssue(err: z.ZodError, doc: unknown): string {
  const i = err.issues[0]!;
  const path = i.path.map(String).join('.') || '(top level)';
  let got: unknown = doc;
  for (const k of i.path) got = got && typeof got === 'object' ? (got as Record<PropertyKey, unknown>)[k as PropertyKey] : undefined;
  const shown = got === undefined ? 'missing' : JSON.stringify(got)?.slice(0, 60);
  return `${path}: ${i.message} (got ${shown})${err.issues.length > 1 ? ` and ${err.issues.length - 1} more problem${err.issues.length > 2 ? 's' : ''}` : ''}`;
}

export type RolloutStateDoc = z.infer<typeof rolloutStateSchema>;

// Keeps the schema and the state machine's type in step: a field added to one must be added to both.
const _sameShape: (d: RolloutStateDoc) => RolloutState = (d) => d as RolloutState;
void _sameShape;
