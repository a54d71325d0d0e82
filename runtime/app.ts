import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DEFAULTS, bodyLimitFor } from '../common/runtime-options.js';
import { discardBody, methodNotAllowed, send } from './http.js';
import type { ServingOptions } from '../common/serving-options.js';
import { defaultHooks, type Hooks } from './hooks/index.js';
import { createServingHooks, servingRequested } from './hooks/serving.js';
import { RuntimeMetrics, routeLabel, sumStats } from './hooks/metrics.js';
import { ModelSet, type ModelSpec } from './inference/models.js';
import type { LoadedModel } from './inference/types.js';
import { ApiError } from './routes/errors.js';
import { faultRoute } from './routes/fault.js';
import { healthRoutes } from './routes/health.js';
import { ollamaRoutes } from './routes/ollama.js';
import { openaiRoute } from './routes/openai.js';
import { teiRoutes } from './routes/tei.js';
import type { RequestNote, Route, RouteContext, ServerState } from './routes/types.js';

/**
 * The runtime's HTTP server, built from the three layers: inference (models, batchers; no HTTP),
 * routes (one file per API shape) and hooks (auth, limits, cache, metrics). `embedctl serve` and
 * the container entry point (runtime/main.ts) both start it, through startApp (runtime/start.ts)
 * which also loads the models and owns start/drain/stop.
 */

export { DEFAULTS };
export { CPU_MAX_PADDING } from './inference/service.js';
export type { ServerState };

export interface ServerOptions extends Partial<ServingOptions> {
  /** One model, or a promise of it: the server listens (and answers /ready 503) while it loads. */
  model?: LoadedModel | Promise<LoadedModel>;
  /** Several models, routed by the request's `model` (with aliases); the first is the default. */
  models?: ModelSpec[];
  /** alias=name pairs naming a model by its served name (known once loaded). */
  lateAliases?: Array<[string, string]>;
  host?: string;
  port?: number;
  maxBatchTokens?: number;
  maxBatchSize?: number;
  /** Most inputs admitted and not yet answered before 429. */
  maxQueue?: number;
  maxWaitMs?: number;
  /** Latency budget for admission (BatcherOptions.maxQueueMs); 0 = off. */
  maxQueueMs?: number;
  /** Most tokens (after truncation) one request may put through the model. */
  maxRequestTokens?: number;
  /** Largest share of a batch that may be padding (0..1); see BatcherOptions.maxPadding. */
  maxPadding?: number;
  /** Bearer key clients must send; none = open (ignored when hooks.auth is given). */
  apiKey?: string;
  /** Name reported in responses and /v1/models for `model` (default: the manifest's name). */
  modelName?: string;
  /** Other names `model` answers to (e.g. the hosted model's name, for drop-in clients). */
  modelAliases?: string[];
  maxBodyBytes?: number;
  /** One structured event per call (access log, lifecycle); the caller decides where it goes. */
  log?: (event: Record<string, unknown>) => void;
  /** Also export Node process metrics (CPU, memory, event loop) on /metrics. */
  processMetrics?: boolean;
  /** Enables POST /admin/fault (loopback clients only); see runtime/routes/fault.ts. */
  faultInjection?: boolean;
  /**
   * Called once when a loaded model stops being able to embed (its worker thread died): the
   * server answers 503 from then on, so the process entry point exits and its supervisor
   * restarts it (runtime/main.ts). Logged as "model_failed" either way.
   */
  onModelFault?: (e: { model: string; error: string }) => void;
  /** Hooks replacing the defaults (runtime/hooks/index.ts). */
  hooks?: Partial<Hooks>;
  /**
   * How long a draining server lets a client finish a body it started sending before answering
   * it 503 (default BODY_GRACE_MS; startApp keeps it within the drain timeout).
   */
  bodyGraceMs?: number;
}

export interface RunningServer {
  url: string;
  port: number;
  /** Resolves once every model is loaded and warmed up; rejects if loading failed. */
  ready: Promise<void>;
  state(): ServerState;
  metrics: RuntimeMetrics;
  models: ModelSet;
  /** Stops taking requests (503, /ready 503), answers everything admitted, then closes. */
  close(): Promise<void>;
}

/** How long nothing may be in flight, and no connection arrive, before a draining server stops listening. */
const QUIET_MS = 50;
/** The longest a draining server waits for new connections to stop once nothing is in flight. */
const CONNECT_QUIET_CAP_MS = 1000;
/** How long a draining server lets a client finish sending a body it started before answering 503. */
export const BODY_GRACE_MS = 5000;

