import { z } from 'zod';
import { defineLines, defineStateFile } from './contract.js';

/**
 * `.embedctl/rollout.json` (rollout writes; status, the hybrid client and rehearse read) and its
 * history, `.embedctl/rollout.history.jsonl`. Shapes as src/core/rollout/types.ts has them (v1).
 */
const iso = z.string().min(1, 'expected an ISO date-time');
const percent = z.number().min(0, 'must be >= 0').max(100, 'must be <= 100');
export const driverName = z.enum(['nginx', 'env', 'k8s', 'ssm']);

export const gateResult = z.object({
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

export const rolloutHistoryEntry = z.object({
  time: iso,
  user: z.string(),
  action: z.enum(['set', 'advance', 'back', 'rollback', 'auto-rollback', 'pause', 'resume']),
  from: percent,
  to: percent,
  reason: z.string().nullable(),
  forced: z.boolean(),
  gates: z.array(gateResult),
  driver: driverName,
  confirmed: z.boolean().nullable().optional(),
  observedPercent: z.number().nullable().optional(),
  durationMs: z.number().optional(),
  /** What an emergency rollback found broken and fixed (stale lock, unusable state file). */
  repaired: z.array(z.string()).optional(),
  /** Where the driver acted ("nginx /srv/gw/nginx.conf", "ssm i-0abc in eu-west-1"). */
  target: z.string().optional(),
});

export const rolloutStateSchema = z.object({
  version: z.literal(1),
  percent,
  stepIndex: z.number().int().min(-1),
  steps: z.array(percent).min(1, 'needs at least one step'),
  dwellMs: z.number().min(0),
  paused: z.boolean(),
  pausedReason: z.string().nullable(),
  startedAt: iso.nullable(),
  stepStartedAt: iso.nullable(),
  lastGates: z.array(gateResult),
  lastGatesAt: iso.nullable(),
  driver: driverName,
  lastRollback: z.object({ at: iso, reason: z.string(), durationMs: z.number(), from: percent }).nullable(),
  history: z.array(rolloutHistoryEntry),
});

export type RolloutStateDoc = z.infer<typeof rolloutStateSchema>;
export type RolloutHistoryLine = z.infer<typeof rolloutHistoryEntry>;

export const rolloutFile = defineStateFile<RolloutStateDoc>('rollout state', rolloutStateSchema, 'restore .embedctl/rollout.json from version control (every change is in .embedctl/rollout.history.jsonl), or move it aside to start the rollout fresh at 0%; `embedctl rollout rollback` works regardless (0% first, then it repairs the file)');

export const rolloutHistory = defineLines<RolloutHistoryLine>({
  name: 'rollout history',
  schema: rolloutHistoryEntry,
  fix: 'the history is append-only: move the bad line aside, the rest stays valid',
});
