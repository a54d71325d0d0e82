import type { IncomingMessage, ServerResponse } from 'node:http';
import { staticKeyAuth } from './auth.js';

/**
 * Hooks: what the runtime does around the model for each request, one place each. The request
 * pipeline every embedding route (OpenAI/Jina, TEI, Ollama) runs, in runtime/routes/pipeline.ts:
 *
 *   1. auth.authenticate(req)            -> Principal, or throw ApiError 401/403. Also guards
 *                                          /v1/models and the admin routes. Default: the static
 *                                          --api-key (hooks/auth.ts), or anonymous when unset.
 *   2. (body read and parsed by the route; the model resolved by name: unknown -> 404)
 *   3. limits.admit(principal, request)  -> Admission, or throw ApiError 429 with Retry-After.
 *                                          Called before tokenising; per-client limits live here.
 *                                          (Server capacity, i.e. latency-aware admission, is the
 *                                          inference layer's own and comes after this.)
 *   4. cache.get(keys)                   -> per input a cached {vector, tokens} or undefined;
 *                                          hits skip the model. Vectors are the model's full-size
 *                                          output; dimensions/encoding are applied afterwards.
 *   5. the model's batcher               (misses only)
 *   6. cache.set(entries)                for the misses (not awaited by the response)
 *   7. admission.done(outcome)           always, once: status and tokens, for accounting/release
 *   8. metrics                           hooks/metrics.ts, always on (/metrics, EMF)
 *
 * Extra routes (e.g. an admin API) go in `routes`, matched before the built-in ones; they get the
 * principal from auth (a route with `auth: false` is called without one).
 * A hook throws ApiError (runtime/routes/errors.ts) to answer with that status; any other error
 * is a 500 and is logged.
 */

export interface Principal {
  /** Stable id for limits, logs and metrics (a key id, a JWT subject; never the secret). */
  id: string;
  /** What the principal may do, e.g. "embed", "admin"; undefined = everything. */
  scopes?: string[];
  /** Free-form attributes an auth hook passes to the limits hook (tier, tenant...). */
  meta?: Record<string, unknown>;
}

export interface AuthHook {
  authenticate(req: IncomingMessage): Principal | Promise<Principal>;
}

export interface LimitRequest {
  /** The API shape: "openai" (also Jina), "tei", "ollama". */
  route: string;
  /** The served model's name (aliases resolved). */
  model: string;
  inputs: number;
  /** Characters over all inputs: a token estimate before tokenising. */
  chars: number;
}

export interface Outcome {
  status: number;
  /** Tokens embedded (cache hits included); 0 on failure. */
  tokens: number;
}

export interface Admission {
  /** Sent with the response (e.g. the x-ratelimit-* headers of the caller's limits). */
  headers?: Record<string, string>;
  done(outcome: Outcome): void;
}

export interface LimitsHook {
  admit(principal: Principal, request: LimitRequest): Admission | Promise<Admission>;
}

export interface CacheKey {
  model: string;
  /** The per-request task ("retrieval.query"...), undefined for none. */
  task: string | undefined;
  /** The input as sent (before any task prefix). */
  text: string;
  truncate: boolean;
}

export interface CacheEntry {
  vector: Float32Array;
  tokens: number;
}

export interface CacheHook {
  get(keys: CacheKey[]): Promise<Array<CacheEntry | undefined>>;
  set(entries: Array<{ key: CacheKey; entry: CacheEntry }>): Promise<void>;
}

export interface ExtraRoute {
  method: string;
  path: string;
  /** Default true: the principal comes from auth.authenticate first. */
  auth?: boolean;
  handle(req: IncomingMessage, res: ServerResponse, principal: Principal | undefined): Promise<void>;
}

export interface Hooks {
  auth: AuthHook;
  limits?: LimitsHook;
  cache?: CacheHook;
  routes?: ExtraRoute[];
  /** Called once after the server drained (close connections to Redis etc.). */
  close?(): Promise<void>;
  /** Extra fields for /health (e.g. cache statistics). */
  health?(): Record<string, unknown>;
}

/** The hooks a runtime gets from its options; `extra` (given by the embedder) wins per hook. */
export function defaultHooks(opts: { apiKey?: string }, extra: Partial<Hooks> = {}): Hooks {
  return { auth: staticKeyAuth(opts.apiKey), ...extra };
}
