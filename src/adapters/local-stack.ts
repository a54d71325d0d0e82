import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { deployFile } from '../contracts/deploy.js';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { renderHostedAuthSnippet, renderNginxConf, parseHostedUrl, workersRunAsRoot, type NginxConfOptions, type SplitKey } from '../core/render.js';
import { formatGatewayKeys, renderGatewayKeysMap, type GatewayKey } from '../core/gateway-keys.js';
import { ExternalError, UsageError } from '../errors.js';
import { readVersionedJson, withLock, writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import { startNginx, stopPid } from './nginx.js';
import { writeSplit } from './traffic/split-dir.js';
import { isOurs, runtimeEntryPath, spawnRuntime, stopRuntime, type LocalRuntime } from './local-runtime.js';

/** The gateway's JSON access log, relative to its prefix. */
const LOCAL_ACCESS_LOG = 'access.log';

export {
  runtimeEntryPath,
  spawnRuntime,
  startStandaloneRuntime,
  stopStandaloneRuntime,
  type LocalRuntime,
  type SpawnRuntimeOptions,
  type StandaloneRuntimeOptions,
} from './local-runtime.js';

/**
 * `embedctl up --local`: N runtimes (node dist/runtime/main.js on 127.0.0.1, port 0) and a
 * non-root nginx in front of them, all detached so they outlive the command; `down --local`
 * stops them. Everything lives under <project>/.embedctl/:
 *   local.json                 pids, ports, URLs (atomic writes, lock)
 *   deploy.json                the gateway's render options, for `rollout --driver nginx`
 *   local/nginx/               nginx prefix: nginx.conf, logs, temp dirs
 *   local/runtime-N.log        each runtime's JSON event log
 *   local-secrets/hosted-auth.conf  the hosted API key (0600, outside the rendered directory)
 */

export const LOCAL_STATE_VERSION = 1;

export interface LocalStackState {
  version: 1;
  createdAt: string;
  /** The gateway: what clients call. */
  url: string;
  model: string;
  hostedUrl: string;
  percent: number;
  splitKey: SplitKey;
  hostedAuth: 'injected' | 'passthrough';
  /** Whether self-hosted failures fall back to hosted (the deployment declared the same model). */
  sameModel?: boolean;
  /**
   * The gateway keys file (role key per line, 0600): its operator key reaches either side with
   * X-Embedctl-Route. `required`: callers without a key get 401.
   */
  gatewayKeys?: { file: string; required: boolean };
  /** The runtime script; `down` only signals processes whose command line still names it. */
  runtimeEntry: string;
  nginx: { pid: number; port: number; url: string; confPath: string; prefix: string };
  runtimes: LocalRuntime[];
  /** Runtime URLs, the shape `status` reads. */
  backends: string[];
}

export interface LocalPaths {
  dir: string;
  state: string;
  deploy: string;
  prefix: string;
  confPath: string;
  secretsDir: string;
  hostedAuth: string;
  gatewayKeys: string;
  gatewayKeysMap: string;
  runtimeLog(i: number): string;
}

export function localPaths(cwd: string): LocalPaths {
  const dir = resolve(cwd, '.embedctl');
  const prefix = join(dir, 'local', 'nginx');
  return {
    dir,
    state: join(dir, 'local.json'),
    deploy: join(dir, 'deploy.json'),
    prefix,
    confPath: join(prefix, 'nginx.conf'),
    secretsDir: join(dir, 'local-secrets'),
    hostedAuth: join(dir, 'local-secrets', 'hosted-auth.conf'),
    gatewayKeys: join(dir, 'local-secrets', 'gateway-keys'),
    gatewayKeysMap: join(dir, 'local-secrets', 'gateway-keys.conf'),
    runtimeLog: (i) => join(dir, 'local', `runtime-${i + 1}.log`),
  };
}

export interface StartLocalStackOptions {
  cwd: string;
  model: string;
  replicas: number;
  hostedUrl: string;
  percent: number;
  splitKey?: SplitKey;
  /** Both sides serve the same model: self-hosted failures then fall back to hosted. */
  sameModel?: boolean;
  /** Gateway keys (role key per line); default: a fresh operator and client key. */
  gatewayKeys?: GatewayKey[];
  /** Callers without a gateway key get 401 (default: they are clients; loopback only). */
  requireClientKey?: boolean;
  /** Breaker window of each replica (nginx fail_timeout), e.g. "5s". */
  failTimeout?: string;
  /** Gateway port on 127.0.0.1; 0 picks a free one. */
  port: number;
  /** The hosted API key; written only to the 0600 snippet. Absent: clients' own header passes through. */
  hostedApiKey?: string;
  /** Environment for the runtimes (the hosted key is never passed on). */
  env: Record<string, string | undefined>;
  /** Default: <package>/dist/runtime/main.js. */
  runtimeEntry?: string;
  /** Extra runtime flags, e.g. ['--max-queue', '64']. */
  runtimeArgs?: string[];
  /** DNS servers for a hosted hostname (default: /etc/resolv.conf's IPv4 nameservers). */
  resolvers?: string[];
  readyTimeoutMs?: number;
  onProgress?: (msg: string) => void;
  /** Ctrl-C: stop waiting, stop what was started, throw Interrupted. */
  signal?: AbortSignal;
}

/** IPv4 nameservers of /etc/resolv.conf (nginx's resolver cannot read the file itself). */
export function systemResolvers(path = '/etc/resolv.conf'): string[] {
  try {
    return [...readFileSync(path, 'utf8').matchAll(/^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/gm)].map((m) => m[1]!);
  } catch {
    return [];
  }
}

export async function freeLoopbackPort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolvePort(port));
    });
  });
}

