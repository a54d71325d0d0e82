import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { ModelSet } from '../inference/models.js';
import { parseCacheSize, parseProxyList, QUOTA_STATUS_HEADER, type ServingOptions } from '../../common/serving-options.js';
import { UsageError } from '../../common/errors.js';
import { ApiError } from '../routes/errors.js';
import { adminRoutes, CallerUsage, metricsText } from './admin.js';
import { EmbeddingCache } from './cache.js';
import type { Admission, AuthHook, Hooks, LimitsHook, Principal } from './index.js';
import { JwtVerifier } from './jwt.js';
import { Authenticator, KeyStore, type Scope } from './keys.js';
import { ADMIT, hasLimits, MemoryLimiter, RedisLimiter, type Limiter } from './limits.js';
import { connectRedis, type SharedRedis } from './redis.js';

/**
 * Builds the serving hooks (issue 17) from the runtime's options: auth (named keys, JWT, the
 * single --api-key, a trusted proxy's caller header), per-caller limits and usage, the response
 * cache, the admin routes and the optional --metrics-port listener. Only what is configured is
 * switched on: with none of these options the runtime behaves as before.
 */

export interface ServingDeps {
  registry: Registry;
  log(e: Record<string, unknown>): void;
  /** Address the --metrics-port listener binds (the runtime's --host). */
  host: string;
  /** The served models: weights' identity for cache keys, queue and fault state for /admin/stats. */
  models?: ModelSet;
}

/** Whether any serving option is set (none: the runtime keeps its plain --api-key auth). */
export function servingRequested(o: Partial<ServingOptions>): boolean {
  return !!(o.cacheSize || o.cacheRedis || o.keysFile || o.requestsPerMinute || o.tokensPerMinute || o.jwtSecret || o.jwtJwksUrl || o.trustedProxy || o.metricsPort !== undefined);
}

/** The weights' sha256 of a served model (undefined while it loads: such requests never reach the cache). */
function weightsOf(models: ModelSet | undefined, name: string): string | undefined {
  const slot = models?.slots.find((s) => s.answers(name));
  return slot?.service?.model.manifest.sha256 ?? slot?.service?.model.manifest.name;
}

/** Per model: queue depth and, when it cannot serve, why (the runtime's breaker is the model's fault state). */
function modelsState(models: ModelSet | undefined): Record<string, unknown> {
  if (!models) return {};
  return {
    models: models.slots.map((s) => ({ name: s.name, state: s.state, queue: s.service?.stats() ?? null, fault: s.fault() ?? null })),
  };
}

export type ServingHooks = Hooks & {
  /** Fields for /health (cache statistics). */
  health(): Record<string, unknown>;
  /** URL of the --metrics-port listener, when one runs. */
  metricsUrl?: string;
};

/** Which scope a path needs: admin routes, metrics, everything else is embedding traffic. */
function scopeFor(path: string): Scope {
  if (path === '/admin' || path.startsWith('/admin/')) return 'admin';
  if (path === '/metrics') return 'metrics';
  return 'embed';
}

