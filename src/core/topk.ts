/**
 * Exact top-k by inner product (cosine for normalised rows), without ever holding the full
 * query x corpus score matrix: the corpus is streamed in blocks that fit in cache, a 4 x 2
 * register-blocked kernel scores four queries against two corpus rows per step, and a bounded
 * min-heap per query keeps the best k seen so far. Pure; no I/O.
 */

export interface TopKResult {
  /** Number of results per query: min(k, corpus rows). */
  k: number;
  /** Row-major [queries x k] corpus row indices, best first. */
  indices: Int32Array;
  /** Row-major [queries x k] scores, descending. */
  scores: Float32Array;
}

export interface TopKOptions {
  /** Corpus rows per block; 64 x 384 floats = 96 KiB stays in L2 while every query visits it. */
  blockRows?: number;
}

/**
 * Bounded min-heaps for many queries at once, in flat typed arrays (no per-item objects).
 * Exported so a faster scorer (the onnxruntime adapter) can merge its per-block results.
 */
export class TopKAccumulator {
  readonly scores: Float32Array;
  readonly ids: Int32Array;
  readonly size: Int32Array;
  constructor(
    readonly m: number,
    readonly k: number,
  ) {
    this.scores = new Float32Array(m * k);
    this.ids = new Int32Array(m * k);
    this.size = new Int32Array(m);
  }

  /** The score a newcomer must beat for query q (-Infinity until the heap is full). */
  threshold(q: number): number {
    return this.size[q]! < this.k ? -Infinity : this.scores[q * this.k]!;
  }

  push(q: number, score: number, id: number): void {
    const k = this.k;
    const base = q * k;
    const s = this.scores;
    const ids = this.ids;
    let n = this.size[q]!;
    if (n < k) {
      // Sift up.
      let i = n++;
      this.size[q] = n;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!worse(score, id, s[base + p]!, ids[base + p]!)) break;
        s[base + i] = s[base + p]!;
        ids[base + i] = ids[base + p]!;
        i = p;
      }
      s[base + i] = score;
      ids[base + i] = id;
      return;
    }
    if (!worse(s[base]!, ids[base]!, score, id)) return;
    // Replace the root and sift down.
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= k) break;
      const r = l + 1;
      let c = l;
      if (r < k && worse(s[base + r]!, ids[base + r]!, s[base + l]!, ids[base + l]!)) c = r;
      if (!worse(s[base + c]!, ids[base + c]!, score, id)) break;
      s[base + i] = s[base + c]!;
      ids[base + i] = ids[base + c]!;
      i = c;
    }
    s[base + i] = score;
    ids[base + i] = id;
  }

  /** Sorted best-first; empty slots (corpus smaller than k) never happen since k <= n. */
  result(): TopKResult {
    const { m, k } = this;
    const indices = new Int32Array(m * k);
    const scores = new Float32Array(m * k);
    const order = Array.from({ length: k }, (_, i) => i);
    for (let q = 0; q < m; q++) {
      const base = q * k;
      order.sort((a, b) => (worse(this.scores[base + a]!, this.ids[base + a]!, this.scores[base + b]!, this.ids[base + b]!) ? 1 : -1));
      for (let i = 0; i < k; i++) {
        indices[base + i] = this.ids[base + order[i]!]!;
        scores[base + i] = this.scores[base + order[i]!]!;
      }
    }
    return { k, indices, scores };
  }
}

/** Ranking order: higher score first; on a tie the lower row index wins (deterministic). */
function worse(sa: number, ia: number, sb: number, ib: number): boolean {
  return sa < sb || (sa === sb && ia > ib);
}

/**
 * Top-k of `m` queries against `n` corpus rows, both row-major Float32Arrays of width `dim`.
 * Scores are float32-rounded dot products, so ties and order match what a float32 matmul gives.
 */
