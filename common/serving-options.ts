/**
 * Settings of the serving hooks (issue 17: response cache, per-caller limits, named keys, JWT,
 * admin endpoints, Redis), appended to the runtime's OPTION_SPECS so `embedctl serve` and the
 * container entry point take them the same way (flag > env > embedctl.yaml `serve:` > default).
 * Values stay as the validated strings users typed where that reads better in `serve --dry-run`
 * (sizes, lists); runtime/hooks parses them once at start.
 */
import { isIP } from 'node:net';

export interface ServingOptions {
  /** "10000" (entries) or "256MB" (bytes); undefined = no in-process cache tier. */
  cacheSize: string | undefined;
  cacheTtlMs: number;
  /** redis:// URL: a shared cache tier, and shared rate-limit buckets. */
  cacheRedis: string | undefined;
  keysFile: string | undefined;
  /** Default per-caller limits (callers without their own in the keys file). */
  requestsPerMinute: number | undefined;
  tokensPerMinute: number | undefined;
  jwtSecret: string | undefined;
  jwtJwksUrl: string | undefined;
  jwtIssuer: string | undefined;
  jwtAudience: string | undefined;
  jwtNameClaim: string;
  /** Comma-separated addresses/CIDRs whose x-embedctl-caller header is believed. */
  trustedProxy: string | undefined;
  metricsPort: number | undefined;
}

const UNITS: Record<string, number> = { b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };

/** "10000" = entries; "256MB", "1GiB", "512k" = bytes (K, M, G are powers of 1024). */
export function parseCacheSize(raw: unknown): { entries?: number; bytes?: number } {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(String(raw ?? '').replace(/_/g, ''));
  const unit = m?.[2]?.toLowerCase() ?? '';
  if (!m || (unit && !(unit in UNITS))) throw new Error(`expected a number of entries (10000) or a size (256MB, 1GiB), got ${JSON.stringify(raw)}`);
  const n = Number(m[1]);
  if (!unit) {
    if (!Number.isInteger(n) || n < 1) throw new Error(`expected at least 1 entry, got ${JSON.stringify(raw)}`);
    return { entries: n };
  }
  const bytes = Math.floor(n * UNITS[unit]!);
  if (bytes < 1024) throw new Error(`a cache under 1KiB holds nothing useful, got ${JSON.stringify(raw)}`);
  return { bytes };
}

