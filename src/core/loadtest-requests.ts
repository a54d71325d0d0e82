/**
 * What the load test sends and how it judges each answer: request bodies in the OpenAI or Jina
 * shape from the text file, and the per-response checks both engines count.
 */
import { CHECK_NAMES, type Shape } from './loadtest.js';
import { seededRandom } from './vectors.js';

/* ---------- request bodies ---------- */

export interface BodyOptions {
  shape: Shape;
  batch: number;
  model?: string;
  dimensions?: number;
}

/** The request body for one call, in the shape the hosted API (and our runtime) accepts. */
export function requestBody(opts: BodyOptions, input: string[]): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (opts.model) body.model = opts.model;
  body.input = input;
  if (opts.shape === 'openai') body.encoding_format = 'float';
  else body.normalized = true;
  if (opts.dimensions !== undefined) body.dimensions = opts.dimensions;
  return body;
}

/** Draws `batch` texts at random, so batches mix short and long inputs like real traffic does. */
export function bodyMaker(opts: BodyOptions, texts: string[], seed = 1): () => string {
  // Seeded: two runs with the same seed send the same bodies.
  const rnd = seededRandom(seed);
  return () => {
    const input: string[] = [];
    for (let i = 0; i < opts.batch; i++) input.push(texts[Math.floor(rnd() * texts.length)]!);
    return JSON.stringify(requestBody(opts, input));
  };
}

/** Parses a texts file: JSONL of strings or {text}/{input} objects, a JSON array, or one text per line. */
export function parseTexts(content: string, name: string): string[] {
  const trimmed = content.trim();
  if (trimmed === '') return [];
  const fromValue = (v: unknown): string | undefined => {
    if (typeof v === 'string') return v;
    if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      for (const k of ['text', 'input', 'query', 'passage', 'content']) if (typeof o[k] === 'string') return o[k] as string;
    }
    return undefined;
  };
  if (trimmed.startsWith('[')) {
    try {
      const arr = JSON.parse(trimmed) as unknown[];
      if (Array.isArray(arr)) return arr.map(fromValue).filter((t): t is string => !!t && t.trim() !== '');
    } catch {
      /* not a JSON array: fall through to lines */
    }
  }
  const lines = content.split(/\r?\n/).filter((l) => l.trim() !== '');
  if (name.endsWith('.jsonl') || name.endsWith('.ndjson')) {
    return lines.map((l, i) => {
      let v: unknown;
      try {
        v = JSON.parse(l);
      } catch {
        throw new Error(`line ${i + 1} is not JSON (expected a string or {"text": ...} per line)`);
      }
      const t = fromValue(v);
      if (t === undefined) throw new Error(`line ${i + 1} has no "text" field`);
      return t;
    }).filter((t) => t.trim() !== '');
  }
  return lines.map((l) => l.trim());
}

/* ---------- response checks ---------- */

export interface CheckOutcome {
  name: string;
  ok: boolean;
}

/**
 * The three checks every response gets. `expectedDims` is the --dimensions value, or the first
 * dimension seen (the caller keeps it) so a model that changes shape mid-run is caught.
 */
export function checkResponse(status: number, body: string, batch: number, expectedDims: { value?: number }): CheckOutcome[] {
  let data: unknown[] | undefined;
  if (status === 200) {
    try {
      const parsed = JSON.parse(body) as { data?: unknown };
      if (Array.isArray(parsed.data)) data = parsed.data;
    } catch {
      data = undefined;
    }
  }
  let dimsOk = false;
  if (data && data.length > 0) {
    const lens = data.map((d) => {
      const e = (d as { embedding?: unknown })?.embedding;
      return Array.isArray(e) ? e.length : -1;
    });
    if (expectedDims.value === undefined && lens[0]! > 0) expectedDims.value = lens[0];
    dimsOk = lens.every((l) => l > 0 && l === expectedDims.value);
  }
  return [
    { name: CHECK_NAMES.status, ok: status === 200 },
    { name: CHECK_NAMES.dataLength, ok: !!data && data.length === batch },
    { name: CHECK_NAMES.dimensions, ok: dimsOk },
  ];
}

