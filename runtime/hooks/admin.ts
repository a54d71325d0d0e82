import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, type Registry } from 'prom-client';
import { send } from '../http.js';
import { ApiError } from '../routes/errors.js';
import type { EmbeddingCache } from './cache.js';
import type { ExtraRoute } from './index.js';
import type { Limiter } from './limits.js';

/**
 * Per-caller usage (Prometheus counters and the /admin/stats document) and the admin API:
 *   GET    /admin/stats            per-caller usage, cache, limiter, and the runtime's queue/breaker state
 *   DELETE /admin/cache[?model=m]  empty the cache, or one served model's entries
 *   GET    /metrics                (when callers have names) the metrics, for a metrics or admin scope
 * Scopes are checked by the auth hook from the path (serving.ts), so these handlers only run for
 * callers allowed to reach them.
 */

/**
 * Distinct callers labelled in /metrics and kept in /admin/stats; later ones (a flood of JWT
 * subjects) share "other", so neither the series nor the map grow without bound.
 */
export const MAX_CALLER_LABELS = 1000;
export const OTHER_CALLERS = 'other';

interface Usage {
  requests: number;
  errors: number;
  tokens: number;
  rateLimited: number;
  lastSeen: string;
}

export class CallerUsage {
  private readonly byCaller = new Map<string, Usage>();
  private readonly requests: Counter<'caller' | 'status'>;
  private readonly tokens: Counter<'caller'>;
  private readonly limited: Counter<'caller' | 'limit'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.requests = new Counter({ name: 'embedctl_caller_requests_total', help: 'Embedding requests by caller (key name, JWT subject or proxy-named caller) and status', labelNames: ['caller', 'status'], registers });
    this.tokens = new Counter({ name: 'embedctl_caller_tokens_total', help: 'Input tokens embedded by caller (cache hits included)', labelNames: ['caller'], registers });
    this.limited = new Counter({ name: 'embedctl_caller_rate_limited_total', help: 'Requests refused by a per-caller rate limit, by caller and the limit (requests or tokens)', labelNames: ['caller', 'limit'], registers });
  }

  record(caller: string, status: number, tokens: number): void {
    this.count(this.label(caller), status, tokens);
  }

  rateLimited(caller: string, limit: string): void {
    const label = this.label(caller);
    this.usage(label).rateLimited++;
    this.limited.inc({ caller: label, limit });
    this.count(label, 429, 0);
  }

  private count(label: string, status: number, tokens: number): void {
    const u = this.usage(label);
    u.requests++;
    if (status >= 400) u.errors++;
    u.tokens += tokens;
    this.requests.inc({ caller: label, status: String(status) });
    if (tokens) this.tokens.inc({ caller: label }, tokens);
  }

  snapshot(): Record<string, Usage> {
    return Object.fromEntries([...this.byCaller].sort(([a], [b]) => a.localeCompare(b)));
  }

  private usage(caller: string): Usage {
    let u = this.byCaller.get(caller);
    if (!u) this.byCaller.set(caller, (u = { requests: 0, errors: 0, tokens: 0, rateLimited: 0, lastSeen: '' }));
    u.lastSeen = new Date().toISOString();
    return u;
  }

  /** The caller's own name while there is room (or it already has one), else "other"; decided before anything is stored. */
  private label(caller: string): string {
    if (this.byCaller.has(caller)) return caller;
    const named = this.byCaller.size - (this.byCaller.has(OTHER_CALLERS) ? 1 : 0);
    return named < MAX_CALLER_LABELS ? caller : OTHER_CALLERS;
  }
}

export interface AdminDeps {
  usage: CallerUsage;
  cache?: EmbeddingCache;
  limiter?: Limiter;
  registry: Registry;
  /** The runtime's own state for /admin/stats: queues, breaker, models. */
  runtimeStats?: () => Record<string, unknown>;
  /** Serve /metrics behind the scope check (named callers); the built-in route stays open otherwise. */
  guardMetrics: boolean;
  log(e: Record<string, unknown>): void;
}

export const metricsText = async (registry: Registry, res: ServerResponse) => send(res, 200, await registry.metrics(), { 'content-type': registry.contentType });

export function adminRoutes(d: AdminDeps): ExtraRoute[] {
  const noCache = () => new ApiError(404, 'the response cache is off; start the runtime with --cache-size or --cache-redis', null, 'cache_disabled');
  const routes: ExtraRoute[] = [
    {
      method: 'GET',
      path: '/admin/stats',
      async handle(_req, res) {
        send(res, 200, {
          schema: 'embedctl.admin-stats/v1',
          callers: d.usage.snapshot(),
          cache: d.cache?.stats() ?? null,
          limits: d.limiter?.stats() ?? null,
          ...(d.runtimeStats?.() ?? {}),
        });
      },
    },
    {
      method: 'DELETE',
      path: '/admin/cache',
      async handle(req: IncomingMessage, res, principal) {
        if (!d.cache) throw noCache();
        const model = new URL(req.url ?? '/', 'http://x').searchParams.get('model') ?? undefined;
        if (model === '') throw new ApiError(400, '"model" is empty; send ?model=<served name> or leave it out to clear everything', 'model', 'invalid_value');
        const cleared = await d.cache.clear(model);
        d.log({ event: 'cache_cleared', by: principal?.id, model: model ?? null, ...cleared });
        send(res, 200, { cleared, model: model ?? null });
      },
    },
  ];
  if (d.guardMetrics) routes.push({ method: 'GET', path: '/metrics', handle: (_req, res) => metricsText(d.registry, res) });
  return routes;
}
