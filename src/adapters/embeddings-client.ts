import { ExternalError, UsageError } from '../errors.js';
import { sleep as defaultSleep } from '../context.js';
import { vectorProblem } from '../core/vectors.js';
import type { EmbeddingCache } from './embedding-cache.js';
import { listPricePerMillion } from '../core/cost/prices.js';

/**
 * One client for every embeddings endpoint a team has: the Jina API, OpenAI (and anything that
 * speaks its shape), Hugging Face TEI (`/embed`) and embedctl's own runtime. Batches, bounded
 * concurrency, timeouts and retries live here so every command (verify, rag-overlap, load-test,
 * rollout gates, the hybrid client) behaves the same against a flaky endpoint.
 */

export type Shape = 'openai' | 'jina' | 'tei' | 'embedctl';
export const SHAPES = ['auto', 'openai', 'jina', 'tei', 'embedctl'] as const;

export interface EmbeddingsClientOptions {
  /** Base URL (http://host:port) or the full endpoint (…/v1/embeddings, …/embed). */
  url: string;
  shape?: Shape | 'auto';
  /** Model name sent in the body; Jina and OpenAI need one, embedctl/TEI serve one model. */
  model?: string;
  apiKey?: string;
  /** Extra headers; an Authorization here wins over apiKey and the *_API_KEY variables. */
  headers?: Record<string, string>;
  /** Jina-style task (retrieval.query, retrieval.passage, text-matching, ...). */
  task?: string;
  /** Matryoshka truncation where the endpoint supports it. */
  dimensions?: number;
  /** Texts per request (default 64). */
  batchSize?: number;
  /** Requests in flight at once (default 4). */
  concurrency?: number;
  /** Per-attempt timeout (default 60 s). */
  timeoutMs?: number;
  /** Retries after the first attempt on 408/429/5xx/network errors (default 4). */
  retries?: number;
  /** First backoff step; attempt n waits random(0, min(maxBackoffMs, base * 2^n)) (full jitter). */
  backoffBaseMs?: number;
  maxBackoffMs?: number;
  /** Longest Retry-After we are willing to honour before giving up (default 120 s). */
  maxRetryAfterMs?: number;
  /** Where API keys come from (JINA_API_KEY, OPENAI_API_KEY); defaults to process.env. */
  env?: Record<string, string | undefined>;
  cache?: EmbeddingCache;
  fetch?: typeof fetch;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
  signal?: AbortSignal;
  /** Texts done so far (cache hits count) out of the total. */
  onProgress?: (done: number, total: number) => void;
  onRetry?: (info: RetryInfo) => void;
}

export interface RetryInfo {
  attempt: number;
  delayMs: number;
  reason: string;
}

export interface EmbedResult {
  vectors: Float32Array[];
  usage: { tokens: number };
  /** The model the endpoint says it served (its `model` field), else the one asked for. */
  model: string | undefined;
  /** Texts answered from the on-disk cache. */
  cached: number;
  /** HTTP requests made (retries included). */
  requests: number;
}

export interface EmbeddingsClient {
  readonly endpoint: string;
  readonly shape: Shape;
  readonly model: string | undefined;
  /** Whether calls cost money (a hosted API); the cost guard keys off this. */
  readonly paid: boolean;
  /** `onProgress` here adds to the client-wide one, for a per-call progress bar. */
  embed(texts: string[], call?: { onProgress?: (done: number, total: number) => void }): Promise<EmbedResult>;
}

const JINA_HOST = 'api.jina.ai';
const OPENAI_HOST = 'api.openai.com';
export const DEFAULT_MODELS: Partial<Record<Shape, string>> = {
  jina: 'jina-embeddings-v3',
  openai: 'text-embedding-3-small',
};

export interface ResolvedEndpoint {
  endpoint: string;
  shape: Shape;
  host: string;
}

/** Turns what the user typed into the URL we POST to and the body shape it speaks. */
export function resolveEndpoint(url: string, shape: Shape | 'auto' = 'auto', flag = '--url'): ResolvedEndpoint {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`not a URL: ${JSON.stringify(url)}`, { field: flag, hint: 'e.g. http://127.0.0.1:8080 or https://api.jina.ai/v1/embeddings' });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new UsageError(`only http and https endpoints are supported, got ${u.protocol}`, { field: flag });
  }
  const path = u.pathname.replace(/\/+$/, '');
  let resolved: Shape;
  if (shape !== 'auto') resolved = shape;
  else if (u.hostname === JINA_HOST) resolved = 'jina';
  else if (u.hostname === OPENAI_HOST) resolved = 'openai';
  else if (path.endsWith('/embed')) resolved = 'tei';
  // Anything else speaks the OpenAI shape; embedctl's runtime also reads task/dimensions from it.
  else resolved = 'embedctl';
  if (resolved === 'tei') {
    if (!path.endsWith('/embed')) u.pathname = `${path}/embed`;
  } else if (!path.endsWith('/embeddings')) {
    u.pathname = path.endsWith('/v1') ? `${path}/embeddings` : `${path}/v1/embeddings`;
  }
  return { endpoint: u.toString(), shape: resolved, host: u.hostname };
}

