import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterEach } from 'vitest';
import { nginxBinary } from '../../src/adapters/nginx.js';

/**
 * Small embeddings stand-ins on 127.0.0.1 for gateway tests: each answers POST /v1/embeddings
 * in the OpenAI shape, names itself in X-Standin, and remembers what it was sent.
 */
export interface Received {
  path: string;
  host?: string;
  authorization?: string;
  tenant?: string;
  servername?: string;
  body: string;
}

export interface Standin {
  name: string;
  port: number;
  url: string;
  received: Received[];
  /** Drops every open connection and stops listening: what nginx sees when a process dies. */
  kill(): Promise<void>;
  stop(): Promise<void>;
  /** Answer with this status from now on (200 recovers). */
  setStatus(status: number): void;
}

export interface StandinOptions {
  delayMs?: number;
  tls?: { key: string; cert: string };
  /** Answer with this status instead of 200 (e.g. 503 for an overloaded replica). */
  status?: number;
  /** Dimensions of the returned vector (a large answer exercises nginx's response buffering). */
  dimensions?: number;
}

export async function startStandin(name: string, o: StandinOptions = {}): Promise<Standin> {
  const received: Received[] = [];
  let currentStatus = o.status ?? 200;
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      received.push({
        path: req.url ?? '',
        host: req.headers.host,
        authorization: req.headers.authorization,
        tenant: req.headers['x-tenant-id'] as string | undefined,
        servername: (req.socket as TLSSocket).servername || undefined,
        body,
      });
      const reply = () => {
        let input: unknown = null;
        try {
          input = (JSON.parse(body) as { input?: unknown }).input ?? null;
        } catch {
          /* echo null */
        }
        const status = currentStatus;
        res.writeHead(status, { 'content-type': 'application/json', 'x-standin': name });
        res.end(
          JSON.stringify(
            status === 200
              ? { object: 'list', data: [{ object: 'embedding', index: 0, embedding: o.dimensions ? Array.from({ length: o.dimensions }, (_, i) => Math.sin(i)) : [0.6, 0.8] }], model: name, usage: { prompt_tokens: 1, total_tokens: 1 }, echo: input }
              : { error: { message: `${name} answered ${status}` } },
          ),
        );
      };
      if (o.delayMs) setTimeout(reply, o.delayMs);
      else reply();
    });
  };
  const server: Server = o.tls ? createHttpsServer({ key: o.tls.key, cert: o.tls.cert }, handler) : createHttpServer(handler);
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  let closed = false;
  const close = async (hard: boolean) => {
    if (closed) return;
    closed = true;
    const done = new Promise<void>((resolve) => server.close(() => resolve()));
    if (hard) server.closeAllConnections();
    else server.closeIdleConnections();
    setTimeout(() => server.closeAllConnections(), 200).unref();
    await done;
  };
  return {
    name,
    port,
    url: `${o.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    received,
    kill: () => close(true),
    stop: () => close(false),
    setStatus: (status) => {
      currentStatus = status;
    },
  };
}

export interface Answer {
  status: number;
  backend: string | null;
  fallback: string | null;
  standin: string | null;
  body: string;
}

/** POST /v1/embeddings through the gateway. */
export async function embed(base: string, headers: Record<string, string> = {}, input = 'hello'): Promise<Answer> {
  const res = await fetch(`${base}/v1/embeddings`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    // No model name: a runtime then answers with the one it serves (a wrong name is a 404).
    body: JSON.stringify({ input }),
    signal: AbortSignal.timeout(15_000),
  });
  return {
    status: res.status,
    backend: res.headers.get('x-embedctl-backend'),
    fallback: res.headers.get('x-embedctl-fallback'),
    standin: res.headers.get('x-standin'),
    body: await res.text(),
  };
}

/** Runs `total` tasks with at most `concurrency` in flight; results in task order. */
export async function pool<T>(total: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const out = new Array<T>(total);
  let next = 0;
  const worker = async () => {
    while (next < total) {
      const i = next++;
      out[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
  return out;
}

/** A free loopback port (nginx cannot report the one it picked for port 0). */
export async function freePort(): Promise<number> {
  const s = createHttpServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/**
 * Tests with real nginx skip only on a developer machine without it; in CI (CI set) a missing
 * nginx must fail, so the gateway is never silently untested.
 */
export function nginxOrSkip(): { bin: string | undefined; skip: boolean } {
  const bin = nginxBinary();
  if (!bin && process.env.CI) throw new Error('nginx is required in CI (apt-get install nginx-light); none found');
  return { bin, skip: !bin };
}

export function tempDir(prefix: string): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  // Searchable by others: nginx started as root reads the split directory as `nobody`.
  chmodSync(dir, 0o755);
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function writeFile(path: string, text: string, mode?: number): string {
  writeFileSync(path, text, mode === undefined ? undefined : { mode });
  return path;
}

export interface TestGateway {
  nginx: import('../../src/adapters/nginx.js').NginxInstance;
  confPath: string;
  prefix: string;
  /** Re-renders the config in place (reload it to apply). Its split directory is <prefix>/split. */
  write(o: Omit<import('../../src/core/render.js').NginxConfOptions, 'listen'>): void;
  stop(): Promise<void>;
}

/** Renders a config into a fresh non-root prefix under `dir` and starts nginx on a free loopback port. */
export async function startGateway(dir: string, o: Omit<import('../../src/core/render.js').NginxConfOptions, 'listen'>): Promise<TestGateway> {
  const { renderNginxConf } = await import('../../src/core/render.js');
  const { startNginx } = await import('../../src/adapters/nginx.js');
  const prefix = mkdtempSync(join(dir, 'gw-'));
  chmodSync(prefix, 0o755); // nginx's workers (nobody, under root) read the split directory in it
  const port = await freePort();
  const confPath = join(prefix, 'nginx.conf');
  const write = (o2: typeof o) =>
    writeFile(confPath, renderNginxConf({ workerProcesses: 1, errorLog: 'error.log', accessLog: 'access.log', splitDir: join(prefix, 'split'), ...o2, listen: { host: '127.0.0.1', port } }));
  write(o);
  const nginx = await startNginx({ confPath, prefix });
  return { nginx, confPath, prefix, write, stop: () => nginx.stop() };
}

/** A throwaway CA and a certificate for `name` (default "localhost") signed by it (needs openssl). */
export function makePki(dir: string, name = 'localhost'): { caPath: string; key: string; cert: string; keyPath: string; certPath: string } {
  mkdirSync(dir, { recursive: true });
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=embedctl test CA']);
  run(['req', ...ec, '-keyout', 'srv.key', '-out', 'srv.csr', '-subj', `/CN=${name}`]);
  writeFile(join(dir, 'san.ext'), `subjectAltName=DNS:${name}\n`);
  run(['x509', '-req', '-in', 'srv.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'srv.crt', '-days', '2', '-extfile', 'san.ext']);
  return { caPath: join(dir, 'ca.crt'), key: readFileSync(join(dir, 'srv.key'), 'utf8'), cert: readFileSync(join(dir, 'srv.crt'), 'utf8'), keyPath: join(dir, 'srv.key'), certPath: join(dir, 'srv.crt') };
}

/** A function giving a fresh numbered directory under `parent` on each call. */
export function freshDirs(parent: string): () => string {
  let n = 0;
  return () => {
    const d = join(parent, `p${++n}`);
    mkdirSync(d, { recursive: true });
    return d;
  };
}

/**
 * `up --local` with one replica at 0 % in front of a hosted stand-in serving the same model (a
 * correct self-hosted side passes the gates), in `<parent>/stack`: what the evidence tests aim at.
 */
export async function startEvidenceStack(parent: string): Promise<{
  cwd: string;
  hosted: import('../../src/adapters/local-stack.js').LocalRuntime;
  gateway: string;
  runtimes: Array<{ url: string }>;
  stop(): Promise<void>;
}> {
  const { startStandaloneRuntime, stopLocalStack, stopStandaloneRuntime } = await import('../../src/adapters/local-stack.js');
  const { runCli } = await import('./cli.js');
  const cwd = join(parent, 'stack');
  mkdirSync(cwd, { recursive: true });
  const hosted = await startStandaloneRuntime({ cwd, name: 'hosted', model: 'default', env: { PATH: process.env.PATH } });
  const r = await runCli(['up', '--local', '--replicas', '1', '--percent', '0', '--hosted-url', `${hosted.url}/v1/embeddings`, '--json'], { cwd, env: {} });
  if (r.code !== 0) {
    await stopStandaloneRuntime(hosted);
    throw new Error(`up --local exited ${r.code}: ${r.stderr}`);
  }
  const doc = r.json<{ url: string; runtimes: Array<{ url: string }> }>();
  return {
    cwd,
    hosted,
    gateway: doc.url,
    runtimes: doc.runtimes,
    stop: async () => {
      await stopLocalStack(cwd).catch(() => undefined);
      await stopStandaloneRuntime(hosted);
    },
  };
}

/** A list whose entries (servers, gateways, stand-ins) are stopped after each test of the file. */
export function stopAfterEach<T extends { stop(): Promise<void> } = { stop(): Promise<void> }>(): T[] {
  const running: T[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((r) => r.stop()));
  });
  return running;
}
