import { send } from '../http.js';
import type { ModelSlot } from '../inference/models.js';
import type { Route, RouteContext } from './types.js';

/** Probes, metrics and the model list: /health, /ready, /metrics, /v1/models. */

const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;

function modelInfo(slot: ModelSlot) {
  const m = slot.service?.model;
  const stats = slot.service?.stats();
  return {
    name: slot.name,
    aliases: slot.aliases,
    status: slot.fault() ? 'failed' : slot.state,
    provider: m?.provider ?? null,
    dimensions: m?.manifest.dimensions ?? null,
    maxTokens: m?.manifest.maxTokens ?? null,
    loadMs: slot.loadMs ?? null,
    weightsMiB: slot.weightsBytes === undefined ? null : mib(slot.weightsBytes),
    ...(stats ? { queue: { queued: stats.queued, queuedTokens: stats.queuedTokens, running: stats.running } } : {}),
    ...(slot.fault() ? { error: slot.fault() } : {}),
  };
}

function health(ctx: RouteContext) {
  const now = ctx.state();
  const primary = ctx.models.primary;
  const p = modelInfo(primary);
  const error = ctx.models.slots.map((s) => s.fault()).find((e) => e);
  return {
    status: now === 'failed' ? 503 : 200,
    body: {
      status: now,
      // The first model's fields stay at the top level for single-model clients and probes.
      model: primary.name,
      provider: p.provider,
      dimensions: p.dimensions,
      maxTokens: p.maxTokens,
      uptimeSeconds: Math.round((Date.now() - ctx.started) / 1000),
      ...(p.queue ? { queue: { queued: p.queue.queued, running: p.queue.running, maxQueue: primary.service!.batcher.opts.maxQueue } } : {}),
      models: ctx.models.slots.map(modelInfo),
      ...ctx.hooks.health?.(),
      memory: { rssMiB: mib(process.memoryUsage().rss), heapUsedMiB: mib(process.memoryUsage().heapUsed) },
      ...(error ? { error } : {}),
    },
  };
}

export const healthRoutes: Route[] = [
  {
    paths: ['/health'],
    methods: ['GET', 'HEAD'],
    async handle(_req, res, ctx) {
      const h = health(ctx);
      send(res, h.status, h.body);
    },
  },
  {
    paths: ['/ready'],
    methods: ['GET', 'HEAD'],
    async handle(_req, res, ctx) {
      const now = ctx.state();
      send(res, now === 'ready' ? 200 : 503, { ready: now === 'ready', status: now });
    },
  },
  {
    paths: ['/metrics'],
    methods: ['GET', 'HEAD'],
    async handle(_req, res, ctx) {
      const text = await ctx.metrics.registry.metrics();
      send(res, 200, text, { 'content-type': ctx.metrics.registry.contentType });
    },
  },
  {
    paths: ['/v1/models', '/models'],
    methods: ['GET', 'HEAD'],
    async handle(req, res, ctx) {
      await ctx.hooks.auth.authenticate(req);
      const created = Math.floor(ctx.started / 1000);
      send(res, 200, {
        object: 'list',
        data: ctx.models.slots.flatMap((s) => {
          const info = modelInfo(s);
          // Aliases are listed as models too: OpenAI clients check that the name they use exists.
          return [s.name, ...s.aliases].map((id) => ({ id, object: 'model', created, owned_by: 'embedctl', ...(id === s.name ? { embedctl: info } : { embedctl: { aliasOf: s.name } }) }));
        }),
      });
    },
  },
];