const BUILTIN_ROUTES: Route[] = [openaiRoute, ...teiRoutes, ...ollamaRoutes, ...healthRoutes];

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const cfg = {
    host: opts.host ?? DEFAULTS.host,
    port: opts.port ?? DEFAULTS.port,
    maxBatchTokens: opts.maxBatchTokens ?? DEFAULTS.maxBatchTokens,
    maxBatchSize: opts.maxBatchSize ?? DEFAULTS.maxBatchSize,
    maxQueue: opts.maxQueue ?? DEFAULTS.maxQueue,
    maxWaitMs: opts.maxWaitMs ?? DEFAULTS.maxWaitMs,
    maxQueueMs: opts.maxQueueMs ?? DEFAULTS.maxQueueMs,
    maxRequestTokens: opts.maxRequestTokens ?? DEFAULTS.maxRequestTokens,
    maxBodyBytes: opts.maxBodyBytes ?? bodyLimitFor(opts.maxRequestTokens ?? DEFAULTS.maxRequestTokens),
  };
  const log = opts.log ?? (() => {});
  const specs: ModelSpec[] = opts.models ?? [{ ref: opts.modelName ?? 'model', name: opts.modelName, aliases: opts.modelAliases, model: opts.model! }];
  let state: 'loading' | 'ready' | 'draining' | 'closed' = 'loading';
  let inFlight = 0;
  let idle: (() => void) | undefined;
  // Requests still receiving their body when draining starts: answered 503 after a grace period.
  const reading = new Set<{ req: IncomingMessage; res: ServerResponse }>();
  // Every response not yet sent: when draining starts, each is told to end its connection too.
  const unanswered = new Set<ServerResponse>();

  // eslint-disable-next-line prefer-const
  let models: ModelSet;
  // Queue gauges count every model's batcher: a second model's backlog must show as well.
  const metrics = new RuntimeMetrics(() => (models ? sumStats(models.slots.map((s) => s.service?.stats())) : undefined), { processMetrics: opts.processMetrics });
  models = new ModelSet(
    specs,
    { ...cfg, maxPadding: opts.maxPadding, log, onBatch: (r) => metrics.observeBatch(r) },
    (slot) => {
      metrics.setModel(slot.name, slot.service!.model.provider);
      const m = slot.service!.model;
      log({ event: 'ready', model: slot.name, provider: m.provider, dimensions: m.manifest.dimensions, warmupMs: slot.service!.warmupMs, loadMs: slot.loadMs });
    },
    (slot, error) => {
      log({ event: 'model_failed', model: slot.name, error });
      opts.onModelFault?.({ model: slot.name, error });
    },
  );
  const ready = models.ready.then(() => {
    models.addAliases(opts.lateAliases ?? []);
    if (state === 'loading') state = 'ready';
  });
  ready.catch((err: unknown) => log({ event: 'load_failed', error: err instanceof Error ? err.message : String(err) }));

  const failure = () => {
    const slot = models.slots.find((s) => s.fault());
    if (!slot) return 'the model failed';
    return slot.faulted ? `the model failed: ${slot.fault()}; retry on another replica` : `the model failed to load: ${slot.fault()}`;
  };
  const currentState = (): ServerState => {
    if (state === 'draining' || state === 'closed') return state;
    const ms = models.state();
    return ms === 'failed' ? 'failed' : state === 'ready' ? 'ready' : 'loading';
  };
  // Keys, JWT, limits, cache, admin API (issue 17): only what the options ask for.
  const serving = servingRequested(opts) ? await createServingHooks(opts, { registry: metrics.registry, log, host: cfg.host, models }) : undefined;
  const hooks = defaultHooks({ apiKey: opts.apiKey }, { ...serving, ...opts.hooks });
  const ctx: RouteContext = { models, hooks, metrics, state: currentState, started: Date.now(), maxBodyBytes: cfg.maxBodyBytes, log, fault: { status: 0, rate: 0 } };
  const routes = new Map<string, Route>();
  const extra: Route[] = (hooks.routes ?? []).map((r) => ({
    paths: [r.path],
    methods: [r.method],
    handle: async (req, res) => r.handle(req, res, r.auth === false ? undefined : await hooks.auth.authenticate(req)),
  }));
  for (const r of [...extra, ...(opts.faultInjection ? [faultRoute] : []), ...BUILTIN_ROUTES]) for (const p of r.paths) if (!routes.has(p)) routes.set(p, r);

  async function handle(req: IncomingMessage, res: ServerResponse, route: Route | undefined, path: string, note: RequestNote) {
    if (!route) throw new ApiError(404, `no route ${req.method} ${path}; embeddings are at POST /v1/embeddings`, null, 'not_found');
    if (!route.methods.includes(req.method ?? '')) throw methodNotAllowed(path, req.method, route.methods);
    if (route.traffic && currentState() === 'loading') throw notReady('the model is still loading; retry shortly');
    if (route.traffic && currentState() === 'failed') throw notReady(failure());
    await route.handle(req, res, ctx, note);
  }

  const server: Server = createServer((req, res) => {
    const t0 = performance.now();
    const idHeader = req.headers['x-request-id'];
    const id = typeof idHeader === 'string' && /^[\x21-\x7e]{1,128}$/.test(idHeader) ? idHeader : randomUUID();
    res.setHeader('x-request-id', id);
    const rawPath = (req.url ?? '/').split('?')[0]!;
    const path = rawPath.replace(/\/+$/, '') || '/';
    const route = routes.get(path);
    const traffic = route?.traffic === true;
    const note: RequestNote = { receivedAt: t0 };
    // While draining every answer ends its connection, so a keep-alive client never sends its
    // next request into a socket that is about to close (a reset) but opens a new one elsewhere.
    if (state === 'draining' || state === 'closed') res.setHeader('connection', 'close');
    else unanswered.add(res);
    const entry = { req, res };
    if (traffic) {
      inFlight++;
      metrics.inFlight.inc();
      if (!req.complete) reading.add(entry);
      req.once('end', () => reading.delete(entry));
    }
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      reading.delete(entry);
      unanswered.delete(res);
      const ms = performance.now() - t0;
      // 499 as nginx logs it: the client closed the connection before the response was sent.
      const status = res.writableFinished ? res.statusCode : 499;
      const label = routeLabel(path);
      metrics.requests.inc({ route: label, status: String(status) });
      metrics.duration.observe({ route: label }, ms / 1000);
      if (traffic) {
        inFlight--;
        metrics.inFlight.dec();
        if (inFlight === 0) idle?.();
      }
      log({ event: 'request', id, method: req.method, path: rawPath, status, ms: Math.round(ms * 100) / 100, ...note, ...(status === 499 ? { aborted: true } : {}) });
    };
    res.on('finish', finish);
    res.on('close', finish);
    handle(req, res, route, path, note).catch((err: unknown) => {
      // Nobody to answer: the client left (its request is logged as 499).
      if (res.headersSent || req.socket.destroyed) return;
      const api = err instanceof ApiError ? err : undefined;
      if (!api) log({ event: 'error', id, error: err instanceof Error ? err.message : String(err) });
      const e = api ?? new ApiError(500, 'internal error while embedding; see the server log for request ' + id, null, 'internal_error');
      if (!req.complete) discardBody(req, 8 * cfg.maxBodyBytes);
      const shaped = route?.errorBody ? route.errorBody(e) : { status: e.status, body: e.body() };
      send(res, shaped.status, shaped.body, e.headers);
    });
  });
  let lastConnection = 0;
  server.on('connection', () => (lastConnection = performance.now()));
  server.keepAliveTimeout = 65_000; // longer than typical load balancer idle timeouts (ALB: 60 s)

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port, cfg.host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch(async (err: unknown) => {
    await serving?.close?.();
    throw err;
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host}:${addr.port}`;

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      state = 'draining';
      log({ event: 'draining', inFlight });
      // A request that arrived before the drain and is answered during it must end its
      // connection as well: answered keep-alive, its client would send the next request into a
      // socket that the close below destroys (ECONNRESET; 19 of 32 looping clients saw it).
      for (const res of unanswered) if (!res.headersSent) res.setHeader('connection', 'close');
      unanswered.clear();
      // A client still sending its body gets a short grace, then a 503: a slow uploader must not
      // hold the shutdown for the whole drain timeout.
      const grace = setTimeout(() => {
        for (const { req, res } of reading) {
          if (res.headersSent) continue;
          discardBody(req, 8 * cfg.maxBodyBytes);
          const e = shuttingDown();
          send(res, e.status, e.body(), { ...e.headers, connection: 'close' });
        }
      }, opts.bodyGraceMs ?? BODY_GRACE_MS).unref();
      // Requests already sent on open connections may still sit unread in socket buffers; they
      // get read (and answered 503 with Connection: close) during a short quiet period instead
      // of being reset by close.
      // Closing the listener resets every connection still in its accept queue, so it closes
      // only once no connection has arrived for QUIET_MS: a client told Connection: close after
      // a 200 reconnects at once (and is answered 503 with Retry-After), and the herd settles.
      // Bounded, so a client reconnecting in a tight loop cannot hold the shutdown.
      let idleSince: number | undefined;
      for (;;) {
        if (inFlight > 0) {
          idleSince = undefined;
          await new Promise<void>((r) => (idle = r));
        }
        await new Promise((r) => setTimeout(r, QUIET_MS));
        if (inFlight > 0) continue;
        idleSince ??= performance.now();
        const now = performance.now();
        if (now - lastConnection >= QUIET_MS || now - idleSince >= CONNECT_QUIET_CAP_MS) break;
      }
      clearTimeout(grace);
      await models.drain();
      state = 'closed';
      await new Promise<void>((r) => {
        // Stops accepting and closes idle keep-alive connections; busy ones end after their
        // response (Connection: close). A connection still open after 2 s is stuck: cut it.
        server.close(() => r());
        setTimeout(() => server.closeAllConnections(), 2000).unref();
      });
      await ready.catch(() => {});
      await hooks.close?.();
      log({ event: 'closed' });
    })());

  return { url, port: addr.port, ready, state: currentState, metrics, models, close };
}

const notReady = (message: string) => new ApiError(503, message, null, 'model_not_ready', 'server_error', { 'retry-after': '1' });
const shuttingDown = () => new ApiError(503, 'the server is shutting down; retry on another replica', null, 'shutting_down', 'server_error', { 'retry-after': '1' });
