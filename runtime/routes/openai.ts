import { readJson } from '../http.js';
import { send } from '../http.js';
import { admitRequest, embed, modelFor } from './pipeline.js';
import { embeddingsResponseJson, parseEmbedRequest } from './request.js';
import type { Route } from './types.js';

/**
 * POST /v1/embeddings (and /embeddings): the OpenAI request shape, which also accepts Jina's
 * fields (task, embedding_type, normalized, truncate, late_chunking, {text} inputs), since Jina's
 * API is served at the same path. Errors in OpenAI's shape.
 */
export const openaiRoute: Route = {
  paths: ['/v1/embeddings', '/embeddings'],
  methods: ['POST'],
  traffic: true,
  async handle(req, res, ctx, note) {
    const principal = await admitRequest(req, ctx);
    const body = await readJson(req, ctx.maxBodyBytes, '{"input": [...], "model": "..."}');
    const requested = typeof body === 'object' && body !== null ? (body as { model?: unknown }).model : undefined;
    const slot = modelFor(ctx, typeof requested === 'string' ? requested : undefined);
    const parsed = parseEmbedRequest(body, slot.service!.model.manifest);
    const out = await embed(req, res, ctx, note, principal, { route: 'openai', slot, texts: parsed.inputs, task: parsed.task, truncate: parsed.truncate });
    send(res, 200, embeddingsResponseJson(out.vectors, parsed, slot.name, out.tokens));
  },
};
