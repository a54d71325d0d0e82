import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ExternalError, Interrupted } from '../errors.js';
import { packageRoot } from '../util/paths.js';
import { pidAlive } from './nginx.js';

/**
 * Runtime processes on this machine: detached `node dist/runtime/main.js` on 127.0.0.1 with a
 * free port, started and stopped for `up --local`, the rehearsal's hosted stand-in and tests.
 */

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

export function runtimeEntryPath(): string {
  return join(packageRoot(), 'dist', 'runtime', 'main.js');
}

/** Whether `pid` is still the process we started (guards against a recycled pid). */
export function isOurs(pid: number, marker: string): boolean {
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

export async function stopRuntime(pid: number, entry: string): Promise<void> {
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
  return spawnRuntime({ ...o, logPath: join(resolve(o.cwd, '.embedctl'), 'local', `${o.name}.log`) });
}

/** SIGTERM (drains), SIGKILL after 10 s; only if the pid still runs the runtime script. */
export async function stopStandaloneRuntime(rt: Pick<LocalRuntime, 'pid'> & { entry?: string }): Promise<void> {
  await stopRuntime(rt.pid, rt.entry ?? runtimeEntryPath());
}

