import { readJson, send } from '../http.js';
import { weightDtype } from '../../common/model-manifest.js';
import { shapeVector } from './encoding.js';
import { ApiError } from './errors.js';
import { admitRequest, embed, modelFor } from './pipeline.js';
import { checkDimensions, parseInputs } from './request.js';
import type { ModelSlot } from '../inference/models.js';
import { YIELD_AFTER_MS, type ModelService } from '../inference/service.js';
import type { Route, RouteContext } from './types.js';

/**
 * Hugging Face text-embeddings-inference's API: POST /embed, /embed_all (token states, for bundles
 * whose graph outputs them), /tokenize, GET /info.
 * Errors in TEI's shape {error, error_type}: 413 payload too large, 422 validation, 424 model
 * error, 429 overloaded (503 while loading or draining). TEI serves one model; `model` in the
 * body is not part of its API, but is honoured when present so one runtime can serve several.
 */

const ERROR_TYPES: Record<number, string> = { 400: 'validation', 404: 'validation', 413: 'payload_too_large', 422: 'validation', 424: 'backend', 429: 'overloaded', 503: 'unhealthy' };

/** TEI's statuses: what OpenAI calls 400 (and an unknown model) TEI calls 422. */
function teiError(err: ApiError): { status: number; body: unknown } {
  const status = err.status === 400 || err.status === 404 ? 422 : err.status >= 500 && err.status !== 503 ? 424 : err.status;
  return { status, body: { error: err.message, error_type: ERROR_TYPES[status] ?? (status >= 500 ? 'backend' : 'validation') } };
}

/**
 * Most values (token vectors x dimensions) one /embed_all answer carries: about 80 MB of JSON.
 * Token states are tokens x dims per input where /embed answers dims, so a request /embed takes
 * easily can make an answer the server would spend seconds serialising; 413 names the way out.
 */
export const MAX_EMBED_ALL_VALUES = 4_194_304;

/** A yield to the event loop every YIELD_AFTER_MS of tokenising, as ModelService.embed does; false once the client has gone. */
function slicer(req: Parameters<Route['handle']>[0]) {
  let since = performance.now();
  return async (): Promise<boolean> => {
    if (performance.now() - since <= YIELD_AFTER_MS) return true;
    await new Promise<void>((r) => setImmediate(r));
    since = performance.now();
    return !req.socket.destroyed;
  };
}

async function checkEmbedAllSize(req: Parameters<Route['handle']>[0], service: ModelService, inputs: Array<string | number[]>, prefix: string) {
  const { maxTokens, dimensions } = service.model.manifest;
  // Only tokenise to count when the worst case (every input at max tokens) is over the cap.
  if (inputs.length * maxTokens * dimensions <= MAX_EMBED_ALL_VALUES) return;
  const breathe = slicer(req);
  let tokens = 0;
  for (const t of inputs) {
    // Cut before tokenising: the model sees at most maxTokens either way (a 4 MB input stalled every request for seconds).
    tokens += Math.min(maxTokens, typeof t === 'string' ? service.encodeVisible(t, prefix).ids.length : t.length + 2);
    if (!(await breathe())) return;
  }
  if (tokens * dimensions > MAX_EMBED_ALL_VALUES) {
    throw new ApiError(413, `the answer would hold ${tokens} token vectors of ${dimensions} values, over the ${MAX_EMBED_ALL_VALUES} values /embed_all answers at once; send fewer or shorter inputs per request`, 'inputs', 'payload_too_large');
  }
}

/**
 * TEI's prompt_name: the name of one of the model's prompts (its prefix tasks here, and LoRA
 * adapters), or absent. TEI answers an unknown name 422; so does this (before, any name passed,
 * and "constructor" picked a prototype member as the prefix).
 */
function promptName(v: unknown, slot: ModelSlot): string | undefined {
  if (v === undefined || v === null) return undefined;
  const known = slot.service!.tasks();
  if (typeof v === 'string' && known.includes(v)) return v;
  const use = known.length ? `use one of ${known.join(', ')}` : 'it has no prompts; leave prompt_name out';
  throw new ApiError(422, `'prompt_name' ${JSON.stringify(v)} is not a prompt of ${slot.name}; ${use}`, 'prompt_name', 'invalid_value');
}

const obj = (body: unknown): Record<string, unknown> => (typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {});
const flag = (v: unknown, dflt: boolean) => (typeof v === 'boolean' ? v : dflt);

