import type { CostReportDoc, LoadTestReportDoc, RagOverlapReport, VerifyConsistencyReport } from '../contracts/reports.js';
import type { RolloutStateDoc } from '../contracts/rollout.js';

/**
 * The rehearsal's bookkeeping: its clock, its stages and the verdict. Pure; the command runs the
 * stages.
 */

export type Verdict = 'pass' | 'fail' | 'skipped';

export interface StageResult {
  id: string;
  title: string;
  verdict: Verdict;
  /** Exit code of the sub-command the stage is judged on (null when none ran). */
  exitCode: number | null;
  seconds: number;
  /** Key figures, as the stage's own report gave them. */
  figures: Record<string, string | number | boolean | null | undefined>;
  note?: string;
  /** The stage's own report (a copy of what its command wrote), kept under <work>/stages/. */
  report?: string;
}

/**
 * Real time plus an offset the rehearsal moves forward: a week's dwell passes in a call, while
 * everything else (report ages, timings) still ticks in real time.
 */
export class RehearsalClock {
  private offsetMs = 0;
  constructor(private readonly real: () => Date) {}
  now(): Date {
    return new Date(this.real().getTime() + this.offsetMs);
  }
  advance(ms: number): void {
    this.offsetMs += ms;
  }
  get skippedMs(): number {
    return this.offsetMs;
  }
}

export const WEEK_MS = 7 * 24 * 3600 * 1000;

/** 0 when every stage passed; otherwise the first failed stage's exit code (3 for a gate, 1 else). */
export function overallExitCode(stages: StageResult[]): number {
  const failed = stages.find((s) => s.verdict === 'fail');
  if (!failed) return 0;
  if (failed.exitCode === 130) return 130;
  return failed.exitCode === 3 || failed.exitCode === 2 ? 3 : 1;
}

export function fmtFigures(f: StageResult['figures']): string {
  return Object.entries(f)
    .filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => `${k}=${typeof v === 'number' ? +v.toFixed(4) : v}`)
    .join(' ');
}

/*
 * Each stage's key figures, read from the stage's own report through its contract: typed fields,
 * so a renamed field is a compile error here, not a silent null in the summary.
 */
export const costFigures = (d: CostReportDoc) => ({
  tokensPerMonth: d.monthly.tokensPerMonth,
  hostedUsd: d.monthly.hosted,
  onDemandUsd: d.monthly.onDemand?.total ?? null,
  spotUsd: d.monthly.spot?.total ?? null,
  recommendation: d.recommendation.decision,
});

export const verifyFigures = (d: VerifyConsistencyReport) => ({
  texts: d.count,
  minCosine: d.cosine.min,
  meanCosine: d.cosine.mean,
  belowWarn: d.belowWarn,
  verdict: d.verdict,
});

export const overlapFigures = (d: RagOverlapReport) => ({
  queries: d.queries,
  corpus: d.corpus,
  overlapMean: d.overlap.mean,
  overlapMin: d.overlap.min,
});

export const loadFigures = (d: LoadTestReportDoc) => ({
  requests: d.requests ?? null,
  embeddingsPerMinute: d.embeddingsPerMinute ?? null,
  p95Ms: d.latencyMs.p95,
  errorRate: d.errorRate,
  meetsSuccessCriteria: d.verdict?.meetsSuccessCriteria ?? null,
});

/** Which driver moved the gateway, and where (the last move's history line). */
const movedBy = (s: RolloutStateDoc) => ({ driver: s.history.at(-1)?.driver ?? s.driver, target: s.history.at(-1)?.target ?? null });

export const rolloutFigures = (s: RolloutStateDoc) => ({
  ...movedBy(s),
  percent: s.percent,
  gatesPassed: s.lastGates.filter((g) => g.status === 'pass').length,
  gates: s.lastGates.length,
});

export const rollbackFigures = (s: RolloutStateDoc) => ({
  ...movedBy(s),
  percent: s.percent,
  rollbackMs: s.lastRollback?.durationMs ?? null,
  reason: s.lastRollback?.reason ?? null,
});
