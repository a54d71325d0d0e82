import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { LIMIT_REQ_STATUS, QUOTA_STATUS } from './gateway-callers.js';
import { renderTemplate, type TemplateVars } from './template.js';
import { loadTemplate } from './templates.js';

/**
 * The gateway's nginx.conf: split by a stable key, least_conn over the replicas with a passive
 * circuit breaker per replica, same-model fallback to hosted, client keys, an operator route
 * that pins one side for evidence, and optional TLS. Pure: paths are referenced, never read.
 */

/** How requests are bucketed between self-hosted and hosted. */
export type SplitKey = 'auto' | 'tenant' | 'api-key' | 'request';

export const SPLIT_KEYS: readonly SplitKey[] = ['auto', 'tenant', 'api-key', 'request'];

/** The header an operator key may send to pin a request to one side. */
export const ROUTE_HEADER = 'X-Embedctl-Route';
export type GatewayRoute = 'self-hosted' | 'hosted';

export interface ClientAuthOptions {
  /** Absolute path of the nginx map snippet (renderGatewayKeysMap) listing the keys and roles. */
  keysInclude: string;
  /**
   * true: a request without a known key gets 401 and never reaches a backend (the default for
   * deployments). false: unknown callers are treated as clients (a loopback-only local stack),
   * while operator keys still unlock the route header.
   */
  required: boolean;
  /**
   * Named callers and their request limits (renderGatewayCallers): `httpInclude` goes into the
   * http block, `locationInclude` into every proxying location. Absolute paths, mode 0600.
   */
  callers?: { httpInclude: string; locationInclude: string };
}

export interface TlsOptions {
  /** Paths nginx reads at start; they are referenced, never copied. */
  certPath: string;
  keyPath: string;
  domain: string;
  /** HTTPS listen port (default 443); the plain `listen` then only redirects. */
  port?: number;
  hsts?: boolean;
}

export interface NginxConfOptions {
  /** Where nginx listens (plain HTTP): host defaults to 0.0.0.0 (use 127.0.0.1 for local instances). */
  listen: { host?: string; port: number };
  /** Self-hosted runtimes as host:port, e.g. ["127.0.0.1:8081"] or ["runtime-1:8080"]. */
  selfHosted: string[];
  /** The hosted embeddings endpoint, e.g. https://api.jina.ai/v1/embeddings or http://127.0.0.1:9000/v1/embeddings. */
  hostedUrl: string;
  /**
   * 0-100 in whole percents (the split has 100 buckets of 1 %); 0 and 100 send everything one
   * way. The share the config serves until a split is written to `splitDir`, which then wins.
   */
  selfHostedPercent: number;
  /**
   * Absolute directory nginx reads the live split from on every request (see writeSplit): moving
   * the split writes files there and reloads nothing. Default: the container's mount point.
   */
  splitDir?: string;
  /**
   * The deployment declares that hosted serves the same model (same vector space) as the
   * runtimes. Only then does a self-hosted failure fall back to hosted; otherwise the client gets
   * a clear 503 (default false: mixing vector spaces silently corrupts an index).
   */
  sameModel?: boolean;
  /** Default "auto": X-Tenant-Id, else Authorization, else $request_id. */
  splitKey?: SplitKey;
  /**
   * Absolute path of a snippet (mode 0600, outside the rendered directory) holding
   * `proxy_set_header Authorization "Bearer ...";` for the hosted API. Without it the client's
   * own Authorization header is passed through to hosted (or cleared when clientAuth is on).
   */
  hostedAuthInclude?: string;
  clientAuth?: ClientAuthOptions;
  tls?: TlsOptions;
  /** DNS servers for re-resolving a hosted hostname at run time (default: Docker's 127.0.0.11). */
  resolvers?: string[];
  /** CA bundle that verifies the hosted API's certificate. */
  caCertPath?: string;
  /** pid file, relative to the -p prefix or absolute. */
  pidPath?: string;
  /** "stderr", a path, or "/dev/stderr" in a container. */
  errorLog?: string;
  /** A path or "/dev/stdout" in a container. */
  accessLog?: string;
  /** A second copy of the access log, in a file (a runtime's --gateway-log follows it). */
  accessLogFile?: string;
  workerProcesses?: number | 'auto';
  /**
   * The `user` nginx's workers run as when its master runs as root (nginx's default is nobody).
   * A local stack started as root sets "root": its files live wherever the operator works (under
   * /root, in a 0700 temp dir), where `nobody` could not read the split or write request bodies.
   */
  workerUser?: string;
  /** Matches the runtime's request limit (its --max-body-bytes, 8 MiB by default). */
  clientMaxBodySize?: string;
  /** How much of each request body stays in memory; the rest is buffered in a temp file. */
  clientBodyBufferSize?: string;
  /** Breaker threshold: failed attempts within failTimeout that open a replica's breaker. */
  maxFails?: number;
  /** Breaker window and open time, after which one live request re-probes the replica. */
  failTimeout?: string;
  /** Below the runtime's keep-alive timeout (65 s), so nginx, not the runtime, closes idle sockets. */
  upstreamKeepaliveTimeout?: string;
  selfHostedConnectTimeout?: string;
  selfHostedReadTimeout?: string;
  hostedConnectTimeout?: string;
  hostedReadTimeout?: string;
}

