import type { ModelManifest } from '../inference/types.js';
import { ApiError } from './errors.js';
import { renderCached } from '../hooks/cache.js';

export { ApiError };

/**
 * Request parsing for POST /v1/embeddings: one function that accepts both shapes users send
 * today (OpenAI and Jina) and turns them into one normalised request, or throws an ApiError
 * whose message names the field and what to send instead.
 */

/** The most inputs one request may carry (OpenAI's limit). */
export const MAX_INPUTS = 2048;

export const JINA_TASKS = ['retrieval.query', 'retrieval.passage', 'text-matching', 'classification', 'separation'] as const;

export type EmbeddingType = 'float' | 'base64' | 'binary' | 'ubinary';

export interface EmbedRequest {
  inputs: string[];
  /** What the caller named; echoed back only when it names this model (see server). */
  model?: string;
  encoding: EmbeddingType;
  /** Output size after Matryoshka truncation (= manifest.dimensions when not asked). */
  dimensions: number;
  task?: string;
  normalized: boolean;
  truncate: boolean;
}

const bad = (message: string, param: string | null, code = 'invalid_value') => new ApiError(400, message, param, code);

function parseInputs(raw: unknown): string[] {
  if (raw === undefined || raw === null) {
    throw bad("'input' is required: a string or an array of strings", 'input', 'missing_required_parameter');
  }
  if (typeof raw === 'string') {
    if (raw === '') throw bad("'input' is an empty string; send at least one character", 'input');
    return [raw];
  }
  if (!Array.isArray(raw)) {
    throw bad(`'input' must be a string or an array of strings, got ${typeName(raw)}`, 'input', 'invalid_type');
  }
  if (raw.length === 0) throw bad("'input' is an empty array; send at least one string", 'input');
  if (raw.length > MAX_INPUTS) {
    throw bad(`'input' has ${raw.length} items; send at most ${MAX_INPUTS} per request`, 'input', 'too_many_inputs');
  }
  if (typeof raw[0] === 'number' || Array.isArray(raw[0])) {
    throw bad("'input' as token ids is not supported by this server; send the text itself", 'input', 'invalid_type');
  }
  return raw.map((v, i) => {
    // Jina's multimodal shape ({text: "..."}) carries plain text too.
    const text = typeof v === 'object' && v !== null && !Array.isArray(v) && 'text' in v ? (v as { text: unknown }).text : v;
    if (typeof text !== 'string') {
      throw bad(`'input[${i}]' must be a string, got ${typeName(text)}`, 'input', 'invalid_type');
    }
    if (text === '') throw bad(`'input[${i}]' is an empty string; send at least one character`, 'input');
    return text;
  });
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

function bool(body: Record<string, unknown>, key: string, dflt: boolean): boolean {
  const v = body[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw bad(`'${key}' must be true or false, got ${JSON.stringify(v)}`, key, 'invalid_type');
  return v;
}

/** The dimensions a caller may ask for: the Matryoshka list plus the full size. */
export function allowedDimensions(m: ModelManifest): number[] {
  return [...new Set([...m.matryoshkaDimensions, m.dimensions])].filter((d) => d >= 1 && d <= m.dimensions).sort((a, b) => a - b);
}

export function parseEmbedRequest(body: unknown, manifest: ModelManifest): EmbedRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw bad('the request body must be a JSON object like {"input": ["text"], "model": "..."}', null, 'invalid_body');
  }
  const b = body as Record<string, unknown>;
  const inputs = parseInputs(b.input);

  if (b.model !== undefined && b.model !== null && typeof b.model !== 'string') {
    throw bad(`'model' must be a string, got ${typeName(b.model)}`, 'model', 'invalid_type');
  }

  // OpenAI says encoding_format, Jina says embedding_type; both mean the wire format of vectors.
  let encoding: EmbeddingType = 'float';
  if (b.encoding_format !== undefined && b.encoding_format !== null) {
    if (b.encoding_format !== 'float' && b.encoding_format !== 'base64') {
      throw bad(`'encoding_format' must be "float" or "base64", got ${JSON.stringify(b.encoding_format)}`, 'encoding_format');
    }
    encoding = b.encoding_format;
  }
  if (b.embedding_type !== undefined && b.embedding_type !== null) {
    const t = b.embedding_type;
    if (t !== 'float' && t !== 'base64' && t !== 'binary' && t !== 'ubinary') {
      throw bad(`'embedding_type' must be one of float, base64, binary, ubinary; got ${JSON.stringify(t)}`, 'embedding_type');
    }
    encoding = t;
  }

  let dimensions = manifest.dimensions;
  if (b.dimensions !== undefined && b.dimensions !== null) {
    const d = b.dimensions;
    const allowed = allowedDimensions(manifest);
    if (typeof d !== 'number' || !Number.isInteger(d)) {
      throw bad(`'dimensions' must be a whole number, one of ${allowed.join(', ')}; got ${JSON.stringify(d)}`, 'dimensions', 'invalid_type');
    }
    if (!allowed.includes(d)) {
      throw bad(`'dimensions' ${d} is not supported by ${manifest.name}; use one of ${allowed.join(', ')}`, 'dimensions');
    }
    dimensions = d;
  }

  let task: string | undefined;
  if (b.task !== undefined && b.task !== null) {
    const known = new Set<string>([...JINA_TASKS, ...Object.keys(manifest.taskPrefixes)]);
    if (typeof b.task !== 'string' || !known.has(b.task)) {
      throw bad(`'task' ${JSON.stringify(b.task)} is not known; use one of ${[...known].join(', ')}`, 'task');
    }
    task = b.task;
  }

  if (b.late_chunking !== undefined && b.late_chunking !== null && b.late_chunking !== false) {
    throw bad("'late_chunking' is not supported by this server; send false or leave it out", 'late_chunking', 'unsupported_value');
  }
  if (b.user !== undefined && b.user !== null && typeof b.user !== 'string') {
    throw bad(`'user' must be a string, got ${typeName(b.user)}`, 'user', 'invalid_type');
  }
  // Fields this server does not know are ignored, as OpenAI does, so newer SDKs keep working.
  return {
    inputs,
    model: typeof b.model === 'string' ? b.model : undefined,
    encoding,
    dimensions,
    task,
    normalized: bool(b, 'normalized', true),
    truncate: bool(b, 'truncate', true),
  };
}

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

export function encodeVector(v: Float32Array, encoding: EmbeddingType): number[] | string {
  switch (encoding) {
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
