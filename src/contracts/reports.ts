import { z } from 'zod';
import { defineContract, type Contract } from './contract.js';

/**
 * The reports commands write with `--out` (and print with `--json`) that other commands read:
 * rollout's gates read the four evidence reports, rehearse keeps every stage's report. Each
 * schema pins the fields another command reads, typed and required; the rest of a report is its
 * writer's detail: written as is, not part of what a reader gets back. `generatedAt` is the one timestamp: a report is
 * as old as its measurement, never as old as the file.
 */
const iso = z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'expected an ISO date-time');
const fraction = z.number().min(0, 'must be >= 0').max(1, 'must be <= 1 (a fraction, not a percentage)');

/**
 * One side of an evidence comparison (embedding-endpoints' sideDoc): rollout reads it to refuse
 * a report that compared hosted with hosted. Optional: a report without it still reads, and the
 * gate says it cannot tell who answered.
 */
const side = z.object({
  url: z.string(),
  /** The resolved URL posted to (a base URL and its /v1/embeddings are the same endpoint). */
  endpoint: z.string().optional(),
  /** "selfhosted" | "hosted" | "mixed" | "direct" (no gateway header) | "cache". */
  answeredBy: z.string().optional(),
  cached: z.number().int().min(0).optional(),
  model: z.string().nullable().optional(),
  /** The deployment whose gateway was asked (--deployment). */
  deployment: z.string().optional(),
});
export type ReportSide = z.infer<typeof side>;

function report<S extends z.ZodRawShape>(id: string, shape: S, fix: string) {
  const schema = z.object({ schema: z.literal(`embedctl.${id}/v1`), generatedAt: iso, ...shape });
  return defineContract<z.infer<typeof schema>>({ name: `${id} report`, version: 1, stamp: { key: 'schema', id }, schema, fix });
}

export const verifyConsistencyReport = report(
  'verify-consistency',
  {
    count: z.number().int().min(0),
    cosine: z.object({ min: z.number(), mean: z.number() }),
    belowWarn: z.number().int().min(0),
    verdict: z.string(),
    reference: side.optional(),
    candidate: side.optional(),
  },
  'produce it with: embedctl verify-consistency --out .embedctl/reports/verify-consistency.json',
);

export const ragOverlapReport = report(
  'rag-overlap',
  {
    queries: z.number().int().min(0),
    corpus: z.number().int().min(0),
    overlap: z.object({ mean: fraction, min: fraction }),
    /** The candidate is another model: judge retrieval quality (nDCG@10 ratio), not overlap. */
    reindex: z.boolean().default(false),
    // JSON has no Infinity: a reference nDCG of 0 with a better candidate is written as null.
    quality: z.object({ ratio: z.number().nullable() }).optional(),
    reference: side.optional(),
    candidate: side.optional(),
  },
  'produce it with: embedctl rag-overlap --out .embedctl/reports/rag-overlap.json',
);

export const loadTestReport = report(
  'load-test',
  {
    requests: z.number().int().min(0).optional(),
    errorRate: fraction,
    latencyMs: z.object({ p95: z.number().min(0) }),
    embeddingsPerMinute: z.number().optional(),
    verdict: z.object({ gatesPass: z.boolean(), meetsSuccessCriteria: z.boolean(), failedThresholds: z.array(z.string()).optional() }).optional(),
    target: z.string().optional(),
    // cost-report --capacity-from sizes a fleet from these two: the capacity at the SLO, converted
    // by tokens to the priced texts' length. Optional for rollout, which reads neither; cost-report
    // refuses a report without them.
    texts: z.object({ tokensPerText: z.number().positive() }).nullable().optional(),
    capacity: z
      .object({
        slo: z.object({ p95Ms: z.number().nullable(), maxErrorRate: z.number().nullable() }),
        embeddingsPerMinute: z.number().min(0).nullable(),
        tokensPerMinute: z.number().min(0).nullable().optional(),
        basis: z.string(),
      })
      .optional(),
  },
  'produce it with: embedctl load-test --out .embedctl/reports/load-test.json',
);

const pricingOption = z.enum(['onDemand', 'reserved', 'spot']);
export const costReport = report(
  'cost-report',
  {
    monthly: z.object({ tokensPerMonth: z.number(), hosted: z.number(), onDemand: z.object({ total: z.number() }).optional(), reserved: z.object({ total: z.number() }).optional(), spot: z.object({ total: z.number() }).optional() }),
    recommendation: z.object({ decision: z.string(), option: pricingOption.nullable(), reason: z.string() }),
  },
  'produce it with: embedctl cost-report --out .embedctl/reports/cost-report.json',
);

export type VerifyConsistencyReport = z.infer<typeof verifyConsistencyReport.schema>;
export type RagOverlapReport = z.infer<typeof ragOverlapReport.schema>;
export type LoadTestReportDoc = z.infer<typeof loadTestReport.schema>;
export type CostReportDoc = z.infer<typeof costReport.schema>;

/** The self-hosted monthly total a cost report recommends (its cheapest option when it says stay). */
export function recommendedMonthly(doc: CostReportDoc): { value: number; option: string; note?: string } | undefined {
  const totals = pricingOption.options.flatMap((o) => (doc.monthly[o] ? [{ option: o, total: doc.monthly[o].total }] : []));
  const rec = doc.recommendation.option;
  const chosen = totals.find((t) => t.option === rec);
  if (chosen) return { value: chosen.total, option: chosen.option };
  const cheapest = totals.sort((a, b) => a.total - b.total)[0];
  return cheapest && { value: cheapest.total, option: cheapest.option, note: `no recommended option (${doc.recommendation.decision}); the cheapest, ${cheapest.option}` };
}

export const EVIDENCE_REPORTS = {
  consistency: { file: 'verify-consistency.json', contract: verifyConsistencyReport as Contract<VerifyConsistencyReport> },
  overlap: { file: 'rag-overlap.json', contract: ragOverlapReport as Contract<RagOverlapReport> },
  loadTest: { file: 'load-test.json', contract: loadTestReport as Contract<LoadTestReportDoc> },
  cost: { file: 'cost-report.json', contract: costReport as Contract<CostReportDoc> },
} as const;
