import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CacheKey, Principal } from '../hooks/index.js';
import { InferenceError } from '../inference/errors.js';
import type { ModelSlot } from '../inference/models.js';
import { ApiError, apiErrorOf } from './errors.js';
import type { RequestNote, RouteContext } from './types.js';
import { Cancellation, type CancelSignal } from '../inference/types.js';

/**
 * The request pipeline every embedding route runs (documented with the hooks in
 * runtime/hooks/index.ts): authenticate -> (route parses) -> model by name -> limits -> cache ->
 * batcher -> cache store -> respond. Routes differ only in how they parse and answer.
 */

/** Refuses before the body is read: loading, draining, bad credentials. */
export async function admitRequest(req: IncomingMessage, ctx: RouteContext): Promise<Principal> {
  const state = ctx.state();
  if (state === 'draining' || state === 'closed') {
    throw new ApiError(503, 'the server is shutting down; retry on another replica', null, 'shutting_down', 'server_error', { 'retry-after': '1' });
  }
  return ctx.hooks.auth.authenticate(req);
}

/** The served model `name` asks for (undefined = the first); unknown -> 404 naming what is served. */
export function modelFor(ctx: RouteContext, name: string | undefined): ModelSlot {
  try {
    return ctx.models.resolve(name).slot;
  } catch (err) {
    throw err instanceof InferenceError ? apiErrorOf(err) : err;
  }
}

export interface EmbedJob {
  route: string;
  slot: ModelSlot;
  texts: Array<string | number[]>;
  task: string | undefined;
  truncate: boolean;
  /** Token states instead of pooled vectors (TEI's /embed_all); never cached. */
  tokens?: boolean;
}

export interface EmbedOutput {
  vectors: Float32Array[];
  tokens: number;
}

export async function embed(req: IncomingMessage, res: ServerResponse, ctx: RouteContext, note: RequestNote, principal: Principal, job: EmbedJob): Promise<EmbedOutput> {
  const { slot, texts } = job;
  note.inputs = texts.length;
  note.model = slot.name;
  const service = slot.service!;
  const { fault } = ctx;
  if (fault.status && Math.random() < fault.rate) {
    throw new ApiError(fault.status, `injected fault (the server runs with --fault-injection on; POST /admin/fault {"status":0} clears it)`, null, 'injected_fault', 'server_error');
  }
  // Refuse before any per-client accounting or tokenising when the server cannot take it anyway.
  const full = service.refusal(texts.length);
  if (full) throw overloaded(ctx, full);
  let chars = 0;
  for (const t of texts) chars += t.length;
  note.caller = principal.id;
  const admission = await ctx.hooks.limits?.admit(principal, { route: job.route, model: slot.name, inputs: texts.length, chars });
  for (const [k, v] of Object.entries(admission?.headers ?? {})) res.setHeader(k, v);
  let outcome = { status: 500, tokens: 0 };
  try {
    // A client that hangs up frees its queued inputs (and stops its tokenisation).
    const ac = new Cancellation();
    res.on('close', () => {
      if (!res.writableFinished) ac.abort(new Error('client closed the connection'));
    });
    const out = await embedCached(ctx, job, ac, note.receivedAt);
    ctx.metrics.inputs.inc(texts.length);
    ctx.metrics.tokens.inc(out.tokens);
    note.tokens = out.tokens;
    outcome = { status: 200, tokens: out.tokens };
    return out;
  } catch (err) {
    if (err instanceof ApiError) outcome.status = err.status;
    if (err instanceof InferenceError) {
      const api = err.kind === 'overloaded' ? overloaded(ctx, err) : apiErrorOf(err);
      outcome.status = api.status;
      throw api;
    }
    throw err;
  } finally {
    admission?.done(outcome);
  }
}

function overloaded(ctx: RouteContext, err: InferenceError): ApiError {
  ctx.metrics.rejected.inc({ reason: 'queue_full' });
  const api = apiErrorOf(err);
  return new ApiError(429, api.message, null, api.code, 'rate_limit_error', api.headers);
}

/** Cache hits skip the model; misses go to the batcher and are stored afterwards. */
async function embedCached(ctx: RouteContext, job: EmbedJob, signal: CancelSignal, receivedAt?: number): Promise<EmbedOutput> {
  const service = job.slot.service!;
  const cache = ctx.hooks.cache;
  if (!cache || job.tokens) return service.embed({ texts: job.texts, task: job.task, truncate: job.truncate, signal, tokens: job.tokens, receivedAt });
  // Token-array inputs get a key no text can have.
  const keys: CacheKey[] = job.texts.map((t) => ({ model: job.slot.name, task: job.task, text: typeof t === 'string' ? t : `\u0000ids:${t.join(',')}`, truncate: job.truncate }));
  const hits = await cache.get(keys);
  const missAt: number[] = [];
  hits.forEach((h, i) => h === undefined && missAt.push(i));
  const vectors: Float32Array[] = new Array(job.texts.length);
  let tokens = 0;
  hits.forEach((h, i) => {
    if (h) {
      vectors[i] = h.vector;
      tokens += h.tokens;
    }
  });
  if (missAt.length > 0) {
    const fresh = await service.embedEach({ texts: missAt.map((i) => job.texts[i]!), task: job.task, truncate: job.truncate, signal, receivedAt });
    missAt.forEach((at, j) => {
      vectors[at] = fresh.vectors[j]!;
      tokens += fresh.tokens[j]!;
    });
    cache
      .set(missAt.map((at, j) => ({ key: keys[at]!, entry: { vector: fresh.vectors[j]!, tokens: fresh.tokens[j]! } })))
      .catch((err: unknown) => ctx.log({ event: 'cache_error', error: err instanceof Error ? err.message : String(err) }));
  }
  return { vectors, tokens };
}
