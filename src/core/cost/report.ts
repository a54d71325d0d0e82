import {
  evaluateOption,
  hostedInitialIndexing,
  hostedMonthly,
  peakEmbeddingsPerMinute,
  volumeTable,
  type HostedSpec,
  type OptionResult,
  type PricingOption,
  type SelfHostedSpec,
  type VolumeRow,
  type Workload,
} from './model.js';
import type { LoadReportCapacity } from './inputs.js';
import { evaluateTriggers, recommend, type Recommendation, type Trigger } from './triggers.js';

/**
 * One cost report: the resolved inputs (with the source of every assumption) and what the model
 * makes of them. The command builds the inputs; src/ui/cost-report.ts renders the analysis.
 */

export interface Assumption {
  name: string;
  value: number | string | boolean | null;
  unit: string;
  source: string;
}

/** Everything the report needs, resolved from flags, env, embedctl.yaml and the price table. */
export interface CostInputs {
  workload: Workload;
  hosted: HostedSpec & { provider: string; model: string; p95Ms?: number; p95Basis?: string };
  self: SelfHostedSpec;
  oneTime: { engineeringHours: number; hourlyRate: number };
  instance: { type: string; region: string; vcpu?: number; gpu?: string; memory?: string; capacitySource: string; priceSource: string };
  /**
   * What --capacity-from measured on the self-hosted side: the capacity before and after its
   * conversion to the priced texts, and the load test's p95 (the self-hosted latency; the hosted
   * latency trigger never reads it).
   */
  measured?: { file: string; capacity: LoadReportCapacity['measured'] & { conversion: string }; p95: LoadReportCapacity['selfHostedP95'] };
  options: PricingOption[];
  months: number;
  assumptions: Assumption[];
  output: { csv: boolean; html?: string; actual: boolean; livePricing: boolean };
}

export interface Analysis {
  hosted: number;
  hostedInitialIndexing: number;
  peakPerMinute: number;
  averagePerMinute: number;
  results: OptionResult[];
  volumes: VolumeRow[];
  triggers: Trigger[];
  recommendation: Recommendation;
}

export function analyse(i: CostInputs): Analysis {
  const w = i.workload;
  const hosted = hostedMonthly(i.hosted, w.tokensPerMonth);
  const results = i.options.map((o) => evaluateOption(w, i.self, i.hosted, i.oneTime, o, i.months));
  const averagePerMinute = peakEmbeddingsPerMinute(w.embeddingsPerMonth, 1);
  const peakPerMinute = peakEmbeddingsPerMinute(w.embeddingsPerMonth, w.peakFactor);
  const vectors = w.corpusTokens !== undefined ? w.corpusTokens / w.tokensPerText : undefined;
  const triggers = evaluateTriggers({
    indexedDataBytes: vectors === undefined ? undefined : vectors * i.hosted.dimensions * 4,
    indexedDataBasis:
      vectors === undefined ? undefined : `corpus tokens / ${w.tokensPerText} tokens per chunk x ${i.hosted.dimensions} dims x 4 bytes (float32), GB = 1e9 bytes`,
    queriesPerMonth: w.queriesPerMonth,
    hostedMonthly: hosted,
    p95Ms: i.hosted.p95Ms,
    p95Basis: i.hosted.p95Basis,
    peakEmbeddingsPerMinute: peakPerMinute,
  });
  return {
    hosted,
    hostedInitialIndexing: hostedInitialIndexing(w, i.hosted),
    peakPerMinute,
    averagePerMinute,
    results,
    volumes: volumeTable(w, i.self, i.hosted, i.options),
    triggers,
    recommendation: recommend({ monthly: hosted, pricePerMillion: i.hosted.pricePerMillion, tokensPerMonth: w.tokensPerMonth }, results, triggers, i.months),
  };
}

