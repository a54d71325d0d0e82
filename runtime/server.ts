import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Batcher, Closed, QueueFull } from './batcher.js';
import { RuntimeMetrics, routeLabel } from './metrics.js';
import { ApiError, embeddingsResponseJson, parseEmbedRequest } from './request.js';
import type { Encoded, LoadedModel } from './types.js';

/**
 * The inference HTTP server: OpenAI- and Jina-shaped /v1/embeddings in front of a dynamic batcher
 * and one model, plus health, readiness, metrics and model listing. `embedctl serve` and the
 * container entry point (runtime/main.ts) both start it through startServer().
 */

export interface ServerOptions {
  /** The model, or a promise of it: the server listens (and answers /ready 503) while it loads. */
  model: LoadedModel | Promise<LoadedModel>;
  host?: string;
  port?: number;
  maxBatchTokens?: number;
  maxBatchSize?: number;
  /** Most inputs admitted and not yet answered before 429. */
  maxQueue?: number;
  maxWaitMs?: number;
  /** Largest share of a batch that may be padding (0..1); see BatcherOptions.maxPadding. */
  maxPadding?: number;
  /** Bearer key clients must send; none = open. */
  apiKey?: string;
  /** Name reported in responses and /v1/models (default: the manifest's name). */
  modelName?: string;
  maxBodyBytes?: number;
  /** One structured event per call (access log, lifecycle); the caller decides where it goes. */
  log?: (event: Record<string, unknown>) => void;
  /** Also export Node process metrics (CPU, memory, event loop) on /metrics. */
  processMetrics?: boolean;
  /**
   * Enables POST /admin/fault (loopback clients only): {"status": 500, "rate": 1} makes that share
   * of embedding requests fail with that status, {"status": 0} clears it. For rollback drills
   * (`embedctl rehearse`); off unless asked for.
   */
  faultInjection?: boolean;
}

export const DEFAULTS = {
  host: '127.0.0.1',
  port: 8080,
  maxBatchTokens: 16384,
  maxBatchSize: 64,
  maxQueue: 8192,
  maxWaitMs: 0,
  maxBodyBytes: 8 * 1024 * 1024,
} as const;

/** Default padding cap on the CPU provider (BatcherOptions.maxPadding). */
export const CPU_MAX_PADDING = 0.3;

export type ServerState = 'loading' | 'ready' | 'draining' | 'failed' | 'closed';

export interface RunningServer {
  url: string;
  port: number;
  /** Resolves once the model is loaded and warmed up; rejects if loading failed. */
  ready: Promise<void>;
  state(): ServerState;
  metrics: RuntimeMetrics;
  /** Stops taking requests (503, /ready 503), answers everything admitted, then closes. */
  close(): Promise<void>;
}

/** How long nothing may be in flight before a draining server stops listening. */
const QUIET_MS = 50;

