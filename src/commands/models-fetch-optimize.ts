/**
 * `models fetch --optimize int8|fp16 [--pool-in-graph]`: fetch, then optimise in the same step,
 * so an instance's first boot gets a bundle made for its hardware. The download lands in
 * `<cache>/.sources/<org>--<name>` (what the quality gate compares against, kept for a later
 * re-optimisation without downloading again); the optimised bundle takes the usual place, so
 * `serve --model <org>/<name>` serves it. Reuses `models optimize` whole: same steps, same gate
 * (exit 3, nothing written), same manifest record.
 */
import { basename, dirname, join } from 'node:path';
import { readManifest } from '../../common/models-registry.js';
import type { Context } from '../context.js';
import type { Logger } from '../ui/output.js';
import { optimizeBundle, type OptimizeOptions, type OptimizeReport } from './models-optimize.js';

export const FETCH_OPTIMIZE = ['none', 'int8', 'fp16'] as const;
export type FetchOptimize = (typeof FETCH_OPTIMIZE)[number];

export interface FetchOptimizePlan {
  int8?: boolean;
  fp16?: boolean;
  poolInGraph?: boolean;
  /** The steps as the optimised manifest records them (optimization.steps), sorted. */
  steps: string[];
}

/**
 * --optimize and --pool-in-graph as a plan; undefined when the bundle is served as downloaded.
 * fp16 is the GPU recipe, so it pools in the graph unless --pool-in-graph false says otherwise.
 */
export function parseFetchOptimize(v: FetchOptimize, poolFlag: boolean | undefined): FetchOptimizePlan | undefined {
  const poolInGraph = poolFlag ?? v === 'fp16';
  if (v === 'none' && !poolInGraph) return undefined;
  const plan: FetchOptimizePlan = { int8: v === 'int8' || undefined, fp16: v === 'fp16' || undefined, poolInGraph: poolInGraph || undefined, steps: [] };
  plan.steps = [...(plan.int8 ? ['int8'] : []), ...(plan.fp16 ? ['fp16'] : []), ...(plan.poolInGraph ? ['pool-in-graph'] : [])].sort();
  return plan;
}

/** Where the unoptimised download of the bundle at `dir` lives (skipped by `models list`). */
export const sourceDirFor = (dir: string) => join(dirname(dir), '.sources', basename(dir));

/** The optimisation steps the bundle at `dir` records, sorted ([] for one served as downloaded). */
export function recordedSteps(dir: string): string[] {
  try {
    const opt = readManifest(dir).optimization as { steps?: unknown } | undefined;
    return Array.isArray(opt?.steps) ? opt.steps.map(String).sort() : [];
  } catch {
    return [];
  }
}

export const sameSteps = (a: string[], b: string[]) => a.length === b.length && a.every((s, i) => s === b[i]);

/** Optimises the fetched source into `dir` (replacing what is there only when the gate passes). */
export function optimizeFetched(ctx: Context, log: Logger, sourceDir: string, dir: string, plan: FetchOptimizePlan, minCosine: number | undefined): Promise<OptimizeReport> {
  const o: OptimizeOptions = {
    int8: plan.int8,
    fp16: plan.fp16,
    poolInGraph: plan.poolInGraph,
    minCosine,
    ortLevel: 'extended',
    // The gate runs where fetch runs (often a container without the GPU); fp16's ORT pass then
    // happens at load on the GPU, as `models optimize --fp16 --ep cpu` does.
    ep: 'cpu',
    // 2,100 passages twice would add minutes to a first boot; `models optimize` reports it.
    rag: false,
    ragSkipped: 'models fetch --optimize (run `embedctl models optimize` for the retrieval cost)',
    force: true,
  };
  log.info(`optimising ${basename(dir)} (${plan.steps.join(' + ')}) from ${sourceDir}`);
  return optimizeBundle(ctx, log, sourceDir, dir, o);
}