/** The gateway's render options for a local stack (what `rollout --driver nginx` re-renders with). */
export function localNginxOptions(
  paths: LocalPaths,
  o: {
    port: number;
    selfHosted: string[];
    hostedUrl: string;
    splitKey: SplitKey;
    hostedAuth: boolean;
    resolvers: string[];
    sameModel?: boolean;
    requireClientKey?: boolean;
    failTimeout?: string;
  },
): Omit<NginxConfOptions, 'selfHostedPercent'> {
  return {
    listen: { host: '127.0.0.1', port: o.port },
    selfHosted: o.selfHosted,
    hostedUrl: o.hostedUrl,
    splitKey: o.splitKey,
    sameModel: Boolean(o.sameModel),
    clientAuth: { keysInclude: paths.gatewayKeysMap, required: Boolean(o.requireClientKey) },
    // Rollout moves the split by writing here (no reload): beside the config, as on an instance.
    splitDir: join(paths.prefix, 'split'),
    ...(o.failTimeout ? { failTimeout: o.failTimeout } : {}),
    hostedAuthInclude: o.hostedAuth ? paths.hostedAuth : undefined,
    resolvers: o.resolvers,
    pidPath: 'nginx.pid',
    errorLog: 'error.log',
    accessLog: LOCAL_ACCESS_LOG,
    workerProcesses: 2,
    // Started as root, nginx would run its workers as nobody, who cannot reach a stack under
    // /root or a 0700 temp dir (the split, request-body temp files); the runtimes beside it run
    // as root already.
    ...(process.getuid?.() === 0 ? { workerUser: 'root' } : {}),
  };
}

/** What `up --local` tells the user about the gateway keys and the fallback. */
export function gatewayKeysLine(s: LocalStackState): string {
  const keys = s.gatewayKeys ? `Gateway keys: ${s.gatewayKeys.file} (the operator key reaches either side with X-Embedctl-Route)` : '';
  const fallback = s.sameModel ? 'self-hosted failures fall back to hosted (--same-model)' : 'no fallback to hosted (models differ; declare --same-model if they do not)';
  return [keys, `Fallback: ${fallback}`].filter(Boolean).join('\n');
}

