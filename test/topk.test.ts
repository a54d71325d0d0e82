import { describe, expect, it } from 'vitest';
import { topK, topKNaive } from '../src/core/topk.js';
import { onnxBackend } from '../src/adapters/onnx-topk.js';
import { seededRandom } from '../src/core/vectors.js';

function randomRows(rows: number, dim: number, seed: number): Float32Array {
  const rnd = seededRandom(seed);
  const a = new Float32Array(rows * dim);
  for (let i = 0; i < a.length; i++) a[i] = rnd() * 2 - 1;
  return a;
}

describe('exact top-k', () => {
  it('finds the hand-computed best rows', () => {
    // corpus rows: e1, e2, (e1+e2)/|..|, -e1; query e1 -> rows 0 (1), 2 (0.707), 1 (0)
    const c = Float32Array.from([1, 0, 0, 1, Math.SQRT1_2, Math.SQRT1_2, -1, 0]);
    const r = topK(Float32Array.from([1, 0]), 1, c, 4, 2, 3);
    expect(Array.from(r.indices)).toEqual([0, 2, 1]);
    expect(r.scores[1]).toBeCloseTo(Math.SQRT1_2, 6);
  });

  it('agrees with the naive double loop + full sort, whatever the block and batch edges', () => {
    const dim = 37; // odd width, rows not multiples of the 4 x 2 kernel
    const m = 11;
    const n = 501;
    const q = randomRows(m, dim, 1);
    const c = randomRows(n, dim, 2);
    const want = topKNaive(q, m, c, n, dim, 10);
    for (const blockRows of [2, 7, 64, 1000]) {
      const got = topK(q, m, c, n, dim, 10, { blockRows });
      expect(Array.from(got.indices)).toEqual(Array.from(want.indices));
      expect(Array.from(got.scores)).toEqual(Array.from(want.scores));
    }
  });

  it('breaks ties by lower row index and caps k at the corpus size', () => {
    const c = Float32Array.from([1, 0, 1, 0, 0, 1]);
    const r = topK(Float32Array.from([1, 0]), 1, c, 3, 2, 10);
    expect(r.k).toBe(3);
    expect(Array.from(r.indices)).toEqual([0, 1, 2]);
  });

  it('the onnxruntime backend returns the same rows as the naive loop', async () => {
    const dim = 48;
    const m = 9;
    const n = 3000;
    const q = randomRows(m, dim, 3);
    const c = randomRows(n, dim, 4);
    const want = topKNaive(q, m, c, n, dim, 10);
    const got = await onnxBackend({ blockRows: 700, queryRows: 4 }).topK(q, m, c, n, dim, 10);
    expect(Array.from(got.indices)).toEqual(Array.from(want.indices));
    got.scores.forEach((s, i) => expect(s).toBeCloseTo(want.scores[i]!, 4));
  });
});
