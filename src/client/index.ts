import { readFileSync } from 'node:fs';
import { CircuitBreaker, type BreakerOptions, type BreakerSnapshot } from './breaker.js';
import { routesToSelfHosted } from './route.js';

/**
 * The hybrid client: for applications that route between the hosted API and the self-hosted
 * runtime in code instead of through nginx.
 *
 *   import { createHybridClient } from 'embedctl/client';
 *   const client = createHybridClient({
 *     selfHosted: { url: 'http://10.0.0.5:8080', model: 'jina-embeddings-v3' },
 *     hosted: { url: 'https://api.jina.ai/v1/embeddings', apiKey: process.env.JINA_API_KEY, model: 'jina-embeddings-v3', shape: 'jina' },
 *     percentFrom: { env: 'SELF_HOSTED_TRAFFIC_PERCENT', envFile: '.embedctl/traffic.env' },
 *   });
 *   const { vectors, backend } = await client.embed(['hello'], { key: tenantId });
 *
 * Imported by user applications: Node built-ins and global fetch only, no dependencies.
 */

export { bucketOf, murmurhash2, routesToSelfHosted } from './route.js';
export { CircuitBreaker, type BreakerOptions, type BreakerSnapshot, type BreakerState } from './breaker.js';

export type Backend = 'selfhosted' | 'hosted';

export interface EndpointConfig {
  /** Base URL (http://host:port) or the full embeddings endpoint. */
  url: string;
  apiKey?: string;
  model: string;
  /** Request body shape; both answer in the OpenAI list shape. */
  shape?: 'openai' | 'jina';
  /**
   * Jina task (retrieval.query, retrieval.passage, ...), sent whenever set, with either shape (the
   * self-hosted runtime takes it on its OpenAI-shaped route too). Leave it unset for OpenAI itself.
   */
  task?: string;
}

