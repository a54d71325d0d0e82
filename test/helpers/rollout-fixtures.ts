import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A fresh project directory for one rollout test. */
export function tempProject(prefix = 'embedctl-rollout-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface ReportValues {
  errorRate?: number;
  p95?: number;
  cosineMin?: number;
  cosineMean?: number;
  overlap?: number;
  monthlyUsd?: number;
}

/**
 * Writes the four reports rollout reads, shaped like the commands write them (--out / --json),
 * stamped `at` so the gates judge their age against the injected clock.
 */
export function writeReports(cwd: string, at: Date, v: ReportValues = {}, skip: string[] = []): string {
  const dir = join(cwd, '.embedctl', 'reports');
  mkdirSync(dir, { recursive: true });
  const generatedAt = at.toISOString();
  const docs: Record<string, unknown> = {
    'load-test.json': { schema: 'embedctl.load-test/v1', generatedAt, errorRate: v.errorRate ?? 0.002, latencyMs: { p50: 20, p95: v.p95 ?? 45, p99: 80 } },
    'verify-consistency.json': { schema: 'embedctl.verify-consistency/v1', generatedAt, count: 100, cosine: { min: v.cosineMin ?? 0.9993, mean: v.cosineMean ?? 0.9999, p05: 0.9995 }, belowWarn: 0, verdict: 'pass' },
    'rag-overlap.json': { schema: 'embedctl.rag-overlap/v1', generatedAt, queries: 50, corpus: 200, overlap: { mean: v.overlap ?? 0.86, min: 0.6 } },
    'cost-report.json': {
      schema: 'embedctl.cost-report/v1',
      generatedAt,
      monthly: { tokensPerMonth: 2e9, hosted: 900, onDemand: { total: 780 }, spot: { total: v.monthlyUsd ?? 310 } },
      recommendation: { decision: 'migrate', option: 'spot', reason: 'cheaper' },
    },
  };
  for (const [name, doc] of Object.entries(docs)) {
    if (!skip.includes(name)) writeFileSync(join(dir, name), JSON.stringify(doc));
  }
  return dir;
}

/** A clock the test moves by hand. */
export function manualClock(start = new Date('2026-03-02T09:00:00Z')) {
  let t = start.getTime();
  return {
    now: () => new Date(t),
    set: (d: Date) => void (t = d.getTime()),
    advance: (ms: number) => void (t += ms),
  };
}

export const DAY = 24 * 3600 * 1000;
