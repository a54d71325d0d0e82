import { renderCached } from '../hooks/cache.js';
import type { EmbedRequest, EmbeddingType } from './request.js';

/** Vector shaping (Matryoshka truncation, re-normalising) and the wire encodings every route uses. */

/**
 * Shapes one model vector for the response: Matryoshka prefix, re-normalised when asked (a
 * prefix of a unit vector is not a unit vector).
 */
export function shapeVector(v: Float32Array, dimensions: number, normalized: boolean): Float32Array {
  const out = dimensions < v.length ? v.slice(0, dimensions) : v;
  if (!normalized) return out;
  let sq = 0;
  for (let i = 0; i < out.length; i++) sq += out[i]! * out[i]!;
  const norm = Math.sqrt(sq);
  if (norm === 0 || Math.abs(norm - 1) < 1e-7) return out;
  const res = new Float32Array(out.length);
  for (let i = 0; i < out.length; i++) res[i] = out[i]! / norm;
  return res;
}

/** Little-endian float32 bytes, base64: what the OpenAI SDKs decode. */
export function toBase64(v: Float32Array): string {
  const buf = Buffer.alloc(v.length * 4);
  for (let i = 0; i < v.length; i++) buf.writeFloatLE(v[i]!, i * 4);
  return buf.toString('base64');
}

/** Jina's binary types: one sign bit per dimension, packed big-endian into bytes. */
export function toBinary(v: Float32Array, signed: boolean): number[] {
  const out: number[] = [];
  for (let i = 0; i < v.length; i += 8) {
    let byte = 0;
    for (let j = 0; j < 8; j++) byte = (byte << 1) | (i + j < v.length && v[i + j]! > 0 ? 1 : 0);
    out.push(signed ? byte - 128 : byte);
  }
  return out;
}

/**
 * Scalar quantisation of a unit vector's components (each in [-1, 1]): int8 = round(x * 127),
 * uint8 = that + 128, clamped; the scale is fixed, so vectors stay comparable across requests.
 */
export function toInt8(v: Float32Array, unsigned: boolean): number[] {
  const out: number[] = new Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const q = Math.max(-128, Math.min(127, Math.round(v[i]! * 127)));
    out[i] = unsigned ? q + 128 : q || 0; // never -0
  }
  return out;
}

export function encodeVector(v: Float32Array, encoding: EmbeddingType): number[] | string {
  switch (encoding) {
    case 'int8':
      return toInt8(v, false);
    case 'uint8':
      return toInt8(v, true);
    case 'base64':
      return toBase64(v);
    case 'binary':
      return toBinary(v, true);
    case 'ubinary':
      return toBinary(v, false);
    default:
      return Array.from(v);
  }
}

const POW10 = Array.from({ length: 23 }, (_, i) => 10 ** i);

/**
 * One float32 as JSON text with 9 significant digits, which is enough for every float32 to parse
 * back to itself (Math.fround(JSON.parse(s)) === x). JSON.stringify prints the float widened to
 * a double (17 digits, e.g. 0.10000000149011612): a third more bytes and slower to produce and to
 * parse, for digits that carry nothing. Non-finite values become null, as JSON.stringify does.
 */
export function float32Json(x: number): string {
  if (x === 0) return '0';
  const a = x < 0 ? -x : x;
  if (!(a >= 1e-7 && a < 1e9)) return Number.isFinite(x) ? String(x) : 'null';
  // 9 digits before rounding; Math.log10 may be off by one next to a power of ten, which costs a
  // digit (8 still round-trips there) or adds one, never correctness.
  const d = 8 - Math.floor(Math.log10(a));
  let s = String(Math.round(a * POW10[d]!));
  let frac = d;
  let end = s.length;
  while (frac > 0 && s.charCodeAt(end - 1) === 48) {
    end--;
    frac--;
  }
  if (end !== s.length) s = s.slice(0, end);
  let out: string;
  if (frac === 0) out = s;
  else if (frac >= s.length) out = `0.${'0'.repeat(frac - s.length)}${s}`;
  else out = `${s.slice(0, s.length - frac)}.${s.slice(s.length - frac)}`;
  return x < 0 ? `-${out}` : out;
}

export function float32ArrayJson(v: Float32Array): string {
  let s = '[';
  for (let i = 0; i < v.length; i++) s += (i ? ',' : '') + float32Json(v[i]!);
  return `${s}]`;
}

/**
 * The /v1/embeddings response as JSON text, written directly: the float vectors are most of the
 * bytes and of the serialisation time, so they go through float32ArrayJson instead of becoming
 * arrays of doubles for JSON.stringify.
 */
export function embeddingsResponseJson(
  vectors: Float32Array[],
  req: Pick<EmbedRequest, 'dimensions' | 'normalized' | 'encoding'>,
  model: string,
  tokens: number,
): string {
  let s = '{"object":"list","data":[';
  const format = `${req.dimensions}:${req.normalized ? 'n' : 'r'}:${req.encoding}`;
  const render = (raw: Float32Array) => {
    const v = shapeVector(raw, req.dimensions, req.normalized);
    return req.encoding === 'float' ? float32ArrayJson(v) : JSON.stringify(encodeVector(v, req.encoding));
  };
  for (let i = 0; i < vectors.length; i++) {
    // A vector the response cache holds is rendered once per output shape (hooks/cache.ts).
    const embedding = renderCached(vectors[i]!, format, render);
    s += `${i ? ',' : ''}{"object":"embedding","index":${i},"embedding":${embedding}}`;
  }
  return `${s}],"model":${JSON.stringify(model)},"usage":{"prompt_tokens":${tokens},"total_tokens":${tokens}}}`;
}