export interface HybridClientOptions {
  /** One runtime, or several replicas: a failing replica is skipped for the next (like nginx). */
  selfHosted: EndpointConfig | EndpointConfig[];
  hosted: EndpointConfig;
  /** A fixed share (0..100) or a function read on every call. Wins over percentFrom. */
  percent?: number | (() => number);
  /**
   * Where the share comes from when `percent` is not given, first found wins:
   * env (variable name), envFile (SELF_HOSTED_TRAFFIC_PERCENT=N, as `rollout --driver env` writes),
   * stateFile (.embedctl/rollout.json). Nothing found or unreadable -> 0 (all hosted).
   */
  percentFrom?: { env?: string; envFile?: string; stateFile?: string };
  /**
   * Whether both sides serve the same model. Only then does a self-hosted failure fall back to
   * hosted: vectors of two different models are not comparable, so mixing them silently would
   * corrupt an index. Default: the two model names are equal.
   */
  sameModel?: boolean;
  /**
   * Per-replica circuit breaker (default: 3 consecutive failures open it for 5 s, then one probe).
   * While every replica's breaker is open, self-hosted keys go straight to hosted (same model)
   * or fail at once with a clear error, instead of waiting on a replica known to fail.
   */
  breaker?: BreakerOptions;
  /** Retries after the first attempt on 408/429/5xx/network errors (default 2; with several replicas, the next replica is the retry). */
  retries?: number;
  /** Per-attempt timeout (default 30 s). */
  timeoutMs?: number;
  backoffBaseMs?: number;
  maxBackoffMs?: number;
  /** A Retry-After longer than this is not waited for: the call fails (or falls back) at once. */
  maxRetryAfterMs?: number;
  /** How long a percentage read from a file is reused before reading again (default 1 s). */
  refreshMs?: number;
  fetch?: typeof fetch;
  env?: Record<string, string | undefined>;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export interface EmbedOptions {
  /** Tenant or user id: routing is sticky per key. */
  key: string;
  signal?: AbortSignal;
}

export interface HybridResult {
  vectors: number[][];
  backend: Backend;
  fellBack: boolean;
  /** The share in force when the call was routed. */
  percent: number;
}

export interface HybridStats {
  selfhosted: number;
  hosted: number;
  fallbacks: number;
  retries: number;
  errors: { selfhosted: number; hosted: number };
  /** Each self-hosted replica's breaker, in the order given. */
  breakers: Array<{ url: string } & BreakerSnapshot>;
}

export interface HybridClient {
  embed(texts: string[], opts: EmbedOptions): Promise<HybridResult>;
  /** The side a key goes to right now. */
  route(key: string): Backend;
  percent(): number;
  stats(): HybridStats;
}

export class HybridClientError extends Error {
  readonly backend: Backend;
  readonly status: number | undefined;
  /** Server-side or transport failure (a fallback candidate), as opposed to a bad request. */
  readonly serverSide: boolean;
  constructor(backend: Backend, message: string, o: { status?: number; serverSide: boolean; cause?: unknown }) {
    super(`${backend}: ${message}`, o.cause === undefined ? undefined : { cause: o.cause });
    this.name = 'HybridClientError';
    this.backend = backend;
    this.status = o.status;
    this.serverSide = o.serverSide;
  }
}

export const PERCENT_ENV = 'SELF_HOSTED_TRAFFIC_PERCENT';

export function createHybridClient(o: HybridClientOptions): HybridClient {
  const f = o.fetch ?? globalThis.fetch;
  const env = o.env ?? process.env;
  const retries = o.retries ?? 2;
  const timeoutMs = o.timeoutMs ?? 30_000;
  const base = o.backoffBaseMs ?? 100;
  const maxBackoff = o.maxBackoffMs ?? 5_000;
  const maxRetryAfter = o.maxRetryAfterMs ?? 30_000;
  const refreshMs = o.refreshMs ?? 1_000;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  // The caller's abort ends a backoff or Retry-After wait at once (it can be up to maxRetryAfterMs).
  const pause = (ms: number, signal?: AbortSignal): Promise<void> => {
    if (!signal) return sleep(ms);
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal.reason);
      };
      const settle = (fn: () => void) => () => {
        signal.removeEventListener('abort', onAbort);
        fn();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      if (o.sleep) o.sleep(ms).then(settle(resolve), (e: unknown) => settle(() => reject(e))());
      else timer = setTimeout(settle(resolve), ms);
    });
  };
  const random = o.random ?? Math.random;
  const sameModel = o.sameModel ?? (Array.isArray(o.selfHosted) ? o.selfHosted : [o.selfHosted]).every((e) => e.model === o.hosted.model);
  const replicas = (Array.isArray(o.selfHosted) ? o.selfHosted : [o.selfHosted]).map((e) => ({ e, breaker: new CircuitBreaker(o.breaker) }));
  if (replicas.length === 0) throw new TypeError('selfHosted needs at least one endpoint');
  const stats: Omit<HybridStats, 'breakers'> = { selfhosted: 0, hosted: 0, fallbacks: 0, retries: 0, errors: { selfhosted: 0, hosted: 0 } };
  let nextReplica = 0;
  const fileCache = new Map<string, { at: number; value: number | undefined }>();

  const cached = (path: string, read: (text: string) => number | undefined): number | undefined => {
    const hit = fileCache.get(path);
    if (hit && Date.now() - hit.at < refreshMs) return hit.value;
    let value: number | undefined;
    try {
      value = read(readFileSync(path, 'utf8'));
    } catch {
      value = undefined;
    }
    fileCache.set(path, { at: Date.now(), value });
    return value;
  };

  const currentPercent = (): number => {
    let p: number | undefined;
    if (typeof o.percent === 'function') p = o.percent();
    else if (typeof o.percent === 'number') p = o.percent;
    else {
      const from = o.percentFrom ?? { env: PERCENT_ENV };
      if (from.env && env[from.env] !== undefined && env[from.env] !== '') p = Number(env[from.env]);
      if (p === undefined && from.envFile) p = cached(from.envFile, (t) => envFileValue(t, PERCENT_ENV));
      if (p === undefined && from.stateFile) p = cached(from.stateFile, (t) => (JSON.parse(t) as { percent?: unknown }).percent as number);
    }
    // Anything unreadable routes to hosted: the safe side before and during a migration.
    return typeof p === 'number' && Number.isFinite(p) ? Math.min(100, Math.max(0, p)) : 0;
  };

  const endpointUrl = (e: EndpointConfig) => (/\/embed(dings)?\/?$/.test(e.url) ? e.url : `${e.url.replace(/\/+$/, '')}/v1/embeddings`);

  async function call(side: Backend, e: EndpointConfig, texts: string[], signal?: AbortSignal, maxRetries = retries): Promise<number[][]> {
    // A configured task goes out with either shape: the runtime takes it on its OpenAI-shaped route,
    // and dropping it would embed one side without the task's adapter or prefix.
    const body = {
      model: e.model,
      input: texts,
      ...(e.shape === 'jina' ? {} : { encoding_format: 'float' }),
      ...(e.task ? { task: e.task } : {}),
    };
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    if (e.apiKey) headers.authorization = `Bearer ${e.apiKey}`;
    for (let attempt = 0; ; attempt++) {
      let failure: HybridClientError;
      let delay: number | undefined;
      const deadline = attemptSignal(timeoutMs, signal);
      try {
        const res = await f(endpointUrl(e), { method: 'POST', headers, body: JSON.stringify(body), signal: deadline.signal });
        if (res.ok) return parseVectors(side, await res.json(), texts.length);
        const text = (await res.text().catch(() => '')).slice(0, 200);
        const retryable = res.status === 408 || res.status === 429 || res.status >= 500;
        failure = new HybridClientError(side, `HTTP ${res.status}${text ? `: ${text}` : ''}`, { status: res.status, serverSide: retryable });
        if (!retryable) throw failure;
        delay = retryAfterMs(res.headers.get('retry-after'));
        // Waiting longer than the caller allows is worse than failing (or falling back) now.
        if (delay !== undefined && delay > maxRetryAfter) throw failure;
      } catch (err) {
        if (err instanceof HybridClientError) throw err;
        if (signal?.aborted) throw signal.reason;
        failure = new HybridClientError(side, (err as Error).message, { serverSide: true, cause: err });
      } finally {
        deadline.done();
      }
      if (attempt >= maxRetries) throw failure;
      stats.retries++;
      await pause(delay ?? random() * Math.min(maxBackoff, base * 2 ** attempt), signal);
    }
  }

  /**
   * Tries the replicas whose breaker lets a request through, starting with the next in turn; a
   * server-side failure counts against that replica and moves on. With one replica its own
   * retries apply; with several, the next replica is the retry.
   */
  async function selfHosted(texts: string[], signal?: AbortSignal): Promise<number[][]> {
    const start = nextReplica++ % replicas.length;
    const order = replicas.map((_, i) => replicas[(start + i) % replicas.length]!);
    let last: HybridClientError | undefined;
    for (const r of order) {
      if (!r.breaker.tryAcquire()) continue;
      try {
        const vectors = await call('selfhosted', r.e, texts, signal, replicas.length > 1 ? 0 : retries);
        r.breaker.success();
        return vectors;
      } catch (err) {
        if (!(err instanceof HybridClientError)) {
          r.breaker.release();
          throw err;
        }
        if (!err.serverSide) {
          // A refused request (4xx) says nothing bad about the replica's health.
          r.breaker.success();
          throw err;
        }
        r.breaker.failure();
        last = err;
      }
    }
    throw last ?? new HybridClientError('selfhosted', `every replica's circuit breaker is open (${replicas.length} replica${replicas.length === 1 ? '' : 's'}); not waiting on replicas known to fail`, { serverSide: true });
  }

  return {
    percent: currentPercent,
    route: (key) => (routesToSelfHosted(key, currentPercent()) ? 'selfhosted' : 'hosted'),
    stats: () => ({ ...stats, errors: { ...stats.errors }, breakers: replicas.map((r) => ({ url: r.e.url, ...r.breaker.snapshot() })) }),
    async embed(texts, opts) {
      if (!opts || typeof opts.key !== 'string' || opts.key === '') {
        throw new TypeError('embed(texts, { key }) needs a key (tenant or user id): routing is sticky per key');
      }
      const percent = currentPercent();
      if (routesToSelfHosted(opts.key, percent)) {
        try {
          const vectors = await selfHosted(texts, opts.signal);
          stats.selfhosted++;
          return { vectors, backend: 'selfhosted', fellBack: false, percent };
        } catch (err) {
          stats.errors.selfhosted++;
          if (!sameModel || !(err instanceof HybridClientError) || !err.serverSide) throw err;
          try {
            const vectors = await call('hosted', o.hosted, texts, opts.signal);
            stats.hosted++;
            stats.fallbacks++;
            return { vectors, backend: 'hosted', fellBack: true, percent };
          } catch (err2) {
            stats.errors.hosted++;
            throw err2;
          }
        }
      }
      try {
        const vectors = await call('hosted', o.hosted, texts, opts.signal);
        stats.hosted++;
        return { vectors, backend: 'hosted', fellBack: false, percent };
      } catch (err) {
        stats.errors.hosted++;
        throw err;
      }
    },
  };
}