/** Where the gateway container mounts the split directory (templates/docker-compose.yml). */
export const DEPLOY_SPLIT_DIR = '/etc/nginx/embedctl-split';

export const NGINX_DEFAULTS = {
  splitKey: 'auto' as SplitKey,
  splitDir: DEPLOY_SPLIT_DIR,
  sameModel: false,
  resolvers: ['127.0.0.11'],
  caCertPath: '/etc/ssl/certs/ca-certificates.crt',
  pidPath: 'nginx.pid',
  errorLog: 'stderr',
  accessLog: '/dev/stdout',
  workerProcesses: 'auto' as number | 'auto',
  clientMaxBodySize: '8m',
  clientBodyBufferSize: '256k',
  maxFails: 3,
  failTimeout: '5s',
  upstreamKeepaliveTimeout: '30s',
  selfHostedConnectTimeout: '2s',
  selfHostedReadTimeout: '30s',
  hostedConnectTimeout: '5s',
  hostedReadTimeout: '60s',
};

export interface HostedTarget {
  scheme: 'http' | 'https';
  host: string;
  port: number;
  path: string;
  /** IP literals and localhost are fixed at start; names are re-resolved while running. */
  dynamic: boolean;
}

/** Parses and checks a hosted URL; the message says what is wrong (callers add the flag name). */
export function parseHostedUrl(url: string): HostedTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`expected an http(s) URL such as https://api.jina.ai/v1/embeddings, got ${JSON.stringify(url)}`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') {
    throw new Error(`expected an http or https URL, got ${u.protocol.replace(':', '')}`);
  }
  if (u.username || u.password) throw new Error('must not carry credentials; set EMBEDCTL_HOSTED_API_KEY instead');
  if (u.search || u.hash) throw new Error('must not have a query string or fragment');
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const scheme = u.protocol === 'https:' ? 'https' : 'http';
  const port = u.port ? Number(u.port) : scheme === 'https' ? 443 : 80;
  const path = u.pathname === '/' ? '/v1/embeddings' : u.pathname;
  return { scheme, host, port, path, dynamic: isIP(host) === 0 && host !== 'localhost' };
}

/**
 * The split's buckets: split_clients hashes the key (MurmurHash2, as src/client/route.ts) into
 * 100 buckets of 1 %, "0".."99"; bucket b is self-hosted while b < percent. Whole percents only:
 * a bucket cannot be cut, and 100 fixed buckets keep the config small enough for user data.
 */
export const SPLIT_BUCKETS = 100;

