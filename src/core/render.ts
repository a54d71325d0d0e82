import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { templatesDir } from '../util/paths.js';
import { renderTemplate, type TemplateVars } from './template.js';
import { K8S_FILES, k8sVars } from './render-k8s.js';

export { renderTemplate, TemplateError, escapers, type TemplateVars, type EscapeTarget } from './template.js';

/**
 * Reads one of the package's own templates. The only file access in core: the templates ship
 * with embedctl and never change while it runs, so this stays deterministic.
 */
export function loadTemplate(relPath: string): string {
  return readFileSync(join(templatesDir(), relPath), 'utf8');
}

/** How requests are bucketed between self-hosted and hosted. */
export type SplitKey = 'auto' | 'tenant' | 'api-key' | 'request';

export const SPLIT_KEYS: readonly SplitKey[] = ['auto', 'tenant', 'api-key', 'request'];

export interface NginxConfOptions {
  /** Where nginx listens: host defaults to 0.0.0.0 (use 127.0.0.1 for local instances). */
  listen: { host?: string; port: number };
  /** Self-hosted runtimes as host:port, e.g. ["127.0.0.1:8081"] or ["runtime-1:8080"]. */
  selfHosted: string[];
  /** The hosted embeddings endpoint, e.g. https://api.jina.ai/v1/embeddings or http://127.0.0.1:9000/v1/embeddings. */
  hostedUrl: string;
  /** 0-100, up to two decimals; 0 and 100 are valid and send everything one way. */
  selfHostedPercent: number;
  /** Default "auto": X-Tenant-Id, else Authorization, else $request_id. */
  splitKey?: SplitKey;
  /**
   * Absolute path of a snippet (mode 0600, outside the rendered directory) holding
   * `proxy_set_header Authorization "Bearer ...";` for the hosted API. Without it the client's
   * own Authorization header is passed through to hosted.
   */
  hostedAuthInclude?: string;
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
  workerProcesses?: number | 'auto';
  clientMaxBodySize?: string;
  maxFails?: number;
  failTimeout?: string;
  selfHostedConnectTimeout?: string;
  selfHostedReadTimeout?: string;
  hostedConnectTimeout?: string;
  hostedReadTimeout?: string;
}