/**
 * One attempt's signal: the caller's abort or the per-attempt timeout, whichever comes first.
 * Not AbortSignal.any([signal, AbortSignal.timeout(ms)]): the composite holds the timeout signal
 * only weakly, so once the GC collects it the timeout never fires and a hung server blocks the
 * call for as long as the caller's signal lives (Node 20). Here the timer holds the controller,
 * and done() drops the listener, so a long-lived caller signal does not collect one per call.
 */
function attemptSignal(timeoutMs: number, caller?: AbortSignal): { signal: AbortSignal; done(): void } {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new DOMException(`no answer within ${timeoutMs} ms`, 'TimeoutError')), timeoutMs);
  const onAbort = () => ac.abort(caller!.reason);
  if (caller?.aborted) ac.abort(caller.reason);
  else caller?.addEventListener('abort', onAbort, { once: true });
  return {
    signal: ac.signal,
    done: () => {
      clearTimeout(timer);
      caller?.removeEventListener('abort', onAbort);
    },
  };
}

function parseVectors(side: Backend, doc: unknown, n: number): number[][] {
  const data = (doc as { data?: unknown })?.data;
  if (!Array.isArray(data) || data.length !== n) {
    throw new HybridClientError(side, `malformed response: expected data with ${n} embeddings`, { serverSide: true });
  }
  const out: number[][] = new Array(n);
  data.forEach((d: { index?: unknown; embedding?: unknown }, i) => {
    const idx = typeof d?.index === 'number' ? d.index : i;
    if (!Array.isArray(d?.embedding) || idx < 0 || idx >= n) {
      throw new HybridClientError(side, `malformed response: item ${i} has no embedding array`, { serverSide: true });
    }
    out[idx] = d.embedding as number[];
  });
  return out;
}

/** Retry-After in seconds or as an HTTP date. */
function retryAfterMs(h: string | null): number | undefined {
  if (!h) return undefined;
  const secs = Number(h);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const at = Date.parse(h);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function envFileValue(text: string, key: string): number | undefined {
  let v: number | undefined;
  for (const line of text.split('\n')) {
    const m = new RegExp(`^\\s*(?:export\\s+)?${key}\\s*=\\s*["']?([^"'\\s#]*)`).exec(line);
    if (m) v = m[1] === '' ? undefined : Number(m[1]);
  }
  return v;
}
