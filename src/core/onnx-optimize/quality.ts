/**
 * The quality gate of `models optimize`: how close the optimised bundle's vectors stay to the
 * source's over the built-in sample texts, and what that does to retrieval on the shipped RAG
 * sample. Pure arithmetic over vectors the command computed.
 */
import { meanDefined, ndcgAtK, overlapAtK, type Qrels } from '../overlap.js';
import { cosine, histogram, summarize } from '../vectors.js';

/** Defaults per step: fp16 loses ~3 decimal digits per weight, int8 ~2. */
export const DEFAULT_MIN_COSINE = { fp16: 0.999, int8: 0.99, lossless: 0.9999 } as const;

export function defaultMinCosine(steps: { int8?: unknown; fp16?: unknown }): { value: number; basis: string } {
  if (steps.int8) return { value: DEFAULT_MIN_COSINE.int8, basis: 'default for --int8' };
  if (steps.fp16) return { value: DEFAULT_MIN_COSINE.fp16, basis: 'default for --fp16' };
  return { value: DEFAULT_MIN_COSINE.lossless, basis: 'default for pooling / graph optimisation (should be lossless)' };
}

export interface CosineGate {
  texts: number;
  minCosine: number;
  basis: string;
  pass: boolean;
  below: number;
  distribution: { min: number; p1: number; p5: number; p50: number; mean: number; max: number };
  /** Counts per bin from `histogramFrom` to 1. */
  histogram: { from: number; to: number; counts: number[] };
  worst: Array<{ index: number; cosine: number }>;
}

export function cosineGate(source: ArrayLike<number>[], result: ArrayLike<number>[], minCosine: number, basis: string): CosineGate {
  const cos = source.map((v, i) => cosine(v, result[i]!));
  const s = summarize(cos);
  // Bins that show the spread around the threshold, not 0..1 where everything lands in one bin.
  const from = Math.max(0, Math.floor(Math.min(s.min, minCosine) * 1000 - 1) / 1000);
  const worst = cos
    .map((c, index) => ({ index, cosine: c }))
    .sort((a, b) => a.cosine - b.cosine || a.index - b.index)
    .slice(0, 5);
  return {
    texts: cos.length,
    minCosine,
    basis,
    pass: s.min >= minCosine,
    below: cos.filter((c) => c < minCosine).length,
    distribution: { min: s.min, p1: s.p1, p5: s.p5, p50: s.p50, mean: s.mean, max: s.max },
    histogram: { from, to: 1, counts: histogram(cos, 10, from, 1) },
    worst,
  };
}

export interface RetrievalCost {
  queries: number;
  passages: number;
  k: number;
  overlapAtK: { mean: number; min: number };
  ndcg10: { source: number; result: number; ratio: number };
}

/** Top-k lists (passage ids per query) of both bundles -> overlap and nDCG@10 against the qrels. */
export function retrievalCost(queryIds: string[], source: string[][], result: string[][], qrels: Qrels, k: number, passages: number): RetrievalCost {
  const ov = source.map((l, q) => overlapAtK(l, result[q]!, k));
  const ndcg = (lists: string[][]) => meanDefined(queryIds.map((id, i) => ndcgAtK(lists[i]!, qrels.get(id), 10)));
  const a = ndcg(source);
  const b = ndcg(result);
  return {
    queries: queryIds.length,
    passages,
    k,
    overlapAtK: { mean: ov.reduce((x, y) => x + y, 0) / Math.max(1, ov.length), min: Math.min(...ov) },
    ndcg10: { source: a, result: b, ratio: a > 0 ? b / a : 1 },
  };
}
