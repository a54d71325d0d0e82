import { spawn } from 'node:child_process';
import { accessSync, constants, closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { configIdOf, listenOf } from '../core/render.js';
import { ExternalError } from '../errors.js';

/**
 * The only place that runs nginx. Instances are non-root: everything nginx writes lives under
 * the prefix (-p), and the config never says `daemon`, so we run it in the foreground
 * (`-g "daemon off;"`) and own the master's pid directly.
 */

const HINT_INSTALL = 'install nginx (Debian/Ubuntu: apt-get install nginx-light or nginx) or set EMBEDCTL_NGINX_BIN';

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** /usr/sbin/nginx, else the first nginx on PATH; EMBEDCTL_NGINX_BIN wins. Undefined when absent. */
export function nginxBinary(env: Record<string, string | undefined> = process.env): string | undefined {
  if (env.EMBEDCTL_NGINX_BIN) return executable(env.EMBEDCTL_NGINX_BIN) ? env.EMBEDCTL_NGINX_BIN : undefined;
  const candidates = ['/usr/sbin/nginx', ...(env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, 'nginx'))];
  return candidates.find(executable);
}

function requireBinary(env?: Record<string, string | undefined>): string {
  const bin = nginxBinary(env);
  if (!bin) throw new ExternalError('nginx', 'nginx is not installed', { hint: HINT_INSTALL });
  return bin;
}

/** nginx wants the prefix with a trailing slash; relative paths in the config resolve against it. */
function prefixArg(prefix: string): string {
  const abs = resolve(prefix);
  return abs.endsWith('/') ? abs : `${abs}/`;
}

/** The lines nginx itself printed that explain a failure ([emerg]/[alert]), without timestamps. */
function nginxMessage(output: string): string {
  const lines = output
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /\[(emerg|alert|crit|error)\]/.test(l) || /^nginx: \[/.test(l));
  const first = lines[0] ?? output.trim().split('\n').find((l) => l.trim() !== '') ?? 'no output';
  return first.replace(/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d /, '').replace(/^nginx: /, '');
}

/**
 * `nginx -t` against the config (it does not touch a running instance's pid file).
 * Throws ExternalError carrying nginx's own message.
 */
export async function testNginxConfig(confPath: string, prefix: string, env?: Record<string, string | undefined>): Promise<void> {
  const bin = requireBinary(env);
  mkdirSync(prefix, { recursive: true });
  // stdout is not a pipe here: Node's pipes are sockets, and nginx cannot open /dev/stdout
  // (a container's access_log) on a socket.
  const { execa } = await import('execa'); // loaded when nginx runs, not at CLI start
  const r = await execa(bin, ['-t', '-q', '-p', prefixArg(prefix), '-c', resolve(confPath)], {
    reject: false,
    stdio: ['ignore', 'ignore', 'pipe'],
    timeout: 30_000,
  }).catch((err: unknown) => ({ exitCode: -1, stderr: (err as Error).message }));
  if (r.exitCode !== 0) {
    throw new ExternalError('nginx', `config test failed for ${confPath}: ${nginxMessage(String(r.stderr ?? ''))}`, {
      hint: 'fix the value named above and render again',
    });
  }
}

export interface NginxInstance {
  pid: number;
  /** http://host:port of the listen address. */
  url: string;
  /** Graceful stop: QUIT, then TERM, then KILL if it will not go. */
  stop(): Promise<void>;
}

export interface StartNginxOptions {
  confPath: string;
  prefix: string;
  /** Survive this process (embedctl up --local); stderr then goes to <prefix>/nginx.stderr.log. */
  detached?: boolean;
  timeoutMs?: number;
  env?: Record<string, string | undefined>;
}

function listenUrl(confPath: string): string {
  const conf = readFileSync(confPath, 'utf8');
  const listen = listenOf(conf);
  if (!listen) throw new ExternalError('nginx', `${confPath} has no "# listen:" header; render it with embedctl`);
  return `http://${listen.replace(/^0\.0\.0\.0:/, '127.0.0.1:')}`;
}