export const NGINX_DEFAULTS = {
  splitKey: 'auto' as SplitKey,
  resolvers: ['127.0.0.11'],
  caCertPath: '/etc/ssl/certs/ca-certificates.crt',
  pidPath: 'nginx.pid',
  errorLog: 'stderr',
  accessLog: '/dev/stdout',
  workerProcesses: 'auto' as number | 'auto',
  clientMaxBodySize: '8m',
  maxFails: 1,
  failTimeout: '5s',
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

function formatPercent(p: number): string {
  if (!Number.isFinite(p) || p < 0 || p > 100) throw new Error(`selfHostedPercent must be within 0-100, got ${p}`);
  const rounded = Math.round(p * 100) / 100;
  if (Math.abs(rounded - p) > 1e-9) throw new Error(`selfHostedPercent allows at most two decimals, got ${p}`);
  return String(rounded);
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

/**
 * nginx.conf for the gateway in front of the self-hosted replicas: split by a stable key,
 * least_conn over the replicas, fallback to hosted when they all fail.
 */
export function renderNginxConf(opts: NginxConfOptions, template = loadTemplate('nginx/nginx.conf')): string {
  const o = { ...NGINX_DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) } as Required<NginxConfOptions>;
  if (o.selfHosted.length === 0) throw new Error('selfHosted needs at least one host:port');
  for (const s of o.selfHosted) {
    if (!/^[A-Za-z0-9.[\]:_-]+:\d{1,5}$/.test(s)) throw new Error(`selfHosted server must be host:port, got ${JSON.stringify(s)}`);
  }
  const port = o.listen.port;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`listen port must be 1-65535, got ${port}`);
  const percent = formatPercent(o.selfHostedPercent);
  const hosted = parseHostedUrl(o.hostedUrl);
  const pct = Number(percent);
  const buckets =
    pct === 0
      ? [{ share: '*', backend: 'hosted' }]
      : pct === 100
        ? [{ share: '*', backend: 'selfhosted' }]
        : [
            { share: `${percent}%`, backend: 'selfhosted' },
            { share: '*', backend: 'hosted' },
          ];
  const split = splitMaps(o.splitKey);
  const defaultPort = hosted.scheme === 'https' ? 443 : 80;
  const hostForUrl = isIP(hosted.host) === 6 ? `[${hosted.host}]` : hosted.host;
  const vars: TemplateVars = {
    configId: CONFIG_ID_PLACEHOLDER,
    listen: `${o.listen.host ?? '0.0.0.0'}:${port}`,
    selfHostedPercent: percent,
    splitKeyDescription: split.description.replace(/,/g, ';'),
    workerProcesses: String(o.workerProcesses),
    pidPath: o.pidPath,
    errorLog: o.errorLog,
    accessLog: o.accessLog,
    clientMaxBodySize: o.clientMaxBodySize,
    hostedDynamic: hosted.dynamic,
    hostedStatic: !hosted.dynamic,
    resolvers: o.resolvers.map((address) => ({ address })),
    splitMaps: split.maps,
    splitKeyVariable: split.variable,
    splitBuckets: buckets,
    selfHostedServers: o.selfHosted.map((address) => ({ address, maxFails: o.maxFails, failTimeout: o.failTimeout })),
    selfHostedTries: o.selfHosted.length,
    selfHostedConnectTimeout: o.selfHostedConnectTimeout,
    selfHostedReadTimeout: o.selfHostedReadTimeout,
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
    hostedLocations: [
      { location: '@hosted', fallback: 'no' },
      { location: '@hosted_fallback', fallback: 'yes' },
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

/* ---------------------------------------------------------------------------------------------- */
/* The whole deploy directory.                                                                      */

export interface DeployRenderInput {
  replicas: number;
  model: string;
  hostedUrl: string;
  percent: number;
  splitKey: SplitKey;
  gatewayPort: number;
  runtimePort: number;
  image: string;
  nginxImage: string;
  memoryLimit: string;
  gpusPerReplica: number;
  clientMaxBodySize: string;
  readTimeout: string;
  prometheus: boolean;
  hfTokenParameter: string;
  hostedKeyParameter: string;
  namespace: string;
  maxReplicas: number;
}

export interface RenderedFile {
  /** Relative to the output directory, with forward slashes. */
  path: string;
  content: string;
  mode: number;
}

/** Runtime i (1-based) listens on 127.0.0.1:(8080 + i) on the instance. */
export const RUNTIME_HOST_PORT_BASE = 8080;
/** Amazon's VPC resolver, reachable from every instance: nginx on the host network uses it. */
export const VPC_RESOLVER = '169.254.169.253';
/** Where the official nginx image writes the rendered hosted-auth template (relative to /etc/nginx). */
export const DEPLOY_HOSTED_AUTH_INCLUDE = 'conf.d/hosted-auth.conf';

/** "12g" -> "12Gi", "4096m" -> "4096Mi" (Kubernetes quantities). */
function k8sQuantity(size: string): string {
  const m = /^(\d+(?:\.\d+)?)([kmgKMG]?)$/.exec(size);
  if (!m) throw new Error(`not a size: ${size}`);
  const unit = { '': '', k: 'Ki', m: 'Mi', g: 'Gi' }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return `${m[1]}${unit}`;
}

const isHubModel = (model: string) => model.includes('/');

/** node -e script that fetches the hub model named by its first argument (or EMBEDCTL_MODEL). */
function fetchScript(source: 'argv' | 'env'): string {
  const model = source === 'argv' ? 'process.argv[1]' : 'process.env.EMBEDCTL_MODEL';
  return `const {main}=await import('/app/dist/src/cli.js');process.exitCode=await main(['node','embedctl','models','fetch',${model}]);`;
}

export function deployNginxOptions(c: DeployRenderInput): NginxConfOptions {
  return {
    listen: { host: '0.0.0.0', port: c.gatewayPort },
    selfHosted: Array.from({ length: c.replicas }, (_, i) => `127.0.0.1:${RUNTIME_HOST_PORT_BASE + i + 1}`),
    hostedUrl: c.hostedUrl,
    selfHostedPercent: c.percent,
    splitKey: c.splitKey,
    hostedAuthInclude: DEPLOY_HOSTED_AUTH_INCLUDE,
    resolvers: [VPC_RESOLVER],
    caCertPath: '/etc/ssl/certs/ca-certificates.crt',
    pidPath: 'nginx.pid',
    errorLog: 'stderr',
    accessLog: '/dev/stdout',
    workerProcesses: 'auto',
    clientMaxBodySize: c.clientMaxBodySize,
    selfHostedReadTimeout: c.readTimeout,
  };
}

const HEREDOC_MARKERS = ['EMBEDCTL_COMPOSE_EOF', 'EMBEDCTL_NGINX_EOF', 'EMBEDCTL_AUTH_EOF', 'EMBEDCTL_PROM_EOF'];

function userDataFrom(c: DeployRenderInput, f: { compose: string; nginxConf: string; hostedAuth: string; prometheus: string }): string {
  for (const text of Object.values(f)) {
    const clash = HEREDOC_MARKERS.find((m) => text.includes(m));
    if (clash) throw new Error(`a rendered file contains the heredoc marker ${clash}`);
  }
  // Full-line comments stay in deploy/ for readers; the copies inside user data drop them to fit
  // EC2's 16 KB limit uncompressed (nothing in these files reads its own comments).
  const body = (t: string) =>
    t
      .split('\n')
      .filter((l) => !/^\s*#(?!!)/.test(l))
      .join('\n')
      .replace(/\n+$/, '');
  return renderTemplate(
    loadTemplate('user-data.sh'),
    {
      image: c.image,
      model: c.model,
      hubModel: String(isHubModel(c.model)),
      hostedKeyParameter: c.hostedKeyParameter,
      hfTokenParameter: c.hfTokenParameter,
      gatewayPort: c.gatewayPort,
      fetchScriptShell: `'${fetchScript('argv').replace(/'/g, `'\\''`)}'`,
      composeProfiles: c.prometheus ? '--profile monitoring ' : '',
      composeFile: body(f.compose),
      nginxConf: body(f.nginxConf),
      hostedAuthTemplate: body(f.hostedAuth),
      prometheusYml: body(f.prometheus),
    },
    { name: 'templates/user-data.sh', escape: 'shell' },
  );
}

/** The instance's cloud-init script (what `embedctl provision` passes as user data). */
export function renderUserData(c: DeployRenderInput): string {
  const file = renderDeploy(c).find((f) => f.path === 'user-data.sh');
  return file!.content;
}

/** EC2 takes at most 16 KB of user data; cloud-init reads gzip natively, so larger scripts go compressed. */
export const USER_DATA_LIMIT = 16_384;

export function userDataBytes(script: string): Uint8Array {
  const raw = Buffer.from(script, 'utf8');
  if (raw.length <= USER_DATA_LIMIT) return raw;
  const packed = gzipSync(raw, { level: 9 });
  if (packed.length > USER_DATA_LIMIT) throw new Error(`user data is ${packed.length} bytes even gzipped; EC2 allows ${USER_DATA_LIMIT}`);
  return packed;
}

/**
 * Every file of the deploy directory, in a stable order. Pure: the command writes them.
 * Throws TemplateError/Error naming the template and variable on a bad value.
 */
export function renderDeploy(c: DeployRenderInput): RenderedFile[] {
  if (c.maxReplicas < c.replicas) throw new Error(`maxReplicas (${c.maxReplicas}) must be >= replicas (${c.replicas})`);
  const runtimes = Array.from({ length: c.replicas }, (_, i) => ({ name: `runtime-${i + 1}`, hostPort: RUNTIME_HOST_PORT_BASE + i + 1 }));
  const gpus = c.gpusPerReplica > 0 ? { count: c.gpusPerReplica } : false;
  const common: TemplateVars = {
    runtimes,
    image: c.image,
    nginxImage: c.nginxImage,
    model: c.model,
    runtimePort: c.runtimePort,
    gatewayPort: c.gatewayPort,
    memoryLimit: c.memoryLimit,
    gpus,
    namespace: c.namespace,
    replicas: c.replicas,
    maxReplicas: c.maxReplicas,
    selfHostedPercent: String(c.percent),
    hostedUrl: c.hostedUrl,
    memoryRequest: k8sQuantity(c.memoryLimit),
    memoryLimitK8s: k8sQuantity(c.memoryLimit),
    hubModel: isHubModel(c.model),
    fetchScriptJson: JSON.stringify(fetchScript('env')),
    ...k8sVars(c),
  };
  const yaml = (rel: string) => renderTemplate(loadTemplate(rel), common, { name: `templates/${rel}`, escape: 'yaml' });
  const compose = yaml('docker-compose.yml');
  const prometheus = yaml('prometheus.yml');
  const nginxConf = renderNginxConf(deployNginxOptions(c));
  const hostedAuth = loadTemplate('nginx/hosted-auth.conf.template');
  const userData = userDataFrom(c, { compose, nginxConf, hostedAuth, prometheus });
  return [
    { path: 'docker-compose.yml', content: compose, mode: 0o644 },
    { path: 'nginx/nginx.conf', content: nginxConf, mode: 0o644 },
    { path: 'nginx/templates/hosted-auth.conf.template', content: hostedAuth, mode: 0o644 },
    { path: 'prometheus.yml', content: prometheus, mode: 0o644 },
    ...K8S_FILES.map((f) => ({ path: `k8s/${f}`, content: yaml(`k8s/${f}`), mode: 0o644 })),
    { path: 'user-data.sh', content: userData, mode: 0o755 },
    {
      path: '.env.example',
      content: '# Copy to .env on the instance (mode 0600); user-data.sh writes it from SSM.\nEMBEDCTL_HOSTED_API_KEY=\n',
      mode: 0o644,
    },
  ];
}
