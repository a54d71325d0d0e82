import { gzipSync } from 'node:zlib';
import { perDeploymentKeysParameter, tlsPlan, type GatewayDeploy } from './gateway-config.js';
import { DEPLOY_SPLIT_DIR, renderNginxConf, type NginxConfOptions, type SplitKey } from './nginx-conf.js';
import { renderTemplate, type TemplateVars } from './template.js';
import { K8S_FILES, k8sVars } from './render-k8s.js';
import { servingK8sFiles, servingVars, type ServingDeploy } from './render-serving.js';
import { loadTemplate } from './templates.js';
import { fetchOptimizeFor, type OptimizeChoice } from './render-model.js';
import { GATEWAY_KEY_FILES } from './gateway-key-files.js';

export { renderTemplate, TemplateError, escapers, type TemplateVars, type EscapeTarget } from './template.js';
export { loadTemplate } from './templates.js';
export * from './nginx-conf.js';

export interface DeployRenderInput extends GatewayDeploy, ServingDeploy {
  /** `models fetch --optimize` on the instance (src/core/render-model.ts); default auto. */
  optimize?: OptimizeChoice;
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
/**
 * The gateway's access log as a file on the host (also on stdout for docker logs). Only the first
 * runtime follows it (--gateway-log): one follower per instance, so the embedctl_gateway_* sums
 * over instances count each request once.
 */
export const GATEWAY_ACCESS_LOG = '/var/log/embedctl/gateway.access.log';
/** Amazon's VPC resolver, reachable from every instance: nginx on the host network uses it. */
export const VPC_RESOLVER = '169.254.169.253';
/** Where the official nginx image writes the rendered hosted-auth template (relative to /etc/nginx). */
export const DEPLOY_HOSTED_AUTH_INCLUDE = 'conf.d/hosted-auth.conf';
/** The gateway keys map user data writes from SSM (relative to /etc/nginx, mounted read-only). */
export const DEPLOY_GATEWAY_KEYS_INCLUDE = `keys/${GATEWAY_KEY_FILES.keys}`;
/** Named callers and their request limits, written beside it from the same parameter (gateway-key-files.ts). */
export const DEPLOY_GATEWAY_CALLERS_INCLUDE = `keys/${GATEWAY_KEY_FILES.callers}`;
export const DEPLOY_GATEWAY_LIMITS_INCLUDE = `keys/${GATEWAY_KEY_FILES.limits}`;
/**
 * Who the runtimes believe X-Embedctl-Caller from. Their ports are published on the host's
 * loopback only, so what reaches them is the gateway (through Docker's proxy, from the compose
 * bridge's gateway address, which Docker picks from these private ranges), the other runtimes and
 * Redis: the gateway's peers, never a client.
 */
export const DEPLOY_TRUSTED_PROXY = '127.0.0.1,::1,172.16.0.0/12,192.168.0.0/16,10.0.0.0/8';

/** "12g" -> "12Gi", "4096m" -> "4096Mi" (Kubernetes quantities). */
function k8sQuantity(size: string): string {
  const m = /^(\d+(?:\.\d+)?)([kmgKMG]?)$/.exec(size);
  if (!m) throw new Error(`not a size: ${size}`);
  const unit = { '': '', k: 'Ki', m: 'Mi', g: 'Gi' }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return `${m[1]}${unit}`;
}

const isHubModel = (model: string) => model.includes('/');

/** node -e script that fetches the hub model named by its first argument (or EMBEDCTL_MODEL). */
/** node -e script (run in the runtime image by user data) turning the keys text on stdin into /keys/*.conf. */
function gatewayKeysScript(): string {
  return `const {main}=await import('/app/dist/src/core/gateway-key-files.js');process.exitCode=await main('/keys');`;
}

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function fetchScript(source: 'argv' | 'env'): string {
  const model = source === 'argv' ? 'process.argv[1]' : 'process.env.EMBEDCTL_MODEL';
  // argv: the model, then the fetch flags (--optimize ...) user data passes after it.
  const args = source === 'argv' ? '...process.argv.slice(1)' : model;
  return `const {main}=await import('/app/dist/src/cli.js');process.exitCode=await main(['node','embedctl','models','fetch',${args}]);`;
}

function tlsOf(c: DeployRenderInput): NginxConfOptions['tls'] {
  const t = tlsPlan(c);
  return t.mode === 'off' ? undefined : { certPath: t.certPath, keyPath: t.keyPath, domain: t.domain, port: t.port, hsts: t.hsts };
}

function letsEncryptVars(c: DeployRenderInput): TemplateVars | false {
  const t = tlsPlan(c);
  return t.mode === 'letsencrypt' ? { email: t.email!, domain: t.domain } : false;
}

/** What the gateway container mounts read-only for TLS (certbot's tree holds symlinks into archive/). */
function tlsMounts(c: DeployRenderInput): TemplateVars[] {
  const t = tlsPlan(c);
  if (t.mode === 'off') return [];
  return t.mode === 'letsencrypt' ? [{ path: '/etc/letsencrypt' }] : [{ path: t.certPath }, { path: t.keyPath }];
}

export function deployNginxOptions(c: DeployRenderInput): NginxConfOptions {
  return {
    listen: { host: '0.0.0.0', port: c.gatewayPort },
    selfHosted: Array.from({ length: c.replicas }, (_, i) => `127.0.0.1:${RUNTIME_HOST_PORT_BASE + i + 1}`),
    hostedUrl: c.hostedUrl,
    selfHostedPercent: c.percent,
    splitKey: c.splitKey,
    sameModel: Boolean(c.sameModel),
    // Reachable from outside: every caller needs a gateway key, so it is no open relay.
    clientAuth: {
      keysInclude: DEPLOY_GATEWAY_KEYS_INCLUDE,
      required: true,
      // Always present (empty when the parameter names nobody): the parameter may gain names
      // later, and user data writes all three files whatever it holds.
      callers: { httpInclude: DEPLOY_GATEWAY_CALLERS_INCLUDE, locationInclude: DEPLOY_GATEWAY_LIMITS_INCLUDE },
    },
    tls: tlsOf(c),
    hostedAuthInclude: DEPLOY_HOSTED_AUTH_INCLUDE,
    resolvers: [VPC_RESOLVER],
    caCertPath: '/etc/ssl/certs/ca-certificates.crt',
    pidPath: 'nginx.pid',
    errorLog: 'stderr',
    accessLog: '/dev/stdout',
    accessLogFile: GATEWAY_ACCESS_LOG,
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
      // provision always names one; render's default is that of provision's default --name.
      gatewayKeysParameter: c.gatewayKeysParameter || perDeploymentKeysParameter('main'),
      letsencrypt: letsEncryptVars(c),
      hfTokenParameter: c.hfTokenParameter,
      gatewayPort: c.gatewayPort,
      fetchScriptShell: shellQuote(fetchScript('argv')),
      gatewayKeysScriptShell: shellQuote(gatewayKeysScript()),
      composeProfiles: c.prometheus ? '--profile monitoring ' : '',
      fetchOptimize: fetchOptimizeFor(c),
      composeGzip: packed(body(f.compose)),
      // The rendered file, packed, without its comments except the header embedctl reads on the
      // instance (config id, listen, split directory, rendered share): the 100-bucket split made
      // the comments' bytes count against the 16 KB.
      nginxConfGzip: packed(keepHeaderComments(f.nginxConf)),
      hostedAuthTemplate: body(f.hostedAuth),
      prometheusYml: body(f.prometheus),
    },
    { name: 'templates/user-data.sh', escape: 'shell' },
  );
}