async function healthConfigId(url: string): Promise<string | undefined> {
  try {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
    if (!res.ok) return undefined;
    // The header comes from the config itself; the body may be the split directory's file.
    const header = res.headers.get('x-embedctl-config');
    const body = (await res.json()) as { config?: string };
    return header ?? body.config;
  } catch {
    return undefined;
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function waitFor(cond: () => Promise<boolean> | boolean, timeoutMs: number, stepMs = 25): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

export async function startNginx(opts: StartNginxOptions): Promise<NginxInstance> {
  const bin = requireBinary(opts.env);
  const confPath = resolve(opts.confPath);
  const prefix = resolve(opts.prefix);
  mkdirSync(prefix, { recursive: true });
  await testNginxConfig(confPath, prefix, opts.env);
  const url = listenUrl(confPath);
  const wantId = configIdOf(readFileSync(confPath, 'utf8'));
  const args = ['-p', prefixArg(prefix), '-c', confPath, '-g', 'daemon off;'];
  const stderrLog = join(prefix, 'nginx.stderr.log');
  let output = '';
  let exited: { code: number | null } | undefined;
  let pid: number | undefined;
  if (opts.detached) {
    const fd = openSync(stderrLog, 'a');
    // Plain spawn: a detached child in its own session that nothing here waits on.
    const child = spawn(bin, args, { detached: true, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    pid = child.pid;
    child.on('exit', (code) => (exited = { code }));
    child.on('error', () => (exited = { code: null }));
    child.unref();
  } else {
    const { execa } = await import('execa'); // loaded when nginx runs, not at CLI start
    const child = execa(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], reject: false, cleanup: true });
    pid = child.pid;
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    child.on('exit', (code) => (exited = { code }));
    void child.catch(() => undefined);
  }
  if (pid === undefined) throw new ExternalError('nginx', `could not start ${bin}`, { hint: HINT_INSTALL });
  const masterPid = pid;
  const ready = await waitFor(async () => exited !== undefined || (await healthConfigId(url)) === wantId, opts.timeoutMs ?? 10_000);
  if (exited || !ready) {
    if (!exited) await stopPid(masterPid);
    const log = opts.detached && existsSync(stderrLog) ? readFileSync(stderrLog, 'utf8') : output;
    throw new ExternalError('nginx', exited ? `exited at start: ${nginxMessage(log)}` : `not answering ${url}/health after start`, {
      hint: `is ${url.replace('http://', '')} already in use? see ${opts.detached ? stderrLog : 'the message above'}`,
    });
  }
  return { pid: masterPid, url, stop: () => stopPid(masterPid) };
}

/** Stops an nginx master: QUIT lets workers finish in-flight requests; TERM and KILL if it lingers. */
export async function stopPid(pid: number, graceMs = 3000): Promise<void> {
  const signals: Array<[NodeJS.Signals, number]> = [
    ['SIGQUIT', graceMs],
    ['SIGTERM', 2000],
    ['SIGKILL', 1000],
  ];
  for (const [sig, wait] of signals) {
    if (!pidAlive(pid)) return;
    try {
      process.kill(pid, sig);
    } catch {
      return;
    }
    if (await waitFor(() => !pidAlive(pid) || isZombie(pid), wait)) return;
  }
}

function isZombie(pid: number): boolean {
  try {
    return /\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

export interface StopNginxOptions {
  confPath?: string;
  prefix: string;
  /** The master's pid; read from <prefix>/nginx.pid when absent. */
  pid?: number;
}

/** The master pid of the instance running from `prefix`, from its pid file. */
export function readNginxPid(prefix: string, pidFile = 'nginx.pid'): number | undefined {
  try {
    const pid = Number(readFileSync(join(resolve(prefix), pidFile), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export async function stopNginx(opts: StopNginxOptions): Promise<void> {
  const pid = opts.pid ?? readNginxPid(opts.prefix);
  if (pid !== undefined) await stopPid(pid);
}

export interface ReloadNginxOptions {
  confPath: string;
  prefix: string;
  timeoutMs?: number;
  env?: Record<string, string | undefined>;
}

/**
 * Tests the new config, signals a reload, then waits until /health reports the new config id:
 * only then are new workers answering (a bad config would leave the old workers in place).
 */
export async function reloadNginx(opts: ReloadNginxOptions): Promise<void> {
  const bin = requireBinary(opts.env);
  const confPath = resolve(opts.confPath);
  await testNginxConfig(confPath, opts.prefix, opts.env);
  const conf = readFileSync(confPath, 'utf8');
  const wantId = configIdOf(conf);
  const url = listenUrl(confPath);
  const { execa } = await import('execa'); // loaded when nginx runs, not at CLI start
  const r = await execa(bin, ['-s', 'reload', '-p', prefixArg(opts.prefix), '-c', confPath], { reject: false, all: true, timeout: 15_000 });
  if (r.exitCode !== 0) {
    throw new ExternalError('nginx', `reload failed: ${nginxMessage(String(r.all ?? ''))}`, {
      hint: `is nginx running from ${opts.prefix}? start it with embedctl up --local`,
    });
  }
  if (!wantId) return;
  const ok = await waitFor(async () => (await healthConfigId(url)) === wantId, opts.timeoutMs ?? 10_000, 50);
  if (!ok) {
    throw new ExternalError('nginx', `reload signalled but ${url}/health still reports the old config`, {
      hint: `check ${join(opts.prefix, 'nginx.stderr.log')} or the error log`,
    });
  }
}