export function isPaidHost(url: string): boolean {
  try {
    const h = new URL(url).hostname;
    return h === JINA_HOST || h === OPENAI_HOST;
  } catch {
    return false;
  }
}

/** `--header "Name: value"` flags into a record; bad ones name the flag. */
export function parseHeaders(list: string[] | undefined, flag = '--header'): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of list ?? []) {
    const i = raw.indexOf(':');
    const name = i > 0 ? raw.slice(0, i).trim() : '';
    if (!name || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
      throw new UsageError(`expected "Name: value", got ${JSON.stringify(raw)}`, { field: flag, hint: 'e.g. --header "Authorization: Bearer $TOKEN"' });
    }
    out[name] = raw.slice(i + 1).trim();
  }
  return out;
}

/** Seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - now);
}

class RetryableError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

function serverMessage(text: string): string {
  let msg = text;
  try {
    const j = JSON.parse(text) as Record<string, unknown>;
    const e = j.error;
    if (typeof e === 'string') msg = e;
    else if (e && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string') msg = (e as { message: string }).message;
    else if (typeof j.detail === 'string') msg = j.detail;
    else if (Array.isArray(j.detail)) msg = JSON.stringify(j.detail);
    else if (typeof j.message === 'string') msg = j.message;
  } catch {
    /* not JSON: the raw text it is */
  }
  msg = msg.replace(/\s+/g, ' ').trim();
  return msg.length > 300 ? `${msg.slice(0, 300)}…` : msg || '(empty body)';
}

function decodeVector(v: unknown): Float32Array | undefined {
  if (Array.isArray(v)) {
    const out = new Float32Array(v.length);
    for (let i = 0; i < v.length; i++) out[i] = typeof v[i] === 'number' ? v[i] : NaN;
    return out;
  }
  if (typeof v === 'string') {
    // encoding_format=base64: little-endian float32, what OpenAI and Jina return when asked.
    const buf = Buffer.from(v, 'base64');
    if (buf.length % 4 !== 0) return undefined;
    const out = new Float32Array(buf.length / 4);
    for (let i = 0; i < out.length; i++) out[i] = buf.readFloatLE(i * 4);
    return out;
  }
  return undefined;
}

