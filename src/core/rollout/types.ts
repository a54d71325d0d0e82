/** Shapes shared by the rollout state machine, the gates and the command. Pure data, no I/O. */

export const STATE_VERSION = 1;

export type DriverName = 'nginx' | 'env' | 'k8s' | 'ssm';
export const DRIVERS: readonly DriverName[] = ['nginx', 'env', 'k8s', 'ssm'];

export type GateStatus = 'pass' | 'fail' | 'inconclusive';
export type GateName = 'errorRate' | 'p95LatencyMs' | 'consistency' | 'overlap' | 'monthlyCost';

export interface GateResult {
  name: GateName;
  /** The measured value; null when there is no usable evidence. */
  value: number | null;
  /** The limit that decides pass/fail (and, for rollback triggers, rollback). */
  threshold: number;
  /** Where we want to be; missing it is a warning, not a failure. */
  target: number;
  /** 'max': lower is better (value <= threshold passes); 'min': higher is better. */
  direction: 'max' | 'min';
  status: GateStatus;
  onTarget: boolean | null;
  /** Where the value came from: a URL, a report file, "cloudwatch:...". */
  source: string;
  ageSeconds: number | null;
  /** Why it is inconclusive or failed, and what produces the missing evidence. */
  note?: string;
  /** Whether a failure of this gate rolls traffic back under --watch. */
  rollbackTrigger: boolean;
}

export type HistoryAction = 'set' | 'advance' | 'back' | 'rollback' | 'auto-rollback' | 'pause' | 'resume';

export interface HistoryEntry {
  time: string;
  user: string;
  action: HistoryAction;
  from: number;
  to: number;
  reason: string | null;
  forced: boolean;
  gates: GateResult[];
  driver: DriverName;
  /** Whether the driver confirmed the new share (null: the driver cannot tell). */
  confirmed?: boolean | null;
  observedPercent?: number | null;
  /** Rollbacks: ms from the decision to a confirmed 0 %. */
  durationMs?: number;
  /** What an emergency rollback found broken and fixed (stale lock, invalid state file). */
  repaired?: string[];
  /** Where the driver acted, e.g. "nginx /srv/nginx.conf" or "ssm i-0abc (eu-west-1)". */
  target?: string;
}

export interface RolloutState {
  version: typeof STATE_VERSION;
  percent: number;
  /** Index into steps of the current share; -1 before the first step (0 %). */
  stepIndex: number;
  steps: number[];
  dwellMs: number;
  paused: boolean;
  pausedReason: string | null;
  startedAt: string | null;
  stepStartedAt: string | null;
  lastGates: GateResult[];
  lastGatesAt: string | null;
  driver: DriverName;
  lastRollback: { at: string; reason: string; durationMs: number; from: number } | null;
  history: HistoryEntry[];
}