/** A random gateway key: 24 bytes, base64url, recognisable by its prefix. */
export function newGatewayKey(): string {
  return `ek_${randomBytes(24).toString('base64url')}`;
}

async function writeSecret(path: string, text: string): Promise<void> {
  await writeFileAtomic(path, text, { mode: 0o600 });
}

export async function readLocalStack(cwd: string): Promise<LocalStackState | undefined> {
  return readVersionedJson<LocalStackState>(localPaths(cwd).state, LOCAL_STATE_VERSION, 'local stack');
}

/** Whether anything a state file lists is still running. */
export function localStackAlive(s: LocalStackState): boolean {
  return isOurs(s.nginx.pid, s.nginx.prefix) || s.runtimes.some((r) => isOurs(r.pid, s.runtimeEntry));
}

export async function startLocalStack(o: StartLocalStackOptions): Promise<LocalStackState> {
  const paths = localPaths(o.cwd);
  const entry = o.runtimeEntry ?? runtimeEntryPath();
  if (!existsSync(entry)) {
    throw new ExternalError('runtime', `${entry} is missing`, { hint: 'build first: npm run build (or npx tsc -p tsconfig.json)' });
  }
  const hosted = parseHostedUrl(o.hostedUrl);
  const resolvers = o.resolvers ?? systemResolvers();
  if (hosted.dynamic && resolvers.length === 0) {
    throw new UsageError(`cannot re-resolve ${hosted.host}: no IPv4 nameserver in /etc/resolv.conf`, { field: '--hosted-url', hint: 'use an IP address in the URL' });
  }
  return withLock(
    paths.state,
    async () => {
      const existing = await readLocalStack(o.cwd);
      if (existing && localStackAlive(existing)) {
        throw new UsageError(`a local stack is already running at ${existing.url} (nginx pid ${existing.nginx.pid})`, {
          hint: 'stop it first: embedctl down --local',
        });
      }
      mkdirSync(paths.prefix, { recursive: true });
      mkdirSync(join(paths.dir, 'local'), { recursive: true });
      const started: LocalRuntime[] = [];
      let nginxPid: number | undefined;
      try {
        // Sequential: on 2-core machines parallel model loads only slow each other down.
        for (let i = 0; i < o.replicas; i++) {
          started.push(
            await spawnRuntime({
              name: `runtime-${i + 1}`,
              model: o.model,
              env: o.env,
              logPath: paths.runtimeLog(i),
              entry,
              // The first runtime follows the gateway's access log (split share and fallbacks in
              // its /metrics), as runtime-1 does on an instance (templates/docker-compose.yml).
              args: [...(o.runtimeArgs ?? []), ...(i === 0 ? ['--gateway-log', join(paths.prefix, LOCAL_ACCESS_LOG)] : [])],
              readyTimeoutMs: o.readyTimeoutMs,
              signal: o.signal,
              onProgress: o.onProgress,
            }),
          );
        }
        mkdirSync(paths.secretsDir, { recursive: true, mode: 0o700 });
        chmodSync(paths.secretsDir, 0o700);
        const keys = o.gatewayKeys ?? [
          { role: 'operator' as const, key: newGatewayKey() },
          { role: 'client' as const, key: newGatewayKey() },
        ];
        await writeSecret(paths.gatewayKeys, formatGatewayKeys(keys));
        await writeSecret(paths.gatewayKeysMap, renderGatewayKeysMap(keys));
        if (o.hostedApiKey) {
          let snippet: string;
          try {
            snippet = renderHostedAuthSnippet(o.hostedApiKey);
          } catch (err) {
            throw new UsageError((err as Error).message, { field: 'EMBEDCTL_HOSTED_API_KEY' });
          }
          await writeSecret(paths.hostedAuth, snippet);
        }
        const port = o.port || (await freeLoopbackPort());
        const nginxOptions = localNginxOptions(paths, {
          port,
          selfHosted: started.map((r) => `127.0.0.1:${r.port}`),
          hostedUrl: o.hostedUrl,
          splitKey: o.splitKey ?? 'auto',
          hostedAuth: Boolean(o.hostedApiKey),
          resolvers: resolvers.length > 0 ? resolvers : ['127.0.0.1'],
          sameModel: o.sameModel,
          requireClientKey: o.requireClientKey,
          failTimeout: o.failTimeout,
        });
        const conf = renderNginxConf({ ...nginxOptions, selfHostedPercent: o.percent });
        // The split directory of an earlier stack would override the share asked for now.
        await writeSplit(nginxOptions.splitDir!, o.percent, undefined, { workersAsRoot: workersRunAsRoot(conf) });
        await writeFileAtomic(paths.confPath, conf);
        const nginx = await startNginx({ confPath: paths.confPath, prefix: paths.prefix, detached: true });
        nginxPid = nginx.pid;
        o.onProgress?.(`nginx: listening on ${nginx.url} (pid ${nginx.pid}), ${o.percent}% self-hosted`);
        const state: LocalStackState = {
          version: 1,
          createdAt: new Date().toISOString(),
          url: nginx.url,
          model: o.model,
          hostedUrl: o.hostedUrl,
          percent: o.percent,
          splitKey: o.splitKey ?? 'auto',
          hostedAuth: o.hostedApiKey ? 'injected' : 'passthrough',
          sameModel: Boolean(o.sameModel),
          gatewayKeys: { file: paths.gatewayKeys, required: Boolean(o.requireClientKey) },
          runtimeEntry: entry,
          nginx: { pid: nginx.pid, port, url: nginx.url, confPath: paths.confPath, prefix: paths.prefix },
          runtimes: started,
          backends: started.map((r) => r.url),
        };
        await writeJsonAtomic(paths.state, state);
        await deployFile.write(paths.deploy, {
          version: 1,
          source: 'embedctl up --local',
          nginx: { confPath: paths.confPath, prefix: paths.prefix, url: nginx.url, model: o.model, options: nginxOptions },
        });
        return state;
      } catch (err) {
        if (nginxPid !== undefined) await stopPid(nginxPid);
        await Promise.all(started.map((r) => stopRuntime(r.pid, entry)));
        throw err;
      }
    },
    'local stack',
    'up --local',
  );
}