async function teiEmbed(req: Parameters<Route['handle']>[0], res: Parameters<Route['handle']>[1], ctx: RouteContext, note: Parameters<Route['handle']>[3]) {
  const principal = await admitRequest(req, ctx);
  const b = obj(await readJson(req, ctx.maxBodyBytes, '{"inputs": ["text"]}'));
  const slot = modelFor(ctx, typeof b.model === 'string' ? b.model : undefined);
  const manifest = slot.service!.model.manifest;
  const inputs = parseInputs(b.inputs);
  const dimensions = b.dimensions === undefined || b.dimensions === null ? manifest.dimensions : checkDimensions(b.dimensions, manifest);
  // TEI's prompt_name picks a prompt (prefix) by name: the same as a prefix task here.
  const task = promptName(b.prompt_name, slot);
  // TEI refuses over-long inputs unless truncate is set (its default is false).
  const out = await embed(req, res, ctx, note, principal, { route: 'tei', slot, texts: inputs, task, truncate: flag(b.truncate, false) });
  const normalize = flag(b.normalize, true);
  return { vectors: out.vectors.map((v) => Array.from(shapeVector(v, dimensions, normalize))) };
}

export const teiRoutes: Route[] = [
  {
    paths: ['/embed'],
    methods: ['POST'],
    traffic: true,
    errorBody: (e) => teiError(e),
    async handle(req, res, ctx, note) {
      const { vectors } = await teiEmbed(req, res, ctx, note);
      send(res, 200, vectors);
    },
  },
  {
    paths: ['/embed_all'],
    methods: ['POST'],
    traffic: true,
    errorBody: (e) => teiError(e),
    async handle(req, res, ctx, note) {
      const principal = await admitRequest(req, ctx);
      const b = obj(await readJson(req, ctx.maxBodyBytes, '{"inputs": ["text"]}'));
      const slot = modelFor(ctx, typeof b.model === 'string' ? b.model : undefined);
      const service = slot.service!;
      const { manifest } = service.model;
      if (manifest.pooledByGraph || manifest.pooling === 'none') {
        throw new ApiError(424, `${slot.name} pools inside its graph (its output "${manifest.output}" is one vector per input): it has no token states for /embed_all; use /embed, or serve the bundle before \`models optimize --pool-in-graph\``, null, 'backend');
      }
      const inputs = parseInputs(b.inputs);
      const truncate = flag(b.truncate, false);
      const task = promptName(b.prompt_name, slot);
      await checkEmbedAllSize(req, service, inputs, service.prefixFor(task));
      if (req.socket.destroyed) return;
      const out = await embed(req, res, ctx, note, principal, { route: 'tei', slot, texts: inputs, task, truncate, tokens: true });
      // TEI's shape: per input, one raw (unnormalised) vector per token, special tokens included.
      const dim = manifest.dimensions;
      send(res, 200, out.vectors.map((v) => Array.from({ length: v.length / dim }, (_, t) => Array.from(v.subarray(t * dim, (t + 1) * dim)))));
    },
  },
  {
    paths: ['/tokenize'],
    methods: ['POST'],
    errorBody: (e) => teiError(e),
    async handle(req, res, ctx) {
      await admitRequest(req, ctx);
      const b = obj(await readJson(req, ctx.maxBodyBytes, '{"inputs": ["text"]}'));
      const slot = modelFor(ctx, typeof b.model === 'string' ? b.model : undefined);
      const service = slot.service!;
      const m = service.model;
      const texts = parseInputs(b.inputs).map((t) => (typeof t === 'string' ? t : ''));
      const prefix = service.prefixFor(promptName(b.prompt_name, slot));
      const specials = new Set(m.encode('').ids);
      const breathe = slicer(req);
      const out: Array<Array<{ id: number; text: string; special: boolean; start: null; stop: null }>> = [];
      for (const t of texts) {
        // The tokens the model sees, cut to its max tokens as /embed does with truncate: the text
        // is cut by characters first, so a 4 MB input costs what a 16 KB one does.
        const enc = service.encodeVisible(t, prefix);
        out.push(enc.ids.map((id) => ({ id, text: m.tokenText(id) ?? '', special: specials.has(id), start: null, stop: null })));
        if (!(await breathe())) return;
      }
      send(res, 200, out);
    },
  },
  {
    paths: ['/info'],
    methods: ['GET', 'HEAD'],
    async handle(_req, res, ctx) {
      const slot = ctx.models.primary;
      const m = slot.service?.model;
      const opts = slot.service?.batcher.opts;
      send(res, 200, {
        model_id: slot.name,
        model_sha: m?.manifest.sha256 ?? null,
        model_dtype: m ? weightDtype(m.manifest) : null,
        model_type: { embedding: { pooling: m?.manifest.pooling ?? null } },
        max_concurrent_requests: opts?.maxQueue ?? null,
        max_input_length: m?.manifest.maxTokens ?? null,
        max_batch_tokens: opts?.maxBatchTokens ?? null,
        max_batch_requests: opts?.maxBatchSize ?? null,
        max_client_batch_size: 2048,
        tokenization_workers: 1,
        version: 'embedctl',
        models: ctx.models.names(),
      });
    },
  },
];
