import { CALLER_NAME_RE, GATEWAY_KEY_RE, type GatewayKey } from './gateway-keys.js';

/**
 * Named callers at the gateway (issue 17): who is calling, by the name the runtimes know them by
 * (nginx passes it as X-Embedctl-Caller; the runtimes believe it only from --trusted-proxy
 * addresses), and a requests-per-minute limit per caller enforced in nginx, so a tenant's quota
 * holds whether the split sends a request to hosted or to self-hosted.
 *
 * nginx's limit_req zones have one fixed rate each, so every distinct (rate, burst) pair gets its
 * own zone, keyed on a variable that holds the caller's name only for callers with that limit
 * (an empty key is not counted). As the runtime's token bucket, a caller may spend its burst
 * (default one minute's worth) at once and then gets one more request per 60/rpm seconds.
 *
 * Two snippets, both holding keys (mode 0600, never in nginx.conf): `http` goes into the http
 * block (maps and zones), `location` into every location that proxies a request (limit_req).
 * A request is counted once, however many locations it passes through (nginx marks it).
 */

export interface GatewayCallerSnippets {
  http: string;
  location: string;
  /** Callers with a limit: name -> requests per minute (for reports and tests). */
  limits: Record<string, { requestsPerMinute: number; burst: number }>;
}

/** The status limit_req answers with inside nginx; @rate_limited turns it into an OpenAI-style 429. */
export const LIMIT_REQ_STATUS = 471;
/**
 * The status the gateway asks the runtimes to refuse a caller's quota with (request header
 * X-Embedctl-Quota-Status, common/serving-options.ts); @caller_quota answers it as a 429.
 */
export const QUOTA_STATUS = 472;

const quote = (s: string) => `"${s}"`;

export function renderGatewayCallers(keys: GatewayKey[]): GatewayCallerSnippets {
  const limits: GatewayCallerSnippets['limits'] = {};
  for (const k of keys) {
    if (!GATEWAY_KEY_RE.test(k.key)) throw new Error('a gateway key has characters nginx cannot carry');
    if (k.name !== undefined && !CALLER_NAME_RE.test(k.name)) throw new Error(`caller name ${JSON.stringify(k.name)} must be 1-128 letters, digits or . _ @ : -`);
    if (!k.requestsPerMinute) continue;
    if (!k.name) throw new Error('a gateway key with a limit needs a name');
    const spec = { requestsPerMinute: k.requestsPerMinute, burst: k.requestsBurst ?? k.requestsPerMinute };
    const prior = limits[k.name];
    if (prior && (prior.requestsPerMinute !== spec.requestsPerMinute || prior.burst !== spec.burst)) {
      throw new Error(`caller "${k.name}" has two different limits (rpm=${prior.requestsPerMinute} and rpm=${spec.requestsPerMinute}); its keys share one quota, give them the same`);
    }
    limits[k.name] = spec;
  }
  const zones = new Map<string, { rpm: number; burst: number; callers: string[] }>();
  for (const [name, l] of Object.entries(limits)) {
    const id = `${l.requestsPerMinute}_${l.burst}`;
    const z = zones.get(id) ?? { rpm: l.requestsPerMinute, burst: l.burst, callers: [] };
    z.callers.push(name);
    zones.set(id, z);
  }
  const named = keys.filter((k) => k.name);
  const http = [
    '# Written by embedctl; mode 0600. Gateway keys: never commit or share.',
    '# The caller behind each key, by the name the runtimes know it by (sent as X-Embedctl-Caller).',
    'map $http_authorization $embedctl_caller {',
    '    default "";',
    ...named.map((k) => `    ${quote(`Bearer ${k.key}`)} ${quote(k.name!)};`),
    '}',
    '# What a refused caller is told (x-ratelimit-limit-requests, Retry-After).',
    'map $embedctl_caller $embedctl_caller_rpm {',
    '    default "";',
    ...Object.entries(limits).map(([n, l]) => `    ${quote(n)} ${l.requestsPerMinute};`),
    '}',
    'map $embedctl_caller $embedctl_retry_after {',
    '    default 60;',
    ...Object.entries(limits).map(([n, l]) => `    ${quote(n)} ${Math.max(1, Math.ceil(60 / l.requestsPerMinute))};`),
    '}',
    ...[...zones].flatMap(([id, z]) => [
      `# ${z.rpm} requests/min, burst ${z.burst}: ${z.callers.join(', ')}`,
      `map $embedctl_caller $embedctl_limit_${id} {`,
      '    default "";',
      ...z.callers.map((n) => `    ${quote(n)} $embedctl_caller;`),
      '}',
      `limit_req_zone $embedctl_limit_${id} zone=embedctl_rpm_${id}:1m rate=${z.rpm}r/m;`,
    ]),
    '',
  ].join('\n');
  const location = [
    '# Written by embedctl: per-caller request limits (see the http snippet).',
    ...[...zones].map(([id, z]) => `limit_req zone=embedctl_rpm_${id}${z.burst > 1 ? ` burst=${z.burst - 1} nodelay` : ''};`),
    '',
  ].join('\n');
  return { http, location, limits };
}
