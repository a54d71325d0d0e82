import { readJson, send } from '../http.js';
import { shapeVector } from './encoding.js';
import { ApiError } from './errors.js';
import { admitRequest, embed, modelFor } from './pipeline.js';
import { checkDimensions, parseInputs } from './request.js';
import type { Route } from './types.js';

/**
 * Ollama's embedding API: POST /api/embed ({model, input, truncate, dimensions} ->
 * {model, embeddings, total_duration, load_duration, prompt_eval_count}), the older
 * POST /api/embeddings ({model, prompt} -> {embedding}), GET /api/tags (the models served).
 * Errors in Ollama's shape {error}; an unknown model is 404 as Ollama answers it.
 */

const ollamaError = (err: ApiError) => ({ status: err.status, body: { error: err.message } });
const obj = (body: unknown): Record<string, unknown> => (typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {});
const modelName = (b: Record<string, unknown>) => {
  if (b.model !== undefined && typeof b.model !== 'string') throw new ApiError(400, `'model' must be a string`, 'model', 'invalid_type');
  return (b.model as string | undefined) || undefined;
};

export const ollamaRoutes: Route[] = [
  {
    paths: ['/api/embed'],
    methods: ['POST'],
    traffic: true,
    errorBody: ollamaError,
    async handle(req, res, ctx, note) {
      const t0 = process.hrtime.bigint();
      const principal = await admitRequest(req, ctx);
      const b = obj(await readJson(req, ctx.maxBodyBytes, '{"model": "...", "input": ["text"]}'));
      const slot = modelFor(ctx, modelName(b));
      const manifest = slot.service!.model.manifest;
      const inputs = parseInputs(b.input);
      const dimensions = b.dimensions === undefined || b.dimensions === null ? manifest.dimensions : checkDimensions(b.dimensions, manifest);
      const out = await embed(req, res, ctx, note, principal, { route: 'ollama', slot, texts: inputs, task: undefined, truncate: b.truncate !== false });
      send(res, 200, {
        model: slot.name,
        // Ollama's vectors are unit length (L2-normalised), as ours are.
        embeddings: out.vectors.map((v) => Array.from(shapeVector(v, dimensions, true))),
        total_duration: Number(process.hrtime.bigint() - t0),
        load_duration: 0,
        prompt_eval_count: out.tokens,
      });
    },
  },
  {
    paths: ['/api/embeddings'],
    methods: ['POST'],
    traffic: true,
    errorBody: ollamaError,
    async handle(req, res, ctx, note) {
      const principal = await admitRequest(req, ctx);
      const b = obj(await readJson(req, ctx.maxBodyBytes, '{"model": "...", "prompt": "text"}'));
      const slot = modelFor(ctx, modelName(b));
      if (typeof b.prompt !== 'string') throw new ApiError(400, "'prompt' must be a string", 'prompt', 'invalid_type');
      // The older endpoint: one prompt, an empty one gives an empty vector (as Ollama does).
      if (b.prompt === '') return send(res, 200, { embedding: [] });
      const out = await embed(req, res, ctx, note, principal, { route: 'ollama', slot, texts: [b.prompt], task: undefined, truncate: true });
      send(res, 200, { embedding: Array.from(out.vectors[0]!) });
    },
  },
  {
    paths: ['/api/tags'],
    methods: ['GET', 'HEAD'],
    errorBody: ollamaError,
    async handle(req, res, ctx) {
      await ctx.hooks.auth.authenticate(req);
      const modified = new Date(ctx.started).toISOString();
      send(res, 200, {
        models: ctx.models.slots.flatMap((s) =>
          [s.name, ...s.aliases].map((name) => ({
            name,
            model: name,
            modified_at: modified,
            size: s.weightsBytes ?? 0,
            digest: s.service?.model.manifest.sha256 ?? '',
            details: { format: 'onnx', family: 'embedding', families: ['embedding'], parameter_size: '', quantization_level: '' },
          })),
        ),
      });
    },
  },
];
