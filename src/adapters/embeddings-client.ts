import { ExternalError } from '../errors.js';
import { sleep as defaultSleep } from '../context.js';
import { vectorProblem } from '../core/vectors.js';
import { routingHash, type EmbeddingCache } from './embedding-cache.js';
import { decodeVector, DEFAULT_MODELS, JINA_HOST, OPENAI_HOST, parseRetryAfter, resolveEndpoint, RetryableError, serverMessage } from './embeddings-shapes.js';

export {
  DEFAULT_MODELS,
  estimateCost,
  estimateTokens,
  isPaidHost,
  LIST_PRICE_PER_MILLION,
  parseHeaders,
  parseRetryAfter,
  resolveEndpoint,
  type CostEstimate,
  type ResolvedEndpoint,
} from './embeddings-shapes.js';

/**
 * One client for every embeddings endpoint a team has: the Jina API, OpenAI (and anything that
 * speaks its shape), Hugging Face TEI (`/embed`), Ollama (`/api/embed`) and embedctl's own runtime. Batches, bounded
 * concurrency, timeouts and retries live here so every command (verify, rag-overlap, load-test,
 * rollout gates, the hybrid client) behaves the same against a flaky endpoint.
 */

export type Shape = 'openai' | 'jina' | 'tei' | 'embedctl' | 'ollama';
export const SHAPES = ['auto', 'openai', 'jina', 'tei', 'embedctl', 'ollama'] as const;

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
  /**
   * Which side of a comparison this client is. It keys the cache, and a candidate never reads or
   * writes it: the candidate is what is being measured, so it must be asked every time.
   */
  side?: 'reference' | 'candidate';
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
  /**
   * Answers per X-Embedctl-Backend value ("selfhosted", "hosted"; "none" without the header):
   * which side of an embedctl gateway answered. Cached texts are not counted.
   */
  backends: Record<string, number>;
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
      case 'ollama':
        return { ...(model ? { model } : {}), input, truncate: true, ...(opts.dimensions ? { dimensions: opts.dimensions } : {}) };
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
    counter: { requests: number; backends: Record<string, number> },
  ): Promise<{ vectors: Float32Array[]; tokens: number; model?: string }> {
    for (let attempt = 0; ; attempt++) {
      try {
        counter.requests++;
        return await attemptOnce(input, offset, signal, counter.backends);
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

  async function attemptOnce(input: string[], offset: (j: number) => number, signal: AbortSignal, backends: Record<string, number>) {
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
    const answer = parseResponse(parsed, input.length, offset);
    // Which side of an embedctl gateway answered: evidence must come from the side it claims.
    const backend = res.headers.get('x-embedctl-backend') ?? 'none';
    backends[backend] = (backends[backend] ?? 0) + 1;
    return answer;
  }

  /** `indexOf(j)` maps a batch position to the caller's text index, for error messages. */
  function parseResponse(parsed: unknown, n: number, indexOf: (j: number) => number) {
    let rows: unknown[];
    let tokens = 0;
    let servedModel: string | undefined;
    if (shape === 'tei') {
      if (!Array.isArray(parsed)) throw fail('TEI answer is not an array of vectors');
      rows = parsed;
    } else if (shape === 'ollama') {
      const p = parsed as { embeddings?: unknown; model?: unknown; prompt_eval_count?: unknown };
      if (!p || !Array.isArray(p.embeddings)) throw fail('Ollama answer has no "embeddings" array (is this /api/embed?)');
      rows = p.embeddings;
      if (typeof p.model === 'string') servedModel = p.model;
      if (typeof p.prompt_eval_count === 'number') tokens = p.prompt_eval_count;
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
    const counter = { requests: 0, backends: {} as Record<string, number> };
    let done = 0;
    let cached = 0;
    let tokens = 0;
    let servedModel: string | undefined;
    const cache = opts.side === 'candidate' ? undefined : opts.cache;
    const ns = cache?.namespace({ endpoint, shape, model, task: opts.task, dimensions: opts.dimensions, side: opts.side, routing: routingHash(headers) });

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
    return { vectors: out, usage: { tokens }, model: servedModel ?? model, cached, requests: counter.requests, backends: counter.backends };
  }

  return { endpoint, shape, model, paid, embed };
}