/** Drops full-line comments after the leading comment block (the header stays whole). */
function keepHeaderComments(conf: string): string {
  const lines = conf.split('\n');
  const header = lines.findIndex((l) => !l.startsWith('#'));
  return [...lines.slice(0, header), ...lines.slice(header).filter((l) => !/^\s*#/.test(l))].join('\n');
}

/** gzip + base64 in 76-column lines, for a `base64 -d | gunzip` heredoc in user data. */
function packed(text: string): string {
  return gzipSync(Buffer.from(text), { level: 9 }).toString('base64').replace(/.{76}/g, '$&\n').trimEnd();
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
  const runtimes = Array.from({ length: c.replicas }, (_, i) => ({
    name: `runtime-${i + 1}`,
    hostPort: RUNTIME_HOST_PORT_BASE + i + 1,
    gatewayLog: i === 0 ? { path: GATEWAY_ACCESS_LOG } : false,
  }));
  const gpus = c.gpusPerReplica > 0 ? { count: c.gpusPerReplica } : false;
  const common: TemplateVars = {
    runtimes,
    trustedProxy: DEPLOY_TRUSTED_PROXY,
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
    fetchOptimize: fetchOptimizeFor(c),
    tlsMounts: tlsMounts(c),
    gatewaySplitDir: DEPLOY_SPLIT_DIR,
    ...k8sVars(c),
    ...servingVars(c),
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
    ...[...K8S_FILES, ...servingK8sFiles(c)].map((f) => ({ path: `k8s/${f}`, content: yaml(`k8s/${f}`), mode: 0o644 })),
    { path: 'user-data.sh', content: userData, mode: 0o755 },
    {
      path: '.env.example',
      content: '# Copy to .env on the instance (mode 0600); user-data.sh writes it from SSM.\nEMBEDCTL_HOSTED_API_KEY=\n',
      mode: 0o644,
    },
  ];
}