export function createEmbeddingsClient(opts: EmbeddingsClientOptions): EmbeddingsClient {
  const { endpoint, shape, host } = resolveEndpoint(opts.url, opts.shape ?? 'auto');
  const model = opts.model ?? DEFAULT_MODELS[shape];
  const batchSize = Math.max(1, opts.batchSize ?? 64);
  const concurrency = Math.max(1, opts.concurrency ?? 4);
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const retries = Math.max(0, opts.retries ?? 4);
  const base = opts.backoffBaseMs ?? 500;
  const cap = opts.maxBackoffMs ?? 30_000;
  const maxRetryAfter = opts.maxRetryAfterMs ?? 120_000;
  const doFetch = opts.fetch ?? fetch;
  const doSleep = opts.sleep ?? defaultSleep;
  const random = opts.random ?? Math.random;
  const env = opts.env ?? process.env;
  const paid = host === JINA_HOST || host === OPENAI_HOST;

  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
  const key = opts.apiKey ?? (host === JINA_HOST ? env.JINA_API_KEY : host === OPENAI_HOST ? env.OPENAI_API_KEY : undefined);
  if (key) headers.authorization = `Bearer ${key}`;
  for (const [k, v] of Object.entries(opts.headers ?? {})) {
    // Header names are case-insensitive: a user's "Authorization" replaces ours, not joins it.
    for (const existing of Object.keys(headers)) if (existing.toLowerCase() === k.toLowerCase()) delete headers[existing];
    headers[k] = v;
  }

  const body = (input: string[]): unknown => {
    switch (shape) {
      case 'jina':
        return {
          model,
          input,
          ...(opts.task ? { task: opts.task } : {}),
          ...(opts.dimensions ? { dimensions: opts.dimensions } : {}),
          normalized: true,
          late_chunking: false,
          embedding_type: 'float',
        };
      case 'openai':
        return { model, input, ...(opts.dimensions ? { dimensions: opts.dimensions } : {}), encoding_format: 'float' };
      case 'tei':
        return { inputs: input, normalize: true, truncate: true };
      case 'embedctl':
        return {
          ...(model ? { model } : {}),
          input,
          encoding_format: 'float',
          ...(opts.task ? { task: opts.task } : {}),
          ...(opts.dimensions ? { dimensions: opts.dimensions } : {}),
        };
    }
  };

  const fail = (msg: string, hint?: string, cause?: unknown) => new ExternalError(endpoint, msg, { hint, cause });

  /** One batch, retried; returns vectors in input order. */
  async function call(
    input: string[],
    offset: (j: number) => number,
    signal: AbortSignal,
    counter: { requests: number },
  ): Promise<{ vectors: Float32Array[]; tokens: number; model?: string }> {
    for (let attempt = 0; ; attempt++) {
      try {
        counter.requests++;
        return await attemptOnce(input, offset, signal);
      } catch (err) {
        if (signal.aborted) throw signal.reason ?? err;
        if (!(err instanceof RetryableError)) throw err;
        if (attempt >= retries) {
          throw fail(`${err.message} (gave up after ${attempt + 1} attempts)`, 'the endpoint keeps failing; check its health and rate limits, or raise --retries');
        }
        let delay: number;
        if (err.retryAfterMs !== undefined) {
          if (err.retryAfterMs > maxRetryAfter) {
            throw fail(`${err.message}; it asks to retry after ${Math.round(err.retryAfterMs / 1000)} s, longer than we wait`, 'try again later or lower --concurrency');
          }
          delay = err.retryAfterMs;
        } else {
          delay = Math.round(random() * Math.min(cap, base * 2 ** attempt));
        }
        opts.onRetry?.({ attempt: attempt + 1, delayMs: delay, reason: err.message });
        await doSleep(delay, signal);
      }
    }
  }

  async function attemptOnce(input: string[], offset: (j: number) => number, signal: AbortSignal) {
    let res: Response;
    try {
      res = await doFetch(endpoint, {
        method: 'POST',
        headers,
        body: JSON.stringify(body(input)),
        signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
      });
    } catch (err) {
      if (signal.aborted) throw err;
      const e = err as Error & { cause?: { code?: string } };
      if (e.name === 'TimeoutError') throw new RetryableError(`no answer within ${timeoutMs} ms`);
      throw new RetryableError(`network error: ${e.cause?.code ?? e.message}`);
    }
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      if (signal.aborted) throw err;
      throw new RetryableError(`connection dropped while reading the answer: ${(err as Error).message}`);
    }
    if (!res.ok) {
      const msg = `HTTP ${res.status}: ${serverMessage(text)}`;
      if (res.status === 429 || res.status === 408 || res.status >= 500) {
        throw new RetryableError(msg, parseRetryAfter(res.headers.get('retry-after')));
      }
      const hint =
        res.status === 401 || res.status === 403
          ? `check the API key (${host === JINA_HOST ? 'JINA_API_KEY' : host === OPENAI_HOST ? 'OPENAI_API_KEY' : '--header "Authorization: Bearer ..."'})`
          : res.status === 404
            ? `is this the embeddings endpoint? try the base URL, a …/v1/embeddings URL or …/embed for TEI (shape ${shape})`
            : 'the request was refused; it was not retried';
      throw fail(msg, hint);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw fail(`answered HTTP ${res.status} with a body that is not JSON: ${serverMessage(text)}`);
    }
    return parseResponse(parsed, input.length, offset);
  }

  /** `indexOf(j)` maps a batch position to the caller's text index, for error messages. */
  function parseResponse(parsed: unknown, n: number, indexOf: (j: number) => number) {
    let rows: unknown[];
    let tokens = 0;
    let servedModel: string | undefined;
    if (shape === 'tei') {
      if (!Array.isArray(parsed)) throw fail('TEI answer is not an array of vectors');
      rows = parsed;
    } else {
      const p = parsed as { data?: unknown; model?: unknown; usage?: { total_tokens?: unknown; prompt_tokens?: unknown } };
      if (!p || !Array.isArray(p.data)) throw fail('answer has no "data" array (is this an embeddings endpoint?)');
      const data = p.data as Array<{ index?: unknown; embedding?: unknown }>;
      rows = new Array(n);
      data.forEach((d, pos) => {
        // Servers may answer out of order; `index` is the contract, position the fallback.
        const idx = typeof d?.index === 'number' ? d.index : pos;
        if (idx < 0 || idx >= n || rows[idx] !== undefined) throw fail(`answer has a bad or repeated index ${idx} for a batch of ${n}`);
        rows[idx] = d.embedding;
      });
      if (typeof p.model === 'string') servedModel = p.model;
      const t = p.usage?.total_tokens ?? p.usage?.prompt_tokens;
      if (typeof t === 'number') tokens = t;
    }
    if (rows.length !== n) throw fail(`sent ${n} texts, got ${rows.length} vectors back`);
    const vectors = rows.map((r, i) => {
      const v = decodeVector(r);
      if (!v) throw fail(`text #${indexOf(i)}: the answer holds no vector`);
      const problem = vectorProblem(v);
      if (problem) throw fail(`text #${indexOf(i)}: ${problem}`, 'the endpoint returned a broken vector; check the model and its inputs');
      return v;
    });
    return { vectors, tokens, model: servedModel };
  }

  async function embed(texts: string[], perCall: { onProgress?: (done: number, total: number) => void } = {}): Promise<EmbedResult> {
    const total = texts.length;
    const report = (d: number, t: number) => {
      opts.onProgress?.(d, t);
      perCall.onProgress?.(d, t);
    };
    const out: Float32Array[] = new Array(total);
    const counter = { requests: 0 };
    let done = 0;
    let cached = 0;
    let tokens = 0;
    let servedModel: string | undefined;
    const cache = opts.cache;
    const ns = cache?.namespace({ endpoint, shape, model, task: opts.task, dimensions: opts.dimensions });

    // Identical texts are embedded once; cache hits are not sent at all.
    const pending = new Map<string, number[]>();
    for (let i = 0; i < total; i++) {
      const t = texts[i]!;
      const hit = ns ? await ns.get(t) : undefined;
      if (hit) {
        out[i] = hit;
        cached++;
        continue;
      }
      const list = pending.get(t);
      if (list) list.push(i);
      else pending.set(t, [i]);
    }
    done = cached;
    if (ns && cached > 0) servedModel = (await ns.meta())?.model;
    if (done > 0) report(done, total);

    const unique = [...pending.keys()];
    const batches: Array<{ start: number; texts: string[] }> = [];
    for (let s = 0; s < unique.length; s += batchSize) batches.push({ start: s, texts: unique.slice(s, s + batchSize) });

    const ac = new AbortController();
    const signal = opts.signal ? AbortSignal.any([opts.signal, ac.signal]) : ac.signal;
    let next = 0;
    let firstError: unknown;
    let dims: number | undefined;
    const worker = async () => {
      while (next < batches.length && firstError === undefined) {
        const b = batches[next++]!;
        try {
          const r = await call(b.texts, (j) => pending.get(b.texts[j]!)![0]!, signal, counter);
          tokens += r.tokens;
          if (r.model) servedModel = r.model;
          for (let j = 0; j < r.vectors.length; j++) {
            const v = r.vectors[j]!;
            if (dims === undefined) dims = v.length;
            else if (v.length !== dims) throw fail(`text #${pending.get(b.texts[j]!)![0]} came back with ${v.length} dimensions, earlier ones with ${dims}`);
            const text = b.texts[j]!;
            for (const i of pending.get(text)!) out[i] = v;
            if (ns) await ns.set(text, v);
            done += pending.get(text)!.length;
          }
          report(done, total);
        } catch (err) {
          if (firstError === undefined) firstError = err;
          ac.abort(err);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, batches.length) }, worker));
    if (firstError !== undefined) {
      if (opts.signal?.aborted) throw opts.signal.reason ?? firstError;
      throw firstError;
    }
    // Cached vectors from an older run must agree in size with what the endpoint answers now.
    const d0 = out[0]?.length;
    const odd = out.findIndex((v) => v.length !== d0);
    if (odd >= 0) throw fail(`text #${odd} has ${out[odd]!.length} dimensions, text #0 has ${d0} (stale cache? rerun with --no-cache)`);
    if (ns && batches.length > 0) await ns.setMeta({ model: servedModel ?? model, dimensions: d0 });
    return { vectors: out, usage: { tokens }, model: servedModel ?? model, cached, requests: counter.requests };
  }

  return { endpoint, shape, model, paid, embed };
}

/** ~4 characters a token for English; dense scripts (CJK) run closer to 1 a token. */
export function estimateTokens(texts: string[]): number {
  let n = 0;
  for (const t of texts) {
    let cjk = 0;
    for (const ch of t) if (/[\u3000-\u9fff\uac00-\ud7af\uf900-\ufaff]/.test(ch)) cjk++;
    n += Math.ceil((t.length - cjk) / 4) + cjk + 1;
  }
  return n;
}

export interface CostEstimate {
  endpoint: string;
  tokens: number;
  usd: number;
  pricePerMillion: number;
}

/** Undefined for a free endpoint (self-hosted, no price given): nothing to guard. */
export function estimateCost(
  client: Pick<EmbeddingsClient, 'endpoint' | 'model' | 'paid'>,
  texts: string[],
  pricePerMillion?: number,
): CostEstimate | undefined {
  if (!client.paid && pricePerMillion === undefined) return undefined;
  // Unknown model: the dearest list price, so the guard errs on the side of asking.
  const price = pricePerMillion ?? listPricePerMillion(client.model) ?? 0.13;
  const tokens = estimateTokens(texts);
  return { endpoint: client.endpoint, tokens, usd: (tokens / 1e6) * price, pricePerMillion: price };
}
