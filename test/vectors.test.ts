import { describe, expect, it } from 'vitest';
import { cosine, histogram, packNormalized, percentile, sampleIndices, summarize, vectorProblem } from '../src/core/vectors.js';

describe('vectors', () => {
  it('cosine matches hand-computed cases', () => {
    expect(cosine([1, 0], [0, 1])).toBe(0);
    expect(cosine([1, 2, 3], [2, 4, 6])).toBe(1);
    expect(cosine([1, 0], [-1, 0])).toBe(-1);
    // (1*1 + 1*0) / (sqrt 2 * 1)
    expect(cosine([1, 1], [1, 0])).toBeCloseTo(1 / Math.SQRT2, 15);
    // 3-4-5: (3*4 + 4*3) / 25
    expect(cosine([3, 4], [4, 3])).toBeCloseTo(24 / 25, 15);
    expect(() => cosine([1], [1, 2])).toThrow(/different lengths/);
    // Zero vectors (word-vector models on out-of-vocabulary text): both zero agree, one zero does not.
    expect(cosine([0, 0], [0, 0])).toBe(1);
    expect(cosine([0, 0], [1, 0])).toBe(0);
  });

  it('names what is wrong with a vector', () => {
    expect(vectorProblem([])).toBe('empty vector');
    expect(vectorProblem([0.1, Number.NaN])).toBe('NaN at dimension 1');
    expect(vectorProblem([Number.POSITIVE_INFINITY])).toBe('Infinity at dimension 0');
    expect(vectorProblem([0, 0])).toBeUndefined();
    expect(vectorProblem([0.3, 0.4])).toBeUndefined();
  });

  it('percentiles interpolate like numpy and summarize reports them', () => {
    const xs = [0.9, 0.1, 0.5, 0.3, 0.7];
    expect(percentile([0.1, 0.3, 0.5, 0.7, 0.9], 50)).toBeCloseTo(0.5, 12);
    // numpy.percentile([.1,.3,.5,.7,.9], 5) = 0.1 + 0.2 * 0.2
    expect(percentile([0.1, 0.3, 0.5, 0.7, 0.9], 5)).toBeCloseTo(0.14, 12);
    const s = summarize(xs);
    expect(s.min).toBeCloseTo(0.1, 6);
    expect(s.mean).toBeCloseTo(0.5, 12);
    expect(s.p1).toBeCloseTo(0.1 + 0.04 * 0.2, 6);
    expect(s.max).toBeCloseTo(0.9, 6);
  });

  it('histogram puts 1.0 in the last bin', () => {
    expect(histogram([0, 0.05, 0.15, 0.99, 1], 10)).toEqual([2, 1, 0, 0, 0, 0, 0, 0, 0, 2]);
  });

  it('packs rows normalised', () => {
    const p = packNormalized([[3, 4], [0, 2]]);
    expect(Array.from(p)).toEqual([0.6000000238418579, 0.800000011920929, 0, 1]);
  });

  it('samples deterministically by seed', () => {
    const a = sampleIndices(200, 40, 7);
    expect(a).toEqual(sampleIndices(200, 40, 7));
    expect(new Set(a).size).toBe(40);
    expect(a).not.toEqual(sampleIndices(200, 40, 8));
    expect(sampleIndices(5, 10, 1)).toEqual([0, 1, 2, 3, 4]);
  });
});