export function topK(queries: Float32Array, m: number, corpus: Float32Array, n: number, dim: number, k: number, o: TopKOptions = {}): TopKResult {
  if (queries.length < m * dim || corpus.length < n * dim) throw new RangeError('topK: arrays shorter than rows x dim');
  const kk = Math.max(0, Math.min(k, n));
  const heaps = new TopKAccumulator(m, kk);
  if (kk === 0 || m === 0) return heaps.result();
  const block = Math.max(2, o.blockRows ?? Math.max(16, Math.floor(16384 / dim) * 4));
  const f = Math.fround;
  for (let c0 = 0; c0 < n; c0 += block) {
    const c1 = Math.min(n, c0 + block);
    let q = 0;
    for (; q + 4 <= m; q += 4) {
      const qa = q * dim;
      const qb = qa + dim;
      const qc = qb + dim;
      const qd = qc + dim;
      let t0 = heaps.threshold(q);
      let t1 = heaps.threshold(q + 1);
      let t2 = heaps.threshold(q + 2);
      let t3 = heaps.threshold(q + 3);
      let j = c0;
      for (; j + 2 <= c1; j += 2) {
        const ca = j * dim;
        const cb = ca + dim;
        let a0 = 0, a1 = 0, b0 = 0, b1 = 0, c0s = 0, c1s = 0, d0 = 0, d1 = 0;
        for (let t = 0; t < dim; t++) {
          const x = corpus[ca + t]!;
          const y = corpus[cb + t]!;
          const u = queries[qa + t]!;
          const v = queries[qb + t]!;
          const w = queries[qc + t]!;
          const z = queries[qd + t]!;
          a0 += u * x;
          a1 += u * y;
          b0 += v * x;
          b1 += v * y;
          c0s += w * x;
          c1s += w * y;
          d0 += z * x;
          d1 += z * y;
        }
        if (f(a0) >= t0) { heaps.push(q, f(a0), j); t0 = heaps.threshold(q); }
        if (f(a1) >= t0) { heaps.push(q, f(a1), j + 1); t0 = heaps.threshold(q); }
        if (f(b0) >= t1) { heaps.push(q + 1, f(b0), j); t1 = heaps.threshold(q + 1); }
        if (f(b1) >= t1) { heaps.push(q + 1, f(b1), j + 1); t1 = heaps.threshold(q + 1); }
        if (f(c0s) >= t2) { heaps.push(q + 2, f(c0s), j); t2 = heaps.threshold(q + 2); }
        if (f(c1s) >= t2) { heaps.push(q + 2, f(c1s), j + 1); t2 = heaps.threshold(q + 2); }
        if (f(d0) >= t3) { heaps.push(q + 3, f(d0), j); t3 = heaps.threshold(q + 3); }
        if (f(d1) >= t3) { heaps.push(q + 3, f(d1), j + 1); t3 = heaps.threshold(q + 3); }
      }
      for (; j < c1; j++) {
        for (let r = 0; r < 4; r++) pushOne(heaps, queries, (q + r) * dim, corpus, j, dim, q + r);
      }
    }
    for (; q < m; q++) {
      for (let j = c0; j < c1; j++) pushOne(heaps, queries, q * dim, corpus, j, dim, q);
    }
  }
  return heaps.result();
}

function pushOne(heaps: TopKAccumulator, queries: Float32Array, qo: number, corpus: Float32Array, j: number, dim: number, q: number): void {
  const co = j * dim;
  // Same summation order as the blocked kernel and the naive loop: identical scores, identical ties.
  let acc = 0;
  for (let t = 0; t < dim; t++) acc += queries[qo + t]! * corpus[co + t]!;
  const s = Math.fround(acc);
  if (s >= heaps.threshold(q)) heaps.push(q, s, j);
}

/** The obvious way, for tests and the benchmark baseline: every score, then a full sort. */
export function topKNaive(queries: Float32Array, m: number, corpus: Float32Array, n: number, dim: number, k: number): TopKResult {
  const kk = Math.max(0, Math.min(k, n));
  const indices = new Int32Array(m * kk);
  const scores = new Float32Array(m * kk);
  for (let q = 0; q < m; q++) {
    const all: Array<{ i: number; s: number }> = [];
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let t = 0; t < dim; t++) s += queries[q * dim + t]! * corpus[i * dim + t]!;
      all.push({ i, s: Math.fround(s) });
    }
    all.sort((a, b) => b.s - a.s || a.i - b.i);
    for (let r = 0; r < kk; r++) {
      indices[q * kk + r] = all[r]!.i;
      scores[q * kk + r] = all[r]!.s;
    }
  }
  return { k: kk, indices, scores };
}