export async function createServingHooks(o: Partial<ServingOptions> & { apiKey?: string }, d: ServingDeps): Promise<ServingHooks> {
  const closers: Array<() => Promise<void> | void> = [];
  const fail = (flag: string, err: unknown): never => {
    throw new UsageError((err as Error).message, { field: flag });
  };

  let redis: SharedRedis | undefined;
  if (o.cacheRedis) {
    redis = connectRedis(o.cacheRedis, { log: d.log });
    closers.push(() => redis!.close());
    // Most starts find Redis up; waiting a moment keeps the first requests from all missing.
    await redis.connected(2000);
  }

  let keys: KeyStore | undefined;
  if (o.keysFile) {
    try {
      keys = new KeyStore(o.keysFile, d.log);
    } catch (err) {
      fail('--keys-file', err);
    }
    closers.push(() => keys!.close());
  }
  let jwt: JwtVerifier | undefined;
  if (o.jwtSecret || o.jwtJwksUrl) {
    try {
      jwt = new JwtVerifier({ secret: o.jwtSecret, jwksUrl: o.jwtJwksUrl, issuer: o.jwtIssuer, audience: o.jwtAudience, nameClaim: o.jwtNameClaim ?? 'sub' });
    } catch (err) {
      fail(o.jwtSecret ? '--jwt-secret' : '--jwt-jwks-url', err);
    }
  }
  const defaultLimits = { requestsPerMinute: o.requestsPerMinute, tokensPerMinute: o.tokensPerMinute };
  const authenticator = new Authenticator({
    apiKey: o.apiKey,
    keys,
    jwt,
    trustedProxies: o.trustedProxy ? parseProxyList(o.trustedProxy) : undefined,
    defaultLimits: hasLimits(defaultLimits) ? defaultLimits : undefined,
  });

  const auth: AuthHook = {
    async authenticate(req): Promise<Principal> {
      const r = await authenticator.authenticate(req);
      if (!r.ok) throw new ApiError(r.status, r.message, null, r.code, r.status === 401 ? 'authentication_error' : 'server_error');
      const path = (req.url ?? '/').split('?')[0]!.replace(/\/+$/, '') || '/';
      const need = scopeFor(path);
      const c = r.caller;
      // An admin may also read metrics; nothing else implies another scope.
      if (!c.scopes.includes(need) && !(need === 'metrics' && c.scopes.includes('admin'))) {
        throw new ApiError(403, `"${c.name}" may not use ${path}: it needs the "${need}" scope (has ${c.scopes.join(', ') || 'none'})`, null, 'insufficient_scope', 'permission_error');
      }
      // The gateway (a trusted proxy) asks for a caller's quota refusal under a status of its
      // own, so it can tell it from a replica's overload 429: that one it retries on the next
      // replica and counts against the replica's health; a quota it answers as it is.
      const quotaStatus = c.via === 'proxy' ? Number(req.headers[QUOTA_STATUS_HEADER]) : NaN;
      return { id: c.name, scopes: [...c.scopes], meta: { via: c.via, ...(quotaStatus >= 400 && quotaStatus <= 599 && Number.isInteger(quotaStatus) ? { quotaStatus } : {}) } };
    },
  };

  const usage = new CallerUsage(d.registry);
  const limiter: Limiter = redis ? new RedisLimiter(redis, d.log) : new MemoryLimiter();
  const limits: LimitsHook = {
    async admit(principal): Promise<Admission> {
      const caller = principal.id;
      const spec = authenticator.limitsFor({ name: caller, scopes: [], via: 'key' });
      if (!hasLimits(spec)) return { done: (out) => usage.record(caller, out.status, out.tokens) };
      const decision = await limiter.take(caller, spec, ADMIT);
      if (!decision.allowed) {
        usage.rateLimited(caller, decision.limit ?? 'requests');
        const what = decision.limit === 'tokens' ? `${spec.tokensPerMinute} tokens` : `${spec.requestsPerMinute} requests`;
        // Behind the gateway the refusal goes out under the status it asked for (see auth above),
        // so it is answered as the caller's quota instead of being retried on another replica or
        // on the hosted API, which would serve exactly what the quota refused.
        const status = typeof principal.meta?.quotaStatus === 'number' ? principal.meta.quotaStatus : 429;
        throw new ApiError(status, `rate limit reached for "${caller}": ${what} per minute; retry after ${decision.retryAfterSeconds} s`, null, 'rate_limit_exceeded', 'rate_limit_error', decision.headers);
      }
      return {
        headers: decision.headers,
        done: (out) => {
          usage.record(caller, out.status, out.tokens);
          // Tokens are known only now; debit them (this may put the caller in debt, see limits.ts).
          // process.nextTick: after the answer is written (done() runs on its way out, where the
          // limiter's cost is judged) but before the event loop reads anything else, so the
          // caller's next request always sees the debt (setImmediate lost that race now and then).
          const tokens = out.tokens;
          if (tokens && spec.tokensPerMinute) process.nextTick(() => limiter.charge(caller, spec, tokens));
        },
      };
    },
  };

  let cache: EmbeddingCache | undefined;
  if (o.cacheSize || redis) {
    cache = new EmbeddingCache({ memory: o.cacheSize ? parseCacheSize(o.cacheSize) : undefined, redis, ttlMs: o.cacheTtlMs, registry: d.registry, modelId: (name) => weightsOf(d.models, name) });
  }

  const routes = adminRoutes({ usage, cache, limiter, registry: d.registry, runtimeStats: () => modelsState(d.models), guardMetrics: authenticator.multiUser, log: d.log });

  let metricsUrl: string | undefined;
  if (o.metricsPort !== undefined) {
    const server: Server = createServer((req, res) => {
      if ((req.url ?? '/').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('only /metrics is served on this port\n');
        return;
      }
      metricsText(d.registry, res).catch(() => res.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new UsageError(`cannot listen on ${d.host}:${o.metricsPort} (${(err as Error).message})`, { field: '--metrics-port' })));
      server.listen(o.metricsPort, d.host, resolve);
    });
    const port = (server.address() as AddressInfo).port;
    metricsUrl = `http://${d.host.includes(':') ? `[${d.host}]` : d.host}:${port}/metrics`;
    d.log({ event: 'metrics_listening', url: metricsUrl });
    closers.push(() => new Promise<void>((r) => server.close(() => r())));
  }

  return {
    auth,
    limits,
    cache,
    routes,
    metricsUrl,
    health: () => (cache ? { cache: cache.stats() } : {}),
    close: async () => {
      for (const c of closers.reverse()) await c();
    },
  };
}
