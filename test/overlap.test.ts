import { describe, expect, it } from 'vitest';
import { meanDefined, ndcgAtK, overlapAtK, parseQrels, rbo, recallAtK } from '../src/core/overlap.js';

describe('overlap@k', () => {
  it('counts shared ids in the two top-k sets, order ignored', () => {
    expect(overlapAtK(['a', 'b', 'c', 'd'], ['d', 'c', 'b', 'a'], 4)).toBe(1);
    expect(overlapAtK(['a', 'b', 'c', 'd'], ['a', 'x', 'c', 'y'], 4)).toBe(0.5);
    expect(overlapAtK(['a', 'b', 'c'], ['x', 'y', 'z'], 3)).toBe(0);
    // Only the first k of each list count.
    expect(overlapAtK(['a', 'b', 'c'], ['b', 'x', 'a'], 2)).toBe(0.5);
  });
});

describe('rank-biased overlap (extrapolated, p = 0.9)', () => {
  it('is 1 for identical lists and 0 for disjoint ones', () => {
    expect(rbo(['a', 'b', 'c'], ['a', 'b', 'c'])).toBeCloseTo(1, 12);
    expect(rbo(['a', 'b'], ['c', 'd'])).toBe(0);
  });

  it('matches a hand computation for equal-length lists', () => {
    // X1 = 1, X2 = 1, X3 = 2: RBO_ext = X3/3 p^3 + (1-p)/p (X1 p + X2/2 p^2 + X3/3 p^3)
    const p = 0.9;
    const expected = (2 / 3) * p ** 3 + ((1 - p) / p) * (1 * p + 0.5 * p ** 2 + (2 / 3) * p ** 3);
    expect(expected).toBeCloseTo(0.685, 3);
    expect(rbo(['a', 'b', 'c'], ['a', 'c', 'd'], p)).toBeCloseTo(expected, 12);
  });

  it('matches eq. 32 by hand for lists of different lengths, and is symmetric', () => {
    // S = [a, b], L = [b, c, a]: X1 = 0, X2 = 1 (b), X3 = 2; s = 2, l = 3.
    const p = 0.9;
    const sum = 0 * p + (1 / 2) * p ** 2 + (2 / 3) * p ** 3 + ((1 * (3 - 2)) / (2 * 3)) * p ** 3;
    const expected = ((1 - p) / p) * sum + ((2 - 1) / 3 + 1 / 2) * p ** 3;
    expect(rbo(['a', 'b'], ['b', 'c', 'a'], p)).toBeCloseTo(expected, 12);
    expect(rbo(['b', 'c', 'a'], ['a', 'b'], p)).toBeCloseTo(expected, 12);
  });

  it('weighs disagreement at the top more than at the bottom', () => {
    const base = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'];
    const swapTop = ['b', 'a', ...base.slice(2)];
    const swapBottom = [...base.slice(0, 8), 'j', 'i'];
    expect(rbo(base, swapTop)).toBeLessThan(rbo(base, swapBottom));
    expect(rbo(base, swapBottom)).toBeLessThan(1);
  });
});

describe('recall@k and nDCG@10', () => {
  const rel = new Map([
    ['d1', 2],
    ['d2', 1],
    ['d3', 1],
  ]);

  it('recall counts found relevant docs over all relevant ones', () => {
    expect(recallAtK(['d1', 'x', 'd3'], rel, 3)).toBeCloseTo(2 / 3, 12);
    expect(recallAtK(['x', 'y'], rel, 2)).toBe(0);
    expect(recallAtK(['d1'], undefined, 10)).toBeUndefined();
    expect(recallAtK(['d1'], new Map([['d1', 0]]), 10)).toBeUndefined();
  });

  it('nDCG matches a hand computation with linear gains', () => {
    // ranking: x, d2, d1 -> DCG = 0 + 1/log2(3) + 2/log2(4); ideal: 2, 1, 1 -> 2 + 1/log2(3) + 1/2
    const dcg = 1 / Math.log2(3) + 2 / 2;
    const idcg = 2 + 1 / Math.log2(3) + 1 / 2;
    expect(ndcgAtK(['x', 'd2', 'd1'], rel, 10)).toBeCloseTo(dcg / idcg, 12);
    expect(ndcgAtK(['d1', 'd2', 'd3'], rel, 10)).toBeCloseTo(1, 12);
    // Relevant docs past rank k do not count.
    expect(ndcgAtK(['x', 'd1'], rel, 1)).toBe(0);
  });

  it('means skip queries without judgements', () => {
    expect(meanDefined([1, undefined, 0.5])).toBe(0.75);
    expect(meanDefined([undefined])).toBeNaN();
  });
});

describe('parseQrels', () => {
  it('reads BEIR tsv with a header and TREC four-column lines', () => {
    const q = parseQrels('query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t1\nq2 0 d9 1\n');
    expect(q.get('q1')).toEqual(new Map([['d1', 2], ['d2', 1]]));
    expect(q.get('q2')).toEqual(new Map([['d9', 1]]));
  });

  it('names the line of a bad row', () => {
    expect(() => parseQrels('q1 d1\n', 'qrels.tsv')).toThrow(/qrels.tsv:1: expected/);
    expect(() => parseQrels('q1 d1 high\n', 'qrels.tsv')).toThrow(/qrels.tsv:1: grade must be a number/);
  });
});