/** Why a share cannot be served by the gateway, or undefined when it can (0..100, whole). */
export function splitPercentProblem(p: number): string | undefined {
  if (!Number.isFinite(p) || p < 0 || p > 100) return `must be within 0-100, got ${p}`;
  if (!Number.isInteger(p)) return `must be a whole percent (the gateway splits keys into ${SPLIT_BUCKETS} buckets of 1 %), got ${p}`;
  return undefined;
}

function formatPercent(p: number): string {
  const problem = splitPercentProblem(p);
  if (problem) throw new Error(`selfHostedPercent ${problem}`);
  return String(p);
}

/** The bucket names that go self-hosted at `percent`: "0".."percent-1". */
export function selfHostedBuckets(percent: number): string[] {
  const problem = splitPercentProblem(percent);
  if (problem) throw new Error(`the self-hosted share ${problem}`);
  return Array.from({ length: percent }, (_, b) => String(b));
}

/** /health's body while a split directory generation is live (nginx serves the file as is). */
export function splitHealthBody(percent: number, generation: string): string {
  return `${JSON.stringify({ status: 'ok', component: 'nginx', selfHostedPercent: percent, split: generation })}\n`;
}

/** The share a rendered config serves before any split is written to its split directory. */
export function renderedPercentOf(conf: string): number | undefined {
  const m = /^# self-hosted share: (\d+(?:\.\d+)?)%/m.exec(conf);
  return m ? Number(m[1]) : undefined;
}

/** The split directory a rendered config reads, or undefined for a config whose split is in the file. */
export function splitDirOf(conf: string): string | undefined {
  return /^# embedctl-split-dir: (\S+)$/m.exec(conf)?.[1];
}

function splitMaps(mode: SplitKey): { maps: TemplateVars[]; variable: string; description: string } {
  switch (mode) {
    case 'request':
      return { maps: [], variable: '$request_id', description: 'per request, not sticky' };
    case 'tenant':
      return {
        maps: [{ source: '$http_x_tenant_id', target: '$embedctl_split_key', fallback: '$request_id' }],
        variable: '$embedctl_split_key',
        description: 'X-Tenant-Id, else per request',
      };
    case 'api-key':
      return {
        maps: [{ source: '$http_authorization', target: '$embedctl_split_key', fallback: '$request_id' }],
        variable: '$embedctl_split_key',
        description: 'Authorization, else per request',
      };
    case 'auto':
      return {
        maps: [
          { source: '$http_authorization', target: '$embedctl_key_from_auth', fallback: '$request_id' },
          { source: '$http_x_tenant_id', target: '$embedctl_split_key', fallback: '$embedctl_key_from_auth' },
        ],
        variable: '$embedctl_split_key',
        description: 'X-Tenant-Id, else Authorization, else per request',
      };
  }
}

const CONFIG_ID_PLACEHOLDER = '000000000000';

/** The config id nginx reports on /health, so a reload can wait until the new workers answer. */
export function configIdOf(conf: string): string | undefined {
  return /^# embedctl-config-id: ([0-9a-f]{12})$/m.exec(conf)?.[1];
}

/** The listen address recorded in a rendered config's header. */
export function listenOf(conf: string): string | undefined {
  return /^# listen: (\S+)$/m.exec(conf)?.[1];
}

const PATH_RE = /^[A-Za-z0-9._/-]+$/;
const DOMAIN_RE = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

function checkPath(what: string, p: string): string {
  if (!PATH_RE.test(p)) throw new Error(`${what} must be a plain path (letters, digits, . _ / -), got ${JSON.stringify(p)}`);
  return p;
}

const NO_FALLBACK_REASONS = {
  differentModel: 'the deployment does not declare that hosted serves the same model (render with --same-model)',
  pinned: 'X-Embedctl-Route pins it to self-hosted',
};