const EMBED_ROUTES = new Set(['/v1/embeddings', '/embeddings']);
const GET_ROUTES = new Set(['/health', '/ready', '/metrics', '/v1/models', '/models']);

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const cfg = {
    host: opts.host ?? DEFAULTS.host,
    port: opts.port ?? DEFAULTS.port,
    maxBatchTokens: opts.maxBatchTokens ?? DEFAULTS.maxBatchTokens,
    maxBatchSize: opts.maxBatchSize ?? DEFAULTS.maxBatchSize,
    maxQueue: opts.maxQueue ?? DEFAULTS.maxQueue,
    maxWaitMs: opts.maxWaitMs ?? DEFAULTS.maxWaitMs,
    maxBodyBytes: opts.maxBodyBytes ?? DEFAULTS.maxBodyBytes,
  };
  const log = opts.log ?? (() => {});
  const keyDigest = opts.apiKey ? digest(opts.apiKey) : undefined;
  let fault = { status: 0, rate: 0 };
  const started = Date.now();

  let state: ServerState = 'loading';
  let model: LoadedModel | undefined;
  let batcher: Batcher | undefined;
  let loadError: string | undefined;
  let inFlight = 0;
  let idle: (() => void) | undefined;
  const metrics = new RuntimeMetrics(() => batcher?.stats(), { processMetrics: opts.processMetrics });
  const modelName = () => opts.modelName ?? model?.manifest.name ?? 'loading';
  // A model that can die after loading (runtime/model-worker.ts: its thread crashed) says why here.
  const modelFault = () => (model as { fault?: () => string | undefined } | undefined)?.fault?.();
  const currentState = (): ServerState => (state === 'ready' && modelFault() ? 'failed' : state);

  const ready = (async () => {
    const m = await opts.model;
    if (cfg.maxBatchTokens < m.manifest.maxTokens) {
      // Still works (an input over the budget runs in a batch of its own), but is rarely meant.
      log({ event: 'warning', message: `max batch tokens ${cfg.maxBatchTokens} is below the model's max tokens ${m.manifest.maxTokens}; long inputs will run one at a time` });
    }
    // Warm-up: the first runs allocate and (on GPU) compile kernels; do them before /ready says yes.
    const t0 = performance.now();
    const one = m.encode('warm up the model');
    await m.embed([one]);
    await m.embed(Array.from({ length: Math.min(8, cfg.maxBatchSize) }, (_, i) => m.encode(`warm up input ${i} `.repeat(i + 1))));
    model = m;
    // On CPU every padded position costs (bench: MiniLM shape 64 -> 118 emb/s at 0.3); a GPU
    // is better fed big padded batches.
    const maxPadding = opts.maxPadding ?? (m.provider === 'cpu' ? CPU_MAX_PADDING : 1);
    batcher = new Batcher(m, { ...cfg, maxPadding }, (r) => metrics.observeBatch(r));
    metrics.setModel(modelName(), m.provider);
    if (state === 'loading') state = 'ready';
    log({ event: 'ready', model: modelName(), provider: m.provider, dimensions: m.manifest.dimensions, warmupMs: Math.round(performance.now() - t0) });
  })();
  ready.catch((err: unknown) => {
    loadError = err instanceof Error ? err.message : String(err);
    if (state === 'loading') state = 'failed';
    log({ event: 'load_failed', error: loadError });
  });

  /** A string body is sent as is (JSON already written, or Prometheus text with its own content-type). */
  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      ...(state === 'draining' ? { connection: 'close' } : {}),
      ...headers,
    });
    res.end(text);
  };
  const sendError = (res: ServerResponse, err: ApiError) => send(res, err.status, err.body(), err.headers);

  const authorized = (req: IncomingMessage): boolean => {
    if (!keyDigest) return true;
    const h = req.headers.authorization ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(h);
    // Compare digests: equal lengths, and the time taken says nothing about the key.
    return m !== null && timingSafeEqual(digest(m[1]!.trim()), keyDigest);
  };

  const readBody = (req: IncomingMessage): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const declared = Number(req.headers['content-length'] ?? NaN);
      const tooLarge = () =>
        new ApiError(413, `the request body is over the limit of ${cfg.maxBodyBytes} bytes; send fewer or shorter inputs per request`, null, 'request_too_large');
      if (declared > cfg.maxBodyBytes) return reject(tooLarge());
      const chunks: Buffer[] = [];
      let size = 0;
      let failed = false;
      req.on('data', (c: Buffer) => {
        if (failed) return;
        size += c.length;
        if (size > cfg.maxBodyBytes) {
          failed = true;
          chunks.length = 0;
          reject(tooLarge());
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => !failed && resolve(Buffer.concat(chunks)));
      req.on('error', (e) => !failed && reject(e));
    });

  const queueFull = (err: QueueFull) => {
    metrics.rejected.inc({ reason: 'queue_full' });
    return new ApiError(429, err.message, null, 'queue_full', 'rate_limit_error', { 'retry-after': String(err.retryAfterSeconds) });
  };

  async function embeddings(req: IncomingMessage, res: ServerResponse, note: { inputs?: number; tokens?: number }) {
    if (state === 'loading' || state === 'failed') {
      throw new ApiError(503, state === 'failed' ? `the model failed to load: ${loadError}` : 'the model is still loading; retry shortly', null, 'model_not_ready', 'server_error', { 'retry-after': '1' });
    }
    if (state !== 'ready') throw new ApiError(503, 'the server is shutting down; retry on another replica', null, 'shutting_down', 'server_error', { 'retry-after': '1' });
    if (!authorized(req)) {
      throw new ApiError(401, 'missing or wrong API key; send "Authorization: Bearer <key>"', null, 'invalid_api_key', 'invalid_request_error');
    }
    const raw = await readBody(req);
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch (err) {
      throw new ApiError(400, `the request body is not valid JSON (${(err as Error).message}); send {"input": [...], "model": "..."}`, null, 'invalid_json');
    }
    const m = model!;
    const parsed = parseEmbedRequest(body, m.manifest);
    note.inputs = parsed.inputs.length;
    if (fault.status && Math.random() < fault.rate) {
      throw new ApiError(fault.status, `injected fault (the server runs with --fault-injection on; POST /admin/fault {"status":0} clears it)`, null, 'injected_fault', 'server_error');
    }
    // A client that hangs up frees its queued inputs (and stops its tokenisation).
    const ac = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) ac.abort(new Error('client closed the connection'));
    });
    // Refuse before tokenising when the queue cannot take this request anyway.
    const full = batcher!.refusal(parsed.inputs.length);
    if (full) throw queueFull(full);
    const encoded: Encoded[] = new Array(parsed.inputs.length);
    let tokens = 0;
    let slice = performance.now();
    for (let i = 0; i < parsed.inputs.length; i++) {
      const enc = m.encode(parsed.prefix + parsed.inputs[i]!);
      if (!parsed.truncate && enc.fullLength > m.manifest.maxTokens) {
        throw new ApiError(
          400,
          `'input[${i}]' is ${enc.fullLength} tokens, over the model's limit of ${m.manifest.maxTokens}; shorten it or send "truncate": true`,
          'input',
          'input_too_long',
        );
      }
      tokens += enc.fullLength;
      encoded[i] = enc;
      // Tokenising a 2,048-input request takes a while; let other requests and probes through.
      if ((i & 15) === 15 && performance.now() - slice > 4) {
        await new Promise<void>((r) => setImmediate(r));
        if (ac.signal.aborted) throw ac.signal.reason;
        slice = performance.now();
      }
    }
    note.tokens = tokens;
    let vectors: Float32Array[];
    try {
      vectors = await batcher!.submit(encoded, ac.signal);
    } catch (err) {
      if (err instanceof QueueFull) throw queueFull(err);
      if (err instanceof Closed) throw new ApiError(503, 'the server is shutting down; retry on another replica', null, 'shutting_down');
      throw err;
    }
    metrics.inputs.inc(parsed.inputs.length);
    metrics.tokens.inc(tokens);
    send(res, 200, embeddingsResponseJson(vectors, parsed, modelName(), tokens));
  }

  async function adminFault(req: IncomingMessage, res: ServerResponse) {
    const remote = req.socket.remoteAddress ?? '';
    if (!/^(127\.|::1$|::ffff:127\.)/.test(remote)) throw new ApiError(403, 'fault injection is accepted from loopback only', null, 'forbidden');
    if (!authorized(req)) throw new ApiError(401, 'missing or wrong API key; send "Authorization: Bearer <key>"', null, 'invalid_api_key', 'invalid_request_error');
    if (req.method !== 'POST') throw new ApiError(405, `/admin/fault takes POST, not ${req.method}`, null, 'method_not_allowed', 'invalid_request_error', { allow: 'POST' });
    let body: { status?: unknown; rate?: unknown };
    try {
      body = JSON.parse((await readBody(req)).toString('utf8')) as typeof body;
    } catch {
      throw new ApiError(400, 'send {"status": 500, "rate": 1} or {"status": 0}', null, 'invalid_json');
    }
    const status = Number(body?.status ?? 0);
    const rate = body?.rate === undefined ? 1 : Number(body.rate);
    if (!(status === 0 || (Number.isInteger(status) && status >= 400 && status <= 599))) throw new ApiError(400, '"status" must be 0 (clear) or an HTTP error status 400-599', 'status', 'invalid_value');
    if (!(rate >= 0 && rate <= 1)) throw new ApiError(400, '"rate" must be between 0 and 1', 'rate', 'invalid_value');
    fault = { status, rate };
    log({ event: 'fault', status, rate });
    return send(res, 200, { fault });
  }

  async function handle(req: IncomingMessage, res: ServerResponse, note: { inputs?: number; tokens?: number }) {
    const path = (req.url ?? '/').split('?')[0]!.replace(/\/+$/, '') || '/';
    if (path === '/admin/fault' && opts.faultInjection) return adminFault(req, res);
    if (EMBED_ROUTES.has(path)) {
      if (req.method !== 'POST') throw new ApiError(405, `${path} takes POST, not ${req.method}`, null, 'method_not_allowed', 'invalid_request_error', { allow: 'POST' });
      return embeddings(req, res, note);
    }
    if (GET_ROUTES.has(path)) {
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new ApiError(405, `${path} takes GET, not ${req.method}`, null, 'method_not_allowed', 'invalid_request_error', { allow: 'GET, HEAD' });
      switch (path) {
        case '/health': {
          const now = currentState();
          const error = loadError ?? modelFault();
          return send(res, now === 'failed' ? 503 : 200, {
            status: now,
            model: modelName(),
            provider: model?.provider ?? null,
            dimensions: model?.manifest.dimensions ?? null,
            maxTokens: model?.manifest.maxTokens ?? null,
            uptimeSeconds: Math.round((Date.now() - started) / 1000),
            ...(batcher ? { queue: { queued: batcher.stats().queued, running: batcher.stats().running, maxQueue: cfg.maxQueue } } : {}),
            ...(error ? { error } : {}),
          });
        }
        case '/ready': {
          const now = currentState();
          return send(res, now === 'ready' ? 200 : 503, { ready: now === 'ready', status: now });
        }
        case '/metrics': {
          const text = await metrics.registry.metrics();
          return send(res, 200, text, { 'content-type': metrics.registry.contentType });
        }
        default: {
          if (!authorized(req)) throw new ApiError(401, 'missing or wrong API key; send "Authorization: Bearer <key>"', null, 'invalid_api_key', 'invalid_request_error');
          return send(res, 200, {
            object: 'list',
            data: [{ id: modelName(), object: 'model', created: Math.floor(started / 1000), owned_by: 'embedctl' }],
          });
        }
      }
    }
    throw new ApiError(404, `no route ${req.method} ${path}; embeddings are at POST /v1/embeddings`, null, 'not_found');
  }

  const server: Server = createServer((req, res) => {
    const t0 = performance.now();
    const idHeader = req.headers['x-request-id'];
    const id = typeof idHeader === 'string' && /^[\x21-\x7e]{1,128}$/.test(idHeader) ? idHeader : randomUUID();
    res.setHeader('x-request-id', id);
    const path = (req.url ?? '/').split('?')[0]!;
    const route = routeLabel(path.replace(/\/+$/, '') || '/');
    const isEmbed = EMBED_ROUTES.has(route);
    const note: { inputs?: number; tokens?: number } = {};
    if (isEmbed) {
      inFlight++;
      metrics.inFlight.inc();
    }
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      const ms = performance.now() - t0;
      // 499 as nginx logs it: the client closed the connection before the response was sent.
      const status = res.writableFinished ? res.statusCode : 499;
      metrics.requests.inc({ route, status: String(status) });
      metrics.duration.observe({ route }, ms / 1000);
      if (isEmbed) {
        inFlight--;
        metrics.inFlight.dec();
        if (inFlight === 0) idle?.();
      }
      log({ event: 'request', id, method: req.method, path, status, ms: Math.round(ms * 100) / 100, ...note, ...(status === 499 ? { aborted: true } : {}) });
    };
    res.on('finish', finish);
    res.on('close', finish);
    handle(req, res, note).catch((err: unknown) => {
      // Nobody to answer: the client left (its request is logged as 499).
      if (res.headersSent || req.socket.destroyed) return;
      if (err instanceof ApiError) {
        if (err.status === 413) {
          // Answer at once, then read (and drop) what the client is still sending, keeping the
          // connection: closing on unread data resets it, and clients that reuse it fail (EPIPE)
          // instead of seeing the 413. Bounded, so a client cannot keep the socket busy forever.
          let dropped = 0;
          const cap = setTimeout(() => req.destroy(), 10_000).unref();
          req.on('data', (c: Buffer) => {
            dropped += c.length;
            if (dropped > 8 * cfg.maxBodyBytes) req.destroy();
          });
          req.once('close', () => clearTimeout(cap));
          req.resume();
        }
        return sendError(res, err);
      }
      log({ event: 'error', id, error: err instanceof Error ? err.message : String(err) });
      sendError(res, new ApiError(500, 'internal error while embedding; see the server log for request ' + id, null, 'internal_error'));
    });
  });
  server.keepAliveTimeout = 65_000; // longer than typical load balancer idle timeouts (ALB: 60 s)

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port, cfg.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host}:${addr.port}`;

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      if (state === 'ready' || state === 'loading') state = 'draining';
      log({ event: 'draining', inFlight });
      // Requests already sent on open connections may still sit unread in socket buffers; they
      // get read (and answered 503) during a short quiet period instead of being reset by close.
      do {
        if (inFlight > 0) await new Promise<void>((r) => (idle = r));
        await new Promise((r) => setTimeout(r, QUIET_MS));
      } while (inFlight > 0);
      await batcher?.close();
      state = 'closed';
      await new Promise<void>((r) => {
        // Stops accepting and closes idle keep-alive connections; busy ones end after their response.
        server.close(() => r());
        setTimeout(() => server.closeAllConnections(), 1000).unref();
      });
      await ready.catch(() => {});
      log({ event: 'closed' });
    })());

  return { url, port: addr.port, ready, state: currentState, metrics, close };
}
