import { fmtDuration } from './plan.js';
import type { GateName, GateResult } from './types.js';

/** Limits and targets; every one is configurable (flags and embedctl.yaml rollout.gates.*). */
export interface GateConfig {
  maxErrorRate: number;
  targetErrorRate: number;
  maxP95Ms: number;
  targetP95Ms: number;
  /** Applies to the report's minimum cosine (the runbook's rollback trigger). */
  minConsistency: number;
  targetConsistency: number;
  minOverlap: number;
  targetOverlap: number;
  maxMonthlyUsd: number;
  /** Evidence older than this is inconclusive. */
  maxEvidenceAgeMs: number;
}

export const DEFAULT_GATES: GateConfig = {
  maxErrorRate: 0.05,
  targetErrorRate: 0.01,
  maxP95Ms: 500,
  targetP95Ms: 100,
  minConsistency: 0.99,
  targetConsistency: 0.999,
  minOverlap: 0.7,
  targetOverlap: 0.8,
  maxMonthlyUsd: 500,
  maxEvidenceAgeMs: 24 * 3600 * 1000,
};

/** One measured value, or the reason there is none. */
export type Observation =
  | { value: number; source: string; observedAt: Date | null; note?: string }
  | { value: null; source: string; observedAt?: Date | null; note: string };

export type Evidence = Partial<Record<GateName, Observation>>;

/** The command that produces each kind of evidence, named in every inconclusive message. */
export const PRODUCERS: Record<GateName, string> = {
  errorRate: 'embedctl load-test --out .embedctl/reports/load-test.json (or pass --metrics-url / --cloudwatch)',
  p95LatencyMs: 'embedctl load-test --out .embedctl/reports/load-test.json (or pass --metrics-url / --cloudwatch)',
  consistency: 'embedctl verify-consistency --out .embedctl/reports/verify-consistency.json',
  overlap: 'embedctl rag-overlap --out .embedctl/reports/rag-overlap.json',
  monthlyCost: 'embedctl cost-report --out .embedctl/reports/cost-report.json',
};

interface GateSpec {
  name: GateName;
  direction: 'max' | 'min';
  threshold: number;
  target: number;
  rollbackTrigger: boolean;
}

export function gateSpecs(cfg: GateConfig): GateSpec[] {
  return [
    { name: 'errorRate', direction: 'max', threshold: cfg.maxErrorRate, target: cfg.targetErrorRate, rollbackTrigger: true },
    { name: 'p95LatencyMs', direction: 'max', threshold: cfg.maxP95Ms, target: cfg.targetP95Ms, rollbackTrigger: true },
    { name: 'consistency', direction: 'min', threshold: cfg.minConsistency, target: cfg.targetConsistency, rollbackTrigger: true },
    { name: 'overlap', direction: 'min', threshold: cfg.minOverlap, target: cfg.targetOverlap, rollbackTrigger: true },
    { name: 'monthlyCost', direction: 'max', threshold: cfg.maxMonthlyUsd, target: cfg.maxMonthlyUsd, rollbackTrigger: false },
  ];
}

/** Pass/fail/inconclusive for each gate. Missing or stale evidence is inconclusive, never a pass. */
export function evaluateGates(evidence: Evidence, cfg: GateConfig, now: Date): GateResult[] {
  return gateSpecs(cfg).map((spec) => {
    const obs = evidence[spec.name];
    const base = { name: spec.name, threshold: spec.threshold, target: spec.target, direction: spec.direction, rollbackTrigger: spec.rollbackTrigger };
    if (!obs || obs.value === null) {
      return {
        ...base,
        value: null,
        status: 'inconclusive' as const,
        onTarget: null,
        source: obs?.source ?? 'none',
        ageSeconds: null,
        note: `${obs?.note ?? 'no evidence'}; produce it with: ${PRODUCERS[spec.name]}`,
      };
    }
    const ageMs = obs.observedAt ? now.getTime() - obs.observedAt.getTime() : 0;
    const ageSeconds = Math.max(0, Math.round(ageMs / 1000));
    if (ageMs > cfg.maxEvidenceAgeMs) {
      return {
        ...base,
        value: obs.value,
        status: 'inconclusive' as const,
        onTarget: null,
        source: obs.source,
        ageSeconds,
        note: `stale: ${fmtDuration(ageMs)} old, older than --max-evidence-age ${fmtDuration(cfg.maxEvidenceAgeMs)}; refresh it with: ${PRODUCERS[spec.name]}`,
      };
    }
    const ok = spec.direction === 'max' ? obs.value <= spec.threshold : obs.value >= spec.threshold;
    const onTarget = spec.direction === 'max' ? obs.value <= spec.target : obs.value >= spec.target;
    return {
      ...base,
      value: obs.value,
      status: ok ? ('pass' as const) : ('fail' as const),
      onTarget,
      source: obs.source,
      ageSeconds,
      ...(ok ? (obs.note ? { note: obs.note } : {}) : { note: `${fmtValue(spec.name, obs.value)} is ${spec.direction === 'max' ? 'above' : 'below'} the limit ${fmtValue(spec.name, spec.threshold)}` }),
    };
  });
}

export function fmtValue(name: GateName, v: number | null): string {
  if (v === null) return '-';
  switch (name) {
    case 'errorRate':
      return `${(v * 100).toFixed(2)}%`;
    case 'p95LatencyMs':
      return `${v.toFixed(1)} ms`;
    case 'consistency':
      return v.toFixed(4);
    case 'overlap':
      return `${(v * 100).toFixed(1)}%`;
    case 'monthlyCost':
      return `$${v.toFixed(2)}`;
  }
}

/**
 * "consistency fail (0.9500 is below the limit 0.9900); overlap inconclusive (no report at ...)"
 * for one-line messages: what is wrong, without the fix (the hint names the commands).
 */
export function describeProblems(gates: GateResult[]): string {
  return gates
    .filter((g) => g.status !== 'pass')
    .map((g) => {
      const why = g.note?.replace(/; (produce|refresh) it with: .*$/, '');
      return `${g.name} ${g.status}${why ? ` (${why})` : ''}`;
    })
    .join('; ');
}