function tlsVars(tls: TlsOptions | undefined, listenHost: string): TemplateVars {
  if (!tls) return { tls: false, hsts: false };
  if (!DOMAIN_RE.test(tls.domain)) throw new Error(`tls domain must be a host name such as embed.example.com, got ${JSON.stringify(tls.domain)}`);
  const port = tls.port ?? 443;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`tls port must be 1-65535, got ${port}`);
  return {
    tls: {
      certPath: checkPath('tls certificate path', tls.certPath),
      keyPath: checkPath('tls key path', tls.keyPath),
      domain: tls.domain,
      redirectAuthority: port === 443 ? tls.domain : `${tls.domain}:${port}`,
    },
    hsts: Boolean(tls.hsts),
    mainListen: `${listenHost}:${port} ssl http2`,
  };
}

export function renderNginxConf(opts: NginxConfOptions, template = loadTemplate('nginx/nginx.conf')): string {
  const o = { ...NGINX_DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) } as Required<NginxConfOptions>;
  if (o.selfHosted.length === 0) throw new Error('selfHosted needs at least one host:port');
  for (const s of o.selfHosted) {
    if (!/^[A-Za-z0-9.[\]:_-]+:\d{1,5}$/.test(s)) throw new Error(`selfHosted server must be host:port, got ${JSON.stringify(s)}`);
  }
  const port = o.listen.port;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`listen port must be 1-65535, got ${port}`);
  if (!Number.isInteger(o.maxFails) || o.maxFails < 1) throw new Error(`maxFails must be a whole number >= 1, got ${o.maxFails}`);
  const percent = formatPercent(o.selfHostedPercent);
  const hosted = parseHostedUrl(o.hostedUrl);
  const buckets = Array.from({ length: SPLIT_BUCKETS }, (_, b) => ({ share: b === SPLIT_BUCKETS - 1 ? '*' : `${100 / SPLIT_BUCKETS}%`, bucket: String(b) }));
  const renderedSelfHosted = selfHostedBuckets(Number(percent)).map((bucket) => ({ bucket }));
  const split = splitMaps(o.splitKey);
  const defaultPort = hosted.scheme === 'https' ? 443 : 80;
  const hostForUrl = isIP(hosted.host) === 6 ? `[${hosted.host}]` : hosted.host;
  const listenHost = o.listen.host ?? '0.0.0.0';
  if (!/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)$/.test(listenHost)) throw new Error(`listen host must be an address or a name, got ${JSON.stringify(listenHost)}`);
  const auth = opts.clientAuth;
  const failures = [
    ...(o.sameModel ? [] : [{ location: '@selfhosted_failed', reason: NO_FALLBACK_REASONS.differentModel }]),
    { location: '@selfhosted_pinned_failed', reason: NO_FALLBACK_REASONS.pinned },
  ];
  const vars: TemplateVars = {
    configId: CONFIG_ID_PLACEHOLDER,
    listen: `${listenHost}:${port}`,
    mainListen: `${listenHost}:${port}`,
    selfHostedPercent: percent,
    splitKeyDescription: split.description.replace(/,/g, ';'),
    workerProcesses: String(o.workerProcesses),
    workerUser: o.workerUser ? { name: checkUser(o.workerUser) } : false,
    pidPath: o.pidPath,
    errorLog: o.errorLog,
    accessLog: o.accessLog,
    accessLogFile: opts.accessLogFile ? { path: checkPath('the access log file', opts.accessLogFile) } : false,
    clientMaxBodySize: o.clientMaxBodySize,
    clientBodyBufferSize: o.clientBodyBufferSize,
    hostedDynamic: hosted.dynamic,
    hostedStatic: !hosted.dynamic,
    resolvers: o.resolvers.map((address) => ({ address })),
    splitMaps: split.maps,
    splitKeyVariable: split.variable,
    splitBuckets: buckets,
    renderedSelfHosted,
    splitDir: checkPath('splitDir', o.splitDir.startsWith('/') ? o.splitDir : `(absolute) ${o.splitDir}`),
    clientAuth: auth
      ? {
          keysInclude: checkPath('the gateway keys file', auth.keysInclude),
          anonymousRole: auth.required ? '""' : 'client',
          authDescription: auth.required ? 'Unknown callers get 401.' : 'Unknown callers are clients (loopback only); operator keys unlock the route header.',
        }
      : false,
    callers: auth?.callers
      ? {
          httpInclude: checkPath('the gateway callers file', auth.callers.httpInclude),
          locationInclude: checkPath('the gateway limits file', auth.callers.locationInclude),
          limitReqStatus: LIMIT_REQ_STATUS,
        }
      : false,
    ...tlsVars(opts.tls, listenHost),
    upstreamKeepaliveTimeout: o.upstreamKeepaliveTimeout,
    selfHostedServers: o.selfHosted.map((address) => ({ address, maxFails: o.maxFails, failTimeout: o.failTimeout })),
    maxFails: o.maxFails,
    failTimeout: o.failTimeout,
    selfHostedTries: o.selfHosted.length,
    selfHostedConnectTimeout: o.selfHostedConnectTimeout,
    selfHostedReadTimeout: o.selfHostedReadTimeout,
    quotaStatus: QUOTA_STATUS,
    selfHostedLocations: [
      { location: '@selfhosted', onFailure: o.sameModel ? '@hosted_fallback' : '@selfhosted_failed' },
      { location: '@selfhosted_pinned', onFailure: '@selfhosted_pinned_failed' },
    ],
    failureLocations: failures,
    hostedConnectTimeout: o.hostedConnectTimeout,
    hostedReadTimeout: o.hostedReadTimeout,
    hostedScheme: hosted.scheme,
    hostedHost: hosted.host,
    hostedPort: hosted.port,
    hostedAuthority: `${hostForUrl}:${hosted.port}`,
    hostedHostHeader: hosted.port === defaultPort ? hostForUrl : `${hostForUrl}:${hosted.port}`,
    hostedPath: hosted.path,
    hostedTls: hosted.scheme === 'https',
    caCertPath: o.caCertPath,
    hostedAuthInclude: o.hostedAuthInclude ? { path: o.hostedAuthInclude } : false,
    hostedClearAuth: !o.hostedAuthInclude && Boolean(auth),
    hostedLocations: [
      { location: '@hosted', fallback: 'no' },
      { location: '@hosted_pinned', fallback: 'no' },
      ...(o.sameModel ? [{ location: '@hosted_fallback', fallback: 'yes' }] : []),
    ],
  };
  if (o.resolvers.length === 0 && hosted.dynamic) throw new Error('resolvers must name at least one DNS server for a hosted hostname');
  const text = renderTemplate(template, vars, { name: 'templates/nginx/nginx.conf', escape: 'nginx' });
  const id = createHash('sha256').update(text).digest('hex').slice(0, 12);
  return text.split(CONFIG_ID_PLACEHOLDER).join(id);
}

/**
 * The hosted-auth snippet for a local instance (written 0600 outside the rendered directory).
 * The key is checked, never echoed: messages about it must not leak it into logs.
 */
export function renderHostedAuthSnippet(apiKey: string): string {
  if (!/^[\x21-\x7e]+$/.test(apiKey) || /["\\$;{}']/.test(apiKey)) {
    throw new Error('the hosted API key has characters nginx cannot carry in a header value (quotes, $, ;, braces, spaces)');
  }
  return `# Written by embedctl; mode 0600. Holds the hosted API key: never commit or share.\nproxy_set_header Authorization "Bearer ${apiKey}";\n`;
}

function checkUser(name: string): string {
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(name)) throw new Error(`workerUser must be a user name, got ${JSON.stringify(name)}`);
  return name;
}

/** Whether a rendered config runs nginx's workers as root (see NginxConfOptions.workerUser). */
export const workersRunAsRoot = (conf: string): boolean => /^user root;/m.test(conf);
