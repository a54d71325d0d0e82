import { spawn } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { renderHostedAuthSnippet, renderNginxConf, parseHostedUrl, type NginxConfOptions, type SplitKey } from '../core/render.js';
import { ExternalError, Interrupted, UsageError } from '../errors.js';
import { readVersionedJson, withLock, writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import { packageRoot } from '../util/paths.js';
import { pidAlive, startNginx, stopPid } from './nginx.js';

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

export interface LocalRuntime {
  /** "runtime-1", ... or a standalone runtime's name. */
  name?: string;
  /** The script it runs (what `down` checks a pid against). */
  entry?: string;
  pid: number;
  port: number;
  url: string;
  log: string;
}

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

export function runtimeEntryPath(): string {
  return join(packageRoot(), 'dist', 'runtime', 'main.js');
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

/** Whether `pid` is still the process we started (guards against a recycled pid). */
function isOurs(pid: number, marker: string): boolean {
  if (!pidAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').includes(marker);
  } catch {
    // No /proc (macOS): trust the pid, which is what `kill` would do.
    return true;
  }
}

async function waitUntil(cond: () => Promise<boolean> | boolean, timeoutMs: number, stepMs = 50, signal?: AbortSignal): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (signal?.aborted) throw new Interrupted('interrupted while starting the local stack; what had started was stopped');
    if (await cond()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

function events(logPath: string): Array<Record<string, unknown>> {
  let text = '';
  try {
    text = readFileSync(logPath, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').flatMap((line) => {
    try {
      const e = JSON.parse(line) as unknown;
      return e && typeof e === 'object' ? [e as Record<string, unknown>] : [];
    } catch {
      return [];
    }
  });
}

async function ready(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/ready`, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

async function stopRuntime(pid: number, entry: string): Promise<void> {
  if (!isOurs(pid, entry)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  // SIGTERM drains admitted requests; a stuck one is killed after the grace period.
  if (await waitUntil(() => !pidAlive(pid), 10_000)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
  await waitUntil(() => !pidAlive(pid), 2000);
}

export interface SpawnRuntimeOptions {
  /** Shown in progress lines and errors, e.g. "runtime-1" or "hosted". */
  name: string;
  model: string;
  /** Environment for the runtime (EMBEDCTL_HOSTED_API_KEY is always removed). */
  env: Record<string, string | undefined>;
  logPath: string;
  entry?: string;
  args?: string[];
  readyTimeoutMs?: number;
  signal?: AbortSignal;
  onProgress?: (msg: string) => void;
}

/**
 * One detached runtime on 127.0.0.1 with a free port: waits for its "listening" event (read
 * from its log) and for /ready. On failure it is stopped and the error carries its own message.
 */
export async function spawnRuntime(o: SpawnRuntimeOptions): Promise<LocalRuntime> {
  const entry = o.entry ?? runtimeEntryPath();
  if (!existsSync(entry)) {
    throw new ExternalError('runtime', `${entry} is missing`, { hint: 'build first: npm run build (or npx tsc -p tsconfig.json)' });
  }
  const env = { ...o.env };
  delete env.EMBEDCTL_HOSTED_API_KEY;
  mkdirSync(dirname(o.logPath), { recursive: true });
  const fd = openSync(o.logPath, 'w');
  const child = spawn(process.execPath, [entry, '--model', o.model, '--host', '127.0.0.1', '--port', '0', ...(o.args ?? [])], {
    cwd: packageRoot(),
    env: env as NodeJS.ProcessEnv,
    detached: true,
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  let exited: number | null | undefined;
  child.on('exit', (code) => (exited = code));
  child.on('error', () => (exited = -1));
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new ExternalError('runtime', `could not start ${process.execPath} ${entry}`);
  const timeout = o.readyTimeoutMs ?? 120_000;
  const fail = async (what: string) => {
    await stopRuntime(pid, entry);
    const fatal = events(o.logPath).find((ev) => ev.event === 'fatal' || ev.event === 'usage_error');
    throw new ExternalError('runtime', `${o.name} ${what}${fatal ? `: ${String(fatal.error)}` : ''}`, { hint: `see ${o.logPath}` });
  };
  const stopOnInterrupt = async (err: unknown) => {
    await stopRuntime(pid, entry);
    throw err;
  };
  let port: number | undefined;
  const listening = await waitUntil(
    () => {
      const e = events(o.logPath).find((ev) => ev.event === 'listening');
      if (e && typeof e.port === 'number') port = e.port;
      return port !== undefined || exited !== undefined;
    },
    timeout,
    50,
    o.signal,
  ).catch(stopOnInterrupt);
  if (!listening || port === undefined) return fail(exited !== undefined ? `exited (code ${exited}) before listening` : 'did not start listening in time');
  const url = `http://127.0.0.1:${port}`;
  o.onProgress?.(`${o.name}: listening on ${url} (pid ${pid}), loading ${o.model}`);
  const isReady = await waitUntil(async () => exited !== undefined || (await ready(url)), timeout, 100, o.signal).catch(stopOnInterrupt);
  if (exited !== undefined) return fail(`exited (code ${exited}) while loading the model`);
  if (!isReady) return fail(`not ready after ${Math.round(timeout / 1000)} s`);
  return { name: o.name, pid, port, url, log: o.logPath, entry };
}

export interface StandaloneRuntimeOptions extends Omit<SpawnRuntimeOptions, 'logPath'> {
  /** Project directory: the log goes to <cwd>/.embedctl/local/<name>.log. */
  cwd: string;
}

/** A runtime outside the gateway (rehearse's hosted stand-in, or self-hosted without nginx). */
export async function startStandaloneRuntime(o: StandaloneRuntimeOptions): Promise<LocalRuntime> {
  return spawnRuntime({ ...o, logPath: join(localPaths(o.cwd).dir, 'local', `${o.name}.log`) });
}

/** SIGTERM (drains), SIGKILL after 10 s; only if the pid still runs the runtime script. */
export async function stopStandaloneRuntime(rt: Pick<LocalRuntime, 'pid'> & { entry?: string }): Promise<void> {
  await stopRuntime(rt.pid, rt.entry ?? runtimeEntryPath());
}

/** The gateway's render options for a local stack (what `rollout --driver nginx` re-renders with). */
export function localNginxOptions(
  paths: LocalPaths,
  o: { port: number; selfHosted: string[]; hostedUrl: string; splitKey: SplitKey; hostedAuth: boolean; resolvers: string[] },
): Omit<NginxConfOptions, 'selfHostedPercent'> {
  return {
    listen: { host: '127.0.0.1', port: o.port },
    selfHosted: o.selfHosted,
    hostedUrl: o.hostedUrl,
    splitKey: o.splitKey,
    hostedAuthInclude: o.hostedAuth ? paths.hostedAuth : undefined,
    resolvers: o.resolvers,
    pidPath: 'nginx.pid',
    errorLog: 'error.log',
    accessLog: 'access.log',
    workerProcesses: 2,
  };
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
              args: o.runtimeArgs,
              readyTimeoutMs: o.readyTimeoutMs,
              signal: o.signal,
              onProgress: o.onProgress,
            }),
          );
        }
        if (o.hostedApiKey) {
          mkdirSync(paths.secretsDir, { recursive: true, mode: 0o700 });
          chmodSync(paths.secretsDir, 0o700);
          let snippet: string;
          try {
            snippet = renderHostedAuthSnippet(o.hostedApiKey);
          } catch (err) {
            throw new UsageError((err as Error).message, { field: 'EMBEDCTL_HOSTED_API_KEY' });
          }
          await writeFileAtomic(paths.hostedAuth, snippet);
          chmodSync(paths.hostedAuth, 0o600);
        }
        const port = o.port || (await freeLoopbackPort());
        const nginxOptions = localNginxOptions(paths, {
          port,
          selfHosted: started.map((r) => `127.0.0.1:${r.port}`),
          hostedUrl: o.hostedUrl,
          splitKey: o.splitKey ?? 'auto',
          hostedAuth: Boolean(o.hostedApiKey),
          resolvers: resolvers.length > 0 ? resolvers : ['127.0.0.1'],
        });
        await writeFileAtomic(paths.confPath, renderNginxConf({ ...nginxOptions, selfHostedPercent: o.percent }));
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
          runtimeEntry: entry,
          nginx: { pid: nginx.pid, port, url: nginx.url, confPath: paths.confPath, prefix: paths.prefix },
          runtimes: started,
          backends: started.map((r) => r.url),
        };
        await writeJsonAtomic(paths.state, state);
        await writeJsonAtomic(paths.deploy, {
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
        const deploy = JSON.parse(readFileSync(paths.deploy, 'utf8')) as { nginx?: { confPath?: string } };
        if (deploy.nginx?.confPath === paths.confPath) await rm(paths.deploy, { force: true });
      } catch {
        /* not ours or gone */
      }
      return { stopped };
    },
    'local stack',
    'down --local',
  );
}