export interface StopResult {
  stopped: Array<{ what: string; pid: number; wasRunning: boolean }>;
}

/** Stops what local.json lists (only processes that are still ours), then removes the state. */
export async function stopLocalStack(cwd: string, onProgress?: (msg: string) => void): Promise<StopResult | undefined> {
  const paths = localPaths(cwd);
  return withLock(
    paths.state,
    async () => {
      const s = await readLocalStack(cwd);
      if (!s) return undefined;
      const stopped: StopResult['stopped'] = [];
      // The gateway first, so no request is sent to a runtime that is going away.
      const nginxRunning = isOurs(s.nginx.pid, s.nginx.prefix);
      if (nginxRunning) await stopPid(s.nginx.pid);
      stopped.push({ what: 'nginx', pid: s.nginx.pid, wasRunning: nginxRunning });
      onProgress?.(`nginx (pid ${s.nginx.pid}): ${nginxRunning ? 'stopped' : 'was not running'}`);
      await Promise.all(
        s.runtimes.map(async (r, i) => {
          const running = isOurs(r.pid, s.runtimeEntry);
          if (running) await stopRuntime(r.pid, s.runtimeEntry);
          stopped.push({ what: `runtime-${i + 1}`, pid: r.pid, wasRunning: running });
          onProgress?.(`runtime-${i + 1} (pid ${r.pid}): ${running ? 'stopped' : 'was not running'}`);
        }),
      );
      await rm(paths.state, { force: true });
      await rm(paths.secretsDir, { recursive: true, force: true });
      try {
        if (deployFile.readSync(paths.deploy)?.nginx?.confPath === paths.confPath) await rm(paths.deploy, { force: true });
      } catch {
        /* not ours or gone */
      }
      return { stopped };
    },
    'local stack',
    'down --local',
  );
}
