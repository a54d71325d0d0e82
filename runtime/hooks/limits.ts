import type { SharedRedis } from './redis.js';

/**
 * Per-caller rate limits: two token buckets per caller, one on requests per minute and one on
 * input tokens per minute, each refilled continuously and holding up to its burst (default: one
 * minute's worth). Tokens are only known after tokenising, so admission takes 1 request and
 * needs the token bucket out of debt (above zero); when the request is done its tokens are
 * debited, which may leave the bucket in debt and refuse the caller's next requests until it has
 * refilled. Over any minute a caller gets its tokens per minute plus at most one request's
 * overshoot. With Redis (--cache-redis) the buckets live there and one Lua script does the
 * read-refill-take-write atomically on Redis' own clock, so the limit holds across replicas;
 * without it (or while Redis is down) each replica keeps its own buckets in memory.
 */

export interface LimitSpec {
  requestsPerMinute?: number;
  tokensPerMinute?: number;
  /** Largest number of requests taken at once (default: requestsPerMinute). */
  requestsBurst?: number;
  /** Largest number of tokens taken at once (default: tokensPerMinute). */
  tokensBurst?: number;
}

export interface LimitDecision {
  allowed: boolean;
  /** OpenAI's x-ratelimit-* headers (and Retry-After when refused): send them with every response. */
  headers: Record<string, string>;
  /** Which bucket refused; undefined when allowed. */
  limit?: 'requests' | 'tokens';
  retryAfterSeconds?: number;
}

/**
 * What one call asks of both buckets: allowed when each holds at least its `need`; then `take`
 * is subtracted from each. Admission: {needRequests: 1, takeRequests: 1, needTokens: 1, takeTokens: 0};
 * the debit afterwards: needs nothing, takes the tokens.
 */
export interface Cost {
  needRequests: number;
  takeRequests: number;
  needTokens: number;
  takeTokens: number;
}

export const ADMIT: Cost = { needRequests: 1, takeRequests: 1, needTokens: 1, takeTokens: 0 };
export const debit = (tokens: number): Cost => ({ needRequests: -Infinity, takeRequests: 0, needTokens: -Infinity, takeTokens: tokens });

export interface Limiter {
  take(subject: string, spec: LimitSpec, cost: Cost): Promise<LimitDecision>;
  /** The token debit after an answer (see Cost), fire and forget: nobody reads its decision. */
  charge(subject: string, spec: LimitSpec, tokens: number): void;
  stats(): { backend: 'memory' | 'redis'; subjects: number; redisErrors: number };
}

export const hasLimits = (s: LimitSpec | undefined): s is LimitSpec => !!s && (!!s.requestsPerMinute || !!s.tokensPerMinute);

/** Bucket state: levels of both buckets at time `ts` (ms). */
interface Levels {
  r: number;
  t: number;
  ts: number;
}

interface Dim {
  perMs: number;
  burst: number;
}

const dims = (s: LimitSpec): { req?: Dim; tok?: Dim } => ({
  req: s.requestsPerMinute ? { perMs: s.requestsPerMinute / 60_000, burst: s.requestsBurst ?? s.requestsPerMinute } : undefined,
  tok: s.tokensPerMinute ? { perMs: s.tokensPerMinute / 60_000, burst: s.tokensBurst ?? s.tokensPerMinute } : undefined,
});