/** Checks a --cache-redis value; the message says what is expected. */
export function parseRedisUrl(raw: unknown): string {
  const s = String(raw ?? '').trim();
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw new Error(`expected a Redis URL like redis://127.0.0.1:6379/0, got ${JSON.stringify(s)}`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error(`expected a redis:// or rediss:// URL, got ${u.protocol}//`);
  if (!u.hostname) throw new Error('the Redis URL has no host; use redis://host:6379');
  return s;
}

/** Parses --trusted-proxy: "127.0.0.1,10.0.0.0/8,::1". */
export function parseProxyList(raw: unknown): string[] {
  const list = String(raw ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (!list.length) throw new Error('expected addresses or CIDRs, comma-separated (127.0.0.1,10.0.0.0/8)');
  for (const p of list) {
    const [addr, bits] = p.split('/');
    const fam = isIP(addr ?? '');
    const max = fam === 6 ? 128 : 32;
    if (!fam || (bits !== undefined && !(Number.isInteger(Number(bits)) && Number(bits) >= 0 && Number(bits) <= max))) {
      throw new Error(`"${p}" is not an IP address or CIDR (e.g. 10.0.0.0/8)`);
    }
  }
  return list;
}

const text = (raw: unknown): string => {
  const s = String(raw ?? '').trim();
  if (!s) throw new Error('expected a non-empty value');
  return s;
};

const perMinute = (raw: unknown): number => {
  const n = Number(String(raw).replace(/_/g, ''));
  if (!Number.isInteger(n) || n < 1) throw new Error(`expected a whole number per minute (at least 1), got ${JSON.stringify(raw)}`);
  return n;
};

const ttlSeconds = (raw: unknown): number => {
  const n = Number(String(raw).trim().replace(/s$/, ''));
  if (!(n >= 0 && n <= 365 * 86400)) throw new Error(`expected seconds (0 = no expiry, up to a year), got ${JSON.stringify(raw)}`);
  return Math.round(n * 1000);
};

const portNumber = (raw: unknown): number => {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`expected a port 0-65535, got ${JSON.stringify(raw)}`);
  return n;
};

const httpUrl = (raw: unknown): string => {
  const s = text(raw);
  if (!/^https?:\/\/[^/]+/.test(s)) throw new Error(`expected the identity provider's JWKS URL (https://.../.well-known/jwks.json), got ${JSON.stringify(s)}`);
  return s;
};

interface Spec<K extends keyof ServingOptions> {
  key: K;
  flag: string;
  env: string;
  description: string;
  default: ServingOptions[K];
  parse(raw: unknown): ServingOptions[K];
  secret?: boolean;
}
const spec = <K extends keyof ServingOptions>(s: Spec<K>) => s;

export const SERVING_OPTION_SPECS = [
  spec({ key: 'cacheSize', flag: '--cache-size <n|size>', env: 'EMBEDCTL_CACHE_SIZE', description: 'response cache in this process: entries (10000) or bytes (256MB); off when unset', default: undefined, parse: (r) => (parseCacheSize(r), String(r).trim()) }),
  spec({ key: 'cacheTtlMs', flag: '--cache-ttl <s>', env: 'EMBEDCTL_CACHE_TTL', description: 'seconds a cached embedding lives (0 = until evicted)', default: 0, parse: ttlSeconds }),
  spec({ key: 'cacheRedis', flag: '--cache-redis <url>', env: 'EMBEDCTL_CACHE_REDIS', description: 'Redis shared by all replicas for the cache and the rate limits (redis://host:6379); Redis down = cache misses, per-replica limits', default: undefined, parse: parseRedisUrl, secret: true }),
  spec({ key: 'keysFile', flag: '--keys-file <path>', env: 'EMBEDCTL_KEYS_FILE', description: 'named API keys with scopes and limits (YAML; re-read when it changes)', default: undefined, parse: text }),
  spec({ key: 'requestsPerMinute', flag: '--requests-per-minute <n>', env: 'EMBEDCTL_REQUESTS_PER_MINUTE', description: 'default per-caller request limit (callers without their own in the keys file)', default: undefined, parse: perMinute }),
  spec({ key: 'tokensPerMinute', flag: '--tokens-per-minute <n>', env: 'EMBEDCTL_TOKENS_PER_MINUTE', description: 'default per-caller input-token limit', default: undefined, parse: perMinute }),
  spec({ key: 'jwtSecret', flag: '--jwt-secret <secret>', env: 'EMBEDCTL_JWT_SECRET', description: 'accept HS256 JWT bearer tokens signed with this secret (32+ bytes; prefer the env var)', default: undefined, parse: text, secret: true }),
  spec({ key: 'jwtJwksUrl', flag: '--jwt-jwks-url <url>', env: 'EMBEDCTL_JWT_JWKS_URL', description: "accept RS256/ES256 JWT bearer tokens signed by a key in this JWKS (the identity provider's)", default: undefined, parse: httpUrl }),
  spec({ key: 'jwtIssuer', flag: '--jwt-issuer <iss>', env: 'EMBEDCTL_JWT_ISSUER', description: 'required "iss" of JWT bearer tokens', default: undefined, parse: text }),
  spec({ key: 'jwtAudience', flag: '--jwt-audience <aud>', env: 'EMBEDCTL_JWT_AUDIENCE', description: 'required "aud" of JWT bearer tokens', default: undefined, parse: text }),
  spec({ key: 'jwtNameClaim', flag: '--jwt-name-claim <claim>', env: 'EMBEDCTL_JWT_NAME_CLAIM', description: "JWT claim naming the caller (for limits, metrics and the access log)", default: 'sub', parse: text }),
  spec({ key: 'trustedProxy', flag: '--trusted-proxy <list>', env: 'EMBEDCTL_TRUSTED_PROXY', description: 'addresses/CIDRs (the gateway) whose x-embedctl-caller header names the caller', default: undefined, parse: (r) => parseProxyList(r).join(',') }),
  spec({ key: 'metricsPort', flag: '--metrics-port <n>', env: 'EMBEDCTL_METRICS_PORT', description: 'also serve /metrics without a key on this port (for scrapers inside the host; do not publish it)', default: undefined, parse: portNumber }),
];

/**
 * Request header a trusted proxy (the gateway) sends to have a caller-quota refusal answered with
 * this status (400-599) instead of 429: nginx retries a replica's 429 (overload) on the next
 * replica and then on hosted, and counts it against the replica's health; a quota refusal must be
 * neither, so the gateway asks for a status it intercepts and answers as a 429 itself.
 */
export const QUOTA_STATUS_HEADER = 'x-embedctl-quota-status';
