/** Retrieval agreement and quality metrics. Pure; ranked lists are arrays of ids, best first. */

/** |top-k(a) ∩ top-k(b)| / k. */
export function overlapAtK<T>(a: readonly T[], b: readonly T[], k: number): number {
  if (k <= 0) return 1;
  const sa = new Set(a.slice(0, k));
  let hit = 0;
  for (const x of new Set(b.slice(0, k))) if (sa.has(x)) hit++;
  return hit / k;
}

/**
 * Extrapolated rank-biased overlap, RBO_ext (Webber, Moffat, Zobel 2010, eq. 32), for two
 * prefix rankings that may differ in length. p = 0.9 puts ~86 % of the weight on the top 10.
 * Identical lists give 1, disjoint lists 0.
 */
export function rbo<T>(a: readonly T[], b: readonly T[], p = 0.9): number {
  if (!(p > 0 && p < 1)) throw new RangeError('rbo: p must be in (0, 1)');
  const [S, L] = a.length <= b.length ? [a, b] : [b, a];
  const s = S.length;
  const l = L.length;
  if (l === 0) return 1;
  if (s === 0) return 0;
  const seenS = new Set<T>();
  const seenL = new Set<T>();
  const X: number[] = [0]; // X[d] = |S[:d] ∩ L[:d]|
  let x = 0;
  for (let d = 1; d <= l; d++) {
    const ls = L[d - 1]!;
    if (d <= s) {
      const ss = S[d - 1]!;
      if (ss === ls) x++;
      else {
        if (seenL.has(ss)) x++;
        if (seenS.has(ls)) x++;
      }
      seenS.add(ss);
    } else if (seenS.has(ls)) x++;
    seenL.add(ls);
    X.push(x);
  }
  let sum = 0;
  for (let d = 1; d <= l; d++) sum += (X[d]! / d) * p ** d;
  for (let d = s + 1; d <= l; d++) sum += ((X[s]! * (d - s)) / (s * d)) * p ** d;
  return ((1 - p) / p) * sum + ((X[l]! - X[s]!) / l + X[s]! / s) * p ** l;
}

/** Relevance judgements: query id -> (doc id -> grade > 0). */
export type Qrels = Map<string, Map<string, number>>;

/** Fraction of a query's relevant documents found in the top k; undefined without any. */
export function recallAtK(ranked: readonly string[], relevant: Map<string, number> | undefined, k: number): number | undefined {
  if (!relevant) return undefined;
  let total = 0;
  for (const g of relevant.values()) if (g > 0) total++;
  if (total === 0) return undefined;
  let hit = 0;
  for (const id of ranked.slice(0, k)) if ((relevant.get(id) ?? 0) > 0) hit++;
  return hit / total;
}

/**
 * nDCG@k with linear gains (trec_eval / BEIR convention): DCG = sum grade_i / log2(i + 1),
 * normalised by the DCG of the ideal ordering of all judged documents.
 */
export function ndcgAtK(ranked: readonly string[], relevant: Map<string, number> | undefined, k = 10): number | undefined {
  if (!relevant) return undefined;
  const ideal = [...relevant.values()].filter((g) => g > 0).sort((x, y) => y - x);
  if (ideal.length === 0) return undefined;
  let dcg = 0;
  ranked.slice(0, k).forEach((id, i) => {
    dcg += (relevant.get(id) ?? 0) / Math.log2(i + 2);
  });
  let idcg = 0;
  ideal.slice(0, k).forEach((g, i) => {
    idcg += g / Math.log2(i + 2);
  });
  return dcg / idcg;
}

/** Mean of the defined values; NaN when there are none. */
export function meanDefined(values: ReadonlyArray<number | undefined>): number {
  let s = 0;
  let n = 0;
  for (const v of values) {
    if (v !== undefined && Number.isFinite(v)) {
      s += v;
      n++;
    }
  }
  return n ? s / n : NaN;
}

/** TREC qrels ("qid 0 docid grade" or "qid docid grade", tab or space, optional header). */
export function parseQrels(text: string, source = 'qrels'): Qrels {
  const out: Qrels = new Map();
  text.split(/\r?\n/).forEach((line, i) => {
    const t = line.trim();
    if (!t || t.startsWith('#')) return;
    const parts = t.split(/\s+/);
    if (i === 0 && /^(query|qid|query-id|query_id)$/i.test(parts[0]!)) return;
    let qid: string, did: string, grade: string;
    if (parts.length === 4) [qid, , did, grade] = parts as [string, string, string, string];
    else if (parts.length === 3) [qid, did, grade] = parts as [string, string, string];
    else throw new Error(`${source}:${i + 1}: expected "query-id doc-id grade" (or TREC "qid 0 docid grade"), got ${JSON.stringify(t)}`);
    const g = Number(grade);
    if (!Number.isFinite(g)) throw new Error(`${source}:${i + 1}: grade must be a number, got ${JSON.stringify(grade)}`);
    let m = out.get(qid);
    if (!m) out.set(qid, (m = new Map()));
    m.set(did, g);
  });
  return out;
}
