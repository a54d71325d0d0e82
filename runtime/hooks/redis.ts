import { Redis } from 'ioredis';

/**
 * One Redis connection shared by the cache and the rate limiter (--cache-redis). Redis is an
 * optimisation and a coordination aid, never a dependency of answering: commands fail fast
 * instead of queueing while it is down (no offline queue, no per-command retries, a short command
 * timeout), and the client keeps reconnecting in the background. Callers treat every failure as
 * "Redis said nothing" (a cache miss, a local limit) and count it.
 */

export interface SharedRedis {
  client: Redis;
  /** True while the connection is up and ready for commands. */
  up(): boolean;
  /** Resolves once connected, or after `ms` (whichever first); never rejects. */
  connected(ms: number): Promise<boolean>;
  close(): Promise<void>;
}

/** The URL without its password, for logs. */
export function redactRedisUrl(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}

export function connectRedis(url: string, opts: { commandTimeoutMs?: number; log?: (e: Record<string, unknown>) => void } = {}): SharedRedis {
  const log = opts.log ?? (() => {});
  const client = new Redis(url, {
    // A request waits at most this long for Redis before counting it as down for this request.
    commandTimeout: opts.commandTimeoutMs ?? 250,
    connectTimeout: 1000,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // Keep trying, never give up: Redis coming back should need no restart of the runtime.
    retryStrategy: (times) => Math.min(100 * times, 2000),
    connectionName: 'embedctl-runtime',
  });
  let isUp = false;
  // Log transitions, not every failed reconnect (which would be one line per retry while down).
  let lastReported: 'up' | 'down' | undefined;
  const waiters = new Set<() => void>();
  client.on('ready', () => {
    isUp = true;
    for (const w of waiters) w();
    waiters.clear();
    if (lastReported !== 'up') log({ event: 'redis_up', url: redactRedisUrl(url) });
    lastReported = 'up';
  });
  const down = (err?: Error) => {
    isUp = false;
    if (lastReported !== 'down') log({ event: 'redis_down', url: redactRedisUrl(url), ...(err ? { error: err.message } : {}) });
    lastReported = 'down';
  };
  client.on('error', down);
  client.on('close', () => down());

  return {
    client,
    // The client's own state: it can know the socket is gone before our 'close' handler has run.
    up: () => isUp && client.status === 'ready',
    connected: (ms) =>
      isUp
        ? Promise.resolve(true)
        : new Promise<boolean>((resolve) => {
            const done = () => {
              clearTimeout(t);
              resolve(true);
            };
            const t = setTimeout(() => {
              waiters.delete(done);
              resolve(false);
            }, ms);
            waiters.add(done);
          }),
    close: async () => {
      lastReported = 'down'; // a deliberate close is not an outage
      client.disconnect();
    },
  };
}
