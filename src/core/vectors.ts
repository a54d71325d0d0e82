/** Vector math and summary statistics for the quality gates. Pure; no I/O. */

/**
 * Why a vector cannot be used, or undefined when it is fine. An all-zero vector is allowed: a
 * word-vector model gives one for text it has no words for, and cosine() treats it explicitly.
 */
export function vectorProblem(v: ArrayLike<number>): string | undefined {
  if (v.length === 0) return 'empty vector';
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!;
    if (!Number.isFinite(x)) return `${Number.isNaN(x) ? 'NaN' : x > 0 ? 'Infinity' : '-Infinity'} at dimension ${i}`;
  }
  return undefined;
}

export function isZero(v: ArrayLike<number>): boolean {
  for (let i = 0; i < v.length; i++) if (v[i] !== 0) return false;
  return true;
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

export function norm(a: ArrayLike<number>): number {
  return Math.sqrt(dot(a, a));
}

/**
 * Cosine in double precision. Two all-zero vectors agree (1: both sides found nothing to say);
 * a zero against a non-zero vector disagrees completely (0).
 */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`cosine of vectors of different lengths (${a.length} vs ${b.length})`);
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  if (aa === 0 || bb === 0) return aa === bb ? 1 : 0;
  const c = ab / Math.sqrt(aa * bb);
  // Rounding can push identical vectors a hair past 1.
  return Math.max(-1, Math.min(1, c));
}

export function normalize(v: Float32Array): Float32Array {
  const n = norm(v);
  const out = new Float32Array(v.length);
  if (n === 0) return out;
  for (let i = 0; i < v.length; i++) out[i] = v[i]! / n;
  return out;
}

/** Rows packed into one Float32Array (row-major), L2-normalised so a dot product is a cosine. */
export function packNormalized(rows: ArrayLike<number>[], dim?: number): Float32Array {
  const d = dim ?? rows[0]?.length ?? 0;
  const out = new Float32Array(rows.length * d);
  rows.forEach((r, i) => {
    if (r.length !== d) throw new RangeError(`row ${i} has ${r.length} dimensions, expected ${d}`);
    let sq = 0;
    for (let j = 0; j < d; j++) sq += r[j]! * r[j]!;
    const inv = sq > 0 ? 1 / Math.sqrt(sq) : 0;
    for (let j = 0; j < d; j++) out[i * d + j] = r[j]! * inv;
  });
  return out;
}

/**
 * Percentile by linear interpolation between closest ranks (numpy's default), p in [0, 100].
 * `sorted` must be ascending.
 */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const pos = (p / 100) * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export interface Summary {
  min: number;
  p1: number;
  p5: number;
  p50: number;
  mean: number;
  max: number;
}

export function summarize(values: ArrayLike<number>): Summary {
  const sorted = Float64Array.from(values as ArrayLike<number>).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    min: sorted.length ? sorted[0]! : NaN,
    p1: percentile(sorted, 1),
    p5: percentile(sorted, 5),
    p50: percentile(sorted, 50),
    mean: sorted.length ? sum / sorted.length : NaN,
    max: sorted.length ? sorted[sorted.length - 1]! : NaN,
  };
}

/** Equal-width histogram over [lo, hi]; the top edge belongs to the last bin. */
export function histogram(values: ArrayLike<number>, bins = 10, lo = 0, hi = 1): number[] {
  const out = new Array<number>(bins).fill(0);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    let b = Math.floor(((v - lo) / (hi - lo)) * bins);
    if (b >= bins) b = bins - 1;
    if (b < 0) b = 0;
    out[b]!++;
  }
  return out;
}

/** Seeded PRNG (mulberry32): the same seed gives the same sample on every machine. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** k distinct indices out of n, in ascending order, chosen by a seeded partial Fisher-Yates. */
export function sampleIndices(n: number, k: number, seed: number): number[] {
  if (k >= n) return Array.from({ length: n }, (_, i) => i);
  const rnd = seededRandom(seed);
  const idx = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(rnd() * (n - i));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx.slice(0, k).sort((a, b) => a - b);
}
