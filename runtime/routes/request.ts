import type { ModelManifest } from '../inference/types.js';
import { ApiError } from './errors.js';

export { ApiError };

/**
 * Request parsing for POST /v1/embeddings: one function that accepts both shapes users send
 * today (OpenAI and Jina) and turns them into one normalised request, or throws an ApiError
 * whose message names the field and what to send instead.
 */

/** The most inputs one request may carry (OpenAI's limit). */
export const MAX_INPUTS = 2048;

export const JINA_TASKS = ['retrieval.query', 'retrieval.passage', 'text-matching', 'classification', 'separation'] as const;

export const EMBEDDING_TYPES = ['float', 'base64', 'binary', 'ubinary', 'int8', 'uint8'] as const;
export type EmbeddingType = (typeof EMBEDDING_TYPES)[number];

export interface EmbedRequest {
  /** Texts, or token-id arrays (OpenAI's token-array inputs, in this model's vocabulary). */
  inputs: Array<string | number[]>;
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

const isIds = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number');

export function parseInputs(raw: unknown): Array<string | number[]> {
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
  // OpenAI's token arrays: one input as [ids] or several as [[ids], [ids]]. A flat array is ONE
  // input however long (its length is a token count, checked against the model's max tokens).
  if (typeof raw[0] === 'number') {
    if (!isIds(raw)) throw bad("'input' mixes token ids and other values; send an array of integers or of strings", 'input', 'invalid_type');
    return [raw];
  }
  if (raw.length > MAX_INPUTS) {
    throw bad(`'input' has ${raw.length} items; send at most ${MAX_INPUTS} per request`, 'input', 'too_many_inputs');
  }
  return raw.map((v, i) => {
    if (Array.isArray(v)) {
      if (!isIds(v)) throw bad(`'input[${i}]' must be a non-empty array of token ids (integers)`, 'input', 'invalid_type');
      return v;
    }
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

/** The sizes a model lists: the Matryoshka list plus the full size. */
export function allowedDimensions(m: ModelManifest): number[] {
  return [...new Set([...m.matryoshkaDimensions, m.dimensions])].filter((d) => d >= 1 && d <= m.dimensions).sort((a, b) => a - b);
}

/**
 * `dimensions` as asked, checked: a Matryoshka model takes any size up to its native one
 * (truncate, then re-normalise; as OpenAI's text-embedding-3 models do), others only their own.
 */
export function checkDimensions(d: unknown, m: ModelManifest): number {
  const matryoshka = m.matryoshkaDimensions.length > 0;
  const sizes = matryoshka ? `any whole number from 1 to ${m.dimensions} (listed sizes: ${allowedDimensions(m).join(', ')})` : `${m.dimensions}, its only size (not a Matryoshka model)`;
  if (typeof d !== 'number' || !Number.isInteger(d)) throw bad(`'dimensions' must be ${sizes}; got ${JSON.stringify(d)}`, 'dimensions', 'invalid_type');
  if (d < 1 || d > m.dimensions || (!matryoshka && d !== m.dimensions)) throw bad(`'dimensions' ${d} is not supported by ${m.name}; use ${sizes}`, 'dimensions');
  return d;
}

/** The tasks a model takes: its LoRA adapters, else Jina's names plus its prefix tasks. */
export function knownTasks(m: ModelManifest): string[] {
  const lora = (m as { loraTasks?: string[] }).loraTasks;
  return lora?.length ? [...new Set([...lora, ...Object.keys(m.taskPrefixes)])] : [...new Set<string>([...JINA_TASKS, ...Object.keys(m.taskPrefixes)])];
}

export function checkTask(t: unknown, m: ModelManifest): string | undefined {
  if (t === undefined || t === null) return undefined;
  const known = knownTasks(m);
  if (typeof t !== 'string' || !known.includes(t)) throw bad(`'task' ${JSON.stringify(t)} is not known; use one of ${known.join(', ')}`, 'task');
  return t;
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
    // OpenAI knows float and base64; the quantised types are accepted here too (parity with Jina).
    if (!(EMBEDDING_TYPES as readonly unknown[]).includes(b.encoding_format)) {
      throw bad(`'encoding_format' must be one of ${EMBEDDING_TYPES.join(', ')}; got ${JSON.stringify(b.encoding_format)}`, 'encoding_format');
    }
    encoding = b.encoding_format as EmbeddingType;
  }
  if (b.embedding_type !== undefined && b.embedding_type !== null) {
    const t = b.embedding_type;
    if (!(EMBEDDING_TYPES as readonly unknown[]).includes(t)) {
      throw bad(`'embedding_type' must be one of ${EMBEDDING_TYPES.join(', ')}; got ${JSON.stringify(t)}`, 'embedding_type');
    }
    encoding = t as EmbeddingType;
  }

  const dimensions = b.dimensions === undefined || b.dimensions === null ? manifest.dimensions : checkDimensions(b.dimensions, manifest);
  const task = checkTask(b.task, manifest);

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

export { embeddingsResponseJson, encodeVector, float32ArrayJson, float32Json, shapeVector, toBase64, toBinary } from './encoding.js';