/** "1m30s", "6s", "120ms": the format OpenAI uses in x-ratelimit-reset-*. */
export function formatReset(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.ceil(ms))}ms`;
  const s = Math.ceil(ms / 1000);
  const m = Math.floor(s / 60);
  return m ? `${m}m${s % 60}s` : `${s}s`;
}

/** Turns bucket levels after a take (or a refusal) into the decision and its headers. */
function decide(spec: LimitSpec, cost: Cost, ok: boolean, r: number, t: number): LimitDecision {
  const { req, tok } = dims(spec);
  const headers: Record<string, string> = {};
  let wait = 0;
  let limit: LimitDecision['limit'];
  if (req) {
    headers['x-ratelimit-limit-requests'] = String(spec.requestsPerMinute);
    headers['x-ratelimit-remaining-requests'] = String(Math.max(0, Math.floor(r)));
    headers['x-ratelimit-reset-requests'] = formatReset((req.burst - r) / req.perMs);
    if (!ok && r < cost.needRequests) {
      limit = 'requests';
      wait = Math.max(wait, (cost.needRequests - r) / req.perMs);
    }
  }
  if (tok) {
    headers['x-ratelimit-limit-tokens'] = String(spec.tokensPerMinute);
    headers['x-ratelimit-remaining-tokens'] = String(Math.max(0, Math.floor(t)));
    headers['x-ratelimit-reset-tokens'] = formatReset((tok.burst - t) / tok.perMs);
    if (!ok && t < cost.needTokens) {
      limit ??= 'tokens';
      wait = Math.max(wait, (cost.needTokens - t) / tok.perMs);
    }
  }
  if (ok) return { allowed: true, headers };
  const retryAfterSeconds = Math.max(1, Math.ceil(wait / 1000));
  headers['retry-after'] = String(retryAfterSeconds);
  return { allowed: false, headers, limit, retryAfterSeconds };
}

/** Refill to `now`, then check and take (see Cost). The Lua script below is this function. */
function step(prev: Levels | undefined, now: number, spec: LimitSpec, cost: Cost): { next: Levels; ok: boolean } {
  const { req, tok } = dims(spec);
  const dt = prev ? Math.max(0, now - prev.ts) : 0;
  let r = req ? Math.min(req.burst, (prev?.r ?? req.burst) + dt * req.perMs) : 0;
  let t = tok ? Math.min(tok.burst, (prev?.t ?? tok.burst) + dt * tok.perMs) : 0;
  const ok = (!req || r >= cost.needRequests) && (!tok || t >= cost.needTokens);
  if (ok) {
    r -= req ? cost.takeRequests : 0;
    t -= tok ? cost.takeTokens : 0;
  }
  return { next: { r, t, ts: now }, ok };
}

/** How long a bucket takes to refill completely: after that its state is the same as none. */
function fullAfterMs(spec: LimitSpec): number {
  const { req, tok } = dims(spec);
  return Math.ceil(Math.max(req ? req.burst / req.perMs : 0, tok ? tok.burst / tok.perMs : 0)) + 1000;
}

export class MemoryLimiter implements Limiter {
  private readonly buckets = new Map<string, Levels & { idleAt: number }>();

  constructor(private readonly now = () => Date.now()) {}

  async take(subject: string, spec: LimitSpec, cost: Cost): Promise<LimitDecision> {
    return this.takeSync(subject, spec, cost);
  }

  takeSync(subject: string, spec: LimitSpec, cost: Cost): LimitDecision {
    const { next, ok } = this.apply(subject, spec, cost);
    return decide(spec, cost, ok, next.r, next.t);
  }

  /** Synchronous, and without building the headers a decision carries. */
  charge(subject: string, spec: LimitSpec, tokens: number): void {
    this.apply(subject, spec, debit(tokens));
  }

  private apply(subject: string, spec: LimitSpec, cost: Cost): { next: Levels; ok: boolean } {
    const now = this.now();
    const r = step(this.buckets.get(subject), now, spec, cost);
    this.buckets.set(subject, { ...r.next, idleAt: now + fullAfterMs(spec) });
    if (this.buckets.size > 10_000) this.sweep(now);
    return r;
  }

  stats() {
    return { backend: 'memory' as const, subjects: this.buckets.size, redisErrors: 0 };
  }

  /** Drops buckets that have refilled completely (JWT subjects could otherwise grow without bound). */
  private sweep(now: number) {
    for (const [k, b] of this.buckets) if (b.idleAt <= now) this.buckets.delete(k);
  }
}

/** step() in Lua, on Redis' clock (TIME) so replicas with skewed clocks agree. Returns {ok, r, t}. */
const TAKE_LUA = `
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
local rr, rb, rn, rc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local tr, tb, tn, tc = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local s = redis.call('HMGET', KEYS[1], 'r', 't', 'ts')
local ts = tonumber(s[3]) or now
local dt = math.max(0, now - ts)
local r, t = 0, 0
if rr > 0 then r = math.min(rb, (tonumber(s[1]) or rb) + dt * rr) end
if tr > 0 then t = math.min(tb, (tonumber(s[2]) or tb) + dt * tr) end
local ok = 1
if rr > 0 and r < rn then ok = 0 end
if tr > 0 and t < tn then ok = 0 end
if ok == 1 then
  if rr > 0 then r = r - rc end
  if tr > 0 then t = t - tc end
end
redis.call('HSET', KEYS[1], 'r', tostring(r), 't', tostring(t), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[9]))
return {ok, tostring(r), tostring(t)}
`;

/** Lua's tonumber() reads "-inf" as nil; a very negative number means "needs nothing" as well. */
const num = (n: number) => (n === -Infinity ? '-1e300' : String(n));

export const LIMIT_KEY_PREFIX = 'embedctl:ratelimit:v1:';

type TakeCommand = (key: string, ...args: string[]) => Promise<[number, string, string]>;

export class RedisLimiter implements Limiter {
  private readonly fallback: MemoryLimiter;
  private errors = 0;
  private readonly take_: TakeCommand;

  constructor(
    private readonly redis: SharedRedis,
    private readonly log: (e: Record<string, unknown>) => void = () => {},
  ) {
    this.fallback = new MemoryLimiter();
    // defineCommand sends EVALSHA and falls back to EVAL once per connection (script cache).
    redis.client.defineCommand('embedctlTakeLimit', { numberOfKeys: 1, lua: TAKE_LUA });
    this.take_ = (redis.client as unknown as { embedctlTakeLimit: TakeCommand }).embedctlTakeLimit.bind(redis.client);
  }

  async take(subject: string, spec: LimitSpec, cost: Cost): Promise<LimitDecision> {
    const { req, tok } = dims(spec);
    try {
      const [ok, r, t] = await this.take_(
        LIMIT_KEY_PREFIX + subject,
        String(req?.perMs ?? 0),
        String(req?.burst ?? 0),
        num(cost.needRequests),
        String(cost.takeRequests),
        String(tok?.perMs ?? 0),
        String(tok?.burst ?? 0),
        num(cost.needTokens),
        String(cost.takeTokens),
        String(fullAfterMs(spec)),
      );
      return decide(spec, cost, ok === 1, Number(r), Number(t));
    } catch (err) {
      // Redis down: limits still apply, per replica, rather than not at all or failing the request.
      if (this.errors++ === 0 || this.errors % 1000 === 0) this.log({ event: 'ratelimit_redis_error', errors: this.errors, error: (err as Error).message });
      return this.fallback.takeSync(subject, spec, cost);
    }
  }

  charge(subject: string, spec: LimitSpec, tokens: number): void {
    void this.take(subject, spec, debit(tokens));
  }

  stats() {
    return { backend: 'redis' as const, subjects: this.fallback.stats().subjects, redisErrors: this.errors };
  }
}
