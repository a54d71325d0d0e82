// The hand-written response encoder against JSON.parse and JSON.stringify: every float32 must
// come back bit-for-bit, and the document must be the one JSON.stringify would have described.
import { describe, expect, it } from 'vitest';
import { embeddingsResponseJson, float32ArrayJson, float32Json, shapeVector } from '../runtime/routes/request.js';

describe('float32Json', () => {
  it('round-trips random float32 bit patterns and hand-picked edges', () => {
    const f = new Float32Array(1);
    const bits = new Uint32Array(f.buffer);
    let seed = 7;
    const next = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0);
    const edges = [0, -0, 1, -1, 0.1, 0.001, 1e-7, 9.9999999e-8, 9.999999e-4, 0.30000001192092896, 123456.7, 1e9, 999999999, 5e-8, 1.4e-45, 3.4028234663852886e38, -1e30, 10, 100.5];
    const failures: string[] = [];
    for (let k = 0; k < 200_000 + edges.length; k++) {
      if (k < edges.length) f[0] = edges[k]!;
      else bits[0] = next();
      const x = f[0]!;
      if (!Number.isFinite(x)) continue;
      const s = float32Json(x);
      if (!/^-?(0|[1-9]\d*)(\.\d+)?(e[+-]\d+)?$/.test(s) || Math.fround(JSON.parse(s) as number) !== x) failures.push(`${x} -> ${s}`);
    }
    expect(failures).toEqual([]);
  });

  it('writes what JSON.stringify writes for non-finite values, and fewer digits than it', () => {
    expect(float32ArrayJson(Float32Array.of(NaN, Infinity, -Infinity, 0.5))).toBe('[null,null,null,0.5]');
    expect(float32Json(Math.fround(0.1))).toBe('0.100000001');
    expect(JSON.stringify(Math.fround(0.1))).toBe('0.10000000149011612');
    expect(float32ArrayJson(new Float32Array(0))).toBe('[]');
  });
});

describe('embeddingsResponseJson', () => {
  const vectors = [Float32Array.of(0.6, 0.8, 0), Float32Array.of(-3, 4, 0)];
  const reference = (encoding: string, dimensions: number, normalized: boolean) => ({
    object: 'list',
    data: vectors.map((v, index) => {
      const s = shapeVector(v, dimensions, normalized);
      return { object: 'embedding', index, embedding: encoding === 'float' ? Array.from(s) : encoding };
    }),
    model: 'm "quoted"',
    usage: { prompt_tokens: 7, total_tokens: 7 },
  });

  it('parses to the document JSON.stringify would send (floats equal as float32)', () => {
    for (const [dimensions, normalized] of [[3, false], [2, true], [3, true]] as const) {
      const doc = JSON.parse(embeddingsResponseJson(vectors, { encoding: 'float', dimensions, normalized }, 'm "quoted"', 7)) as ReturnType<typeof reference>;
      const ref = reference('float', dimensions, normalized);
      const asF32 = (d: typeof ref) => ({ ...d, data: d.data.map((e) => ({ ...e, embedding: (e.embedding as number[]).map((x) => Math.fround(x)) })) });
      expect(asF32(doc)).toEqual(asF32(ref));
    }
  });

  it('keeps base64 and binary encodings as strings / byte arrays', () => {
    const b64 = JSON.parse(embeddingsResponseJson(vectors, { encoding: 'base64', dimensions: 3, normalized: false }, 'm', 1)) as { data: Array<{ embedding: string }> };
    expect(Buffer.from(b64.data[1]!.embedding, 'base64').readFloatLE(0)).toBe(-3);
    const bin = JSON.parse(embeddingsResponseJson(vectors, { encoding: 'ubinary', dimensions: 3, normalized: false }, 'm', 1)) as { data: Array<{ embedding: number[] }> };
    expect(bin.data[0]!.embedding).toEqual([0b11000000]);
  });
});
