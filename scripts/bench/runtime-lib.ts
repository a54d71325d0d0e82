/**
 * What the runtime benchmarks (isolation, admission, mixed-tasks) share: start the real runtime
 * process, post to it over keep-alive connections, percentiles, and writing the JSON result.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

// dist/scripts/bench -> repository root
export const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');

export interface Runtime {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** `onEvent` sees every JSON line the runtime logs (its access log included). */
export async function startRuntime(args: string[], onEvent?: (ev: Record<string, unknown>) => void): Promise<Runtime> {
  // BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the runtime under the bench's load.
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, join(root, 'dist', 'runtime', 'main.js'), '--host', '127.0.0.1', '--port', '0', ...args], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
  const lines = createInterface({ input: child.stderr! });
  const url = await new Promise<string>((res, rej) => {
    let u: string | undefined;
    lines.on('line', (l) => {
      try {
        const ev = JSON.parse(l) as { event: string; url?: string; error?: string };
        onEvent?.(ev);
        if (ev.event === 'listening') u = ev.url;
        if (ev.event === 'ready' && u) res(u);
        if (ev.event === 'fatal' || ev.event === 'usage_error') rej(new Error(ev.error));
      } catch {
        /* not JSON */
      }
    });
    child.once('exit', (c) => rej(new Error(`runtime exited ${c}`)));
  });
  return {
    url,
    child,
    stop: () =>
      new Promise<void>((r) => {
        if (child.exitCode !== null) return r();
        child.once('exit', () => r());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
      }),
  };
}

// Every client keeps its connection between requests (maxFreeSockets defaults to 256: past that,
// idle sockets close and come back as bursts of new connections, measuring SYN retries).
export const agent = new Agent({ keepAlive: true, maxSockets: 4096, maxFreeSockets: 4096 });

export interface Reply {
  status: number;
  ms: number;
  retryAfter?: number;
  /** Retry-After-Ms, as the OpenAI SDKs read it first. */
  retryAfterMs?: number;
  body: string;
}

/** POST JSON; resolves with status and latency (errors reject). */
export function post(url: string, path: string, body: unknown): Promise<Reply> {
  const data = typeof body === 'string' ? body : JSON.stringify(body);
  const t0 = performance.now();
  return new Promise((res, rej) => {
    const req = request(`${url}${path}`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (r) => {
      let text = '';
      r.setEncoding('utf8');
      r.on('data', (d: string) => (text += d));
      r.on('end', () => res({ status: r.statusCode!, ms: performance.now() - t0, body: text, ...(r.headers['retry-after'] ? { retryAfter: Number(r.headers['retry-after']) } : {}), ...(r.headers['retry-after-ms'] ? { retryAfterMs: Number(r.headers['retry-after-ms']) } : {}) }));
    });
    req.on('error', rej);
    req.end(data);
  });
}

export const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! : NaN;
};
export const r2 = (x: number) => Math.round(x * 100) / 100;

export function writeResult(name: string, doc: Record<string, unknown>): string {
  const out = join(root, 'bench-results', `${name}.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify({ schema: `embedctl.bench.${name}/v1`, date: new Date().toISOString(), ...doc }, null, 2)}\n`);
  return out;
}

/** Runs `fn` in `clients` closed loops until `ms` have passed. */
export async function closedLoop(clients: number, ms: number, fn: (client: number) => Promise<void>): Promise<void> {
  const end = performance.now() + ms;
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      while (performance.now() < end) await fn(c);
    }),
  );
}

/**
 * Waits for a runtime started with its access log in `logPath` to be listening and ready; returns
 * its URL. Throws with the log's tail when it exits (`exited()`) or takes over 60 s.
 */
export async function waitForRuntimeLog(logPath: string, exited: () => boolean): Promise<string> {
  const deadline = Date.now() + 60_000;
  let url: string | undefined;
  for (;;) {
    const text = readFileSync(logPath, 'utf8');
    url ??= /"event":"listening","url":"([^"]+)"/.exec(text)?.[1];
    if (url && text.includes('"event":"ready"')) return url;
    if (exited() || Date.now() > deadline) throw new Error(`runtime did not start:\n${text.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A minimal HTTP/1.1 keep-alive connection for load generation: the request bytes written as
 * they are, the reply's status line and headers parsed, the body counted and not decoded. With
 * 1,024 clients on a 2-core machine, node:http's client spent so much of the load generator's
 * CPU that its own event loop fell 200 ms behind (p99) and the latencies it measured were its
 * own backlog, not the server's; load tools (k6, wrk) are native for the same reason.
 */
export class RawConnection {
  private waiting: { t0: number; resolve: (r: Reply) => void; reject: (e: Error) => void } | undefined;
  private head: Buffer | undefined;
  private status = 0;
  private left = 0;
  private headers: Record<string, string> = {};
  private closed = false;

  private constructor(
    private readonly socket: Socket,
    private readonly host: string,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    const fail = (err?: Error) => {
      this.closed = true;
      const w = this.waiting;
      this.waiting = undefined;
      w?.reject(Object.assign(err ?? new Error('other side closed'), { code: (err as NodeJS.ErrnoException | undefined)?.code ?? 'UND_ERR_SOCKET' }));
    };
    socket.on('error', fail);
    socket.on('close', () => fail());
  }

  static open(url: string): Promise<RawConnection> {
    const u = new URL(url);
    return new Promise((res, rej) => {
      const s = connect({ host: u.hostname, port: Number(u.port) }, () => res(new RawConnection(s, u.host)));
      s.once('error', rej);
    });
  }

  get usable(): boolean {
    return !this.closed;
  }

  post(path: string, body: string): Promise<Reply> {
    if (this.closed) return Promise.reject(Object.assign(new Error('connection closed'), { code: 'UND_ERR_SOCKET' }));
    if (this.waiting) return Promise.reject(new Error('one request at a time per connection'));
    const payload = Buffer.from(body);
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
      this.waiting = { t0, resolve, reject };
      this.socket.write(`POST ${path} HTTP/1.1\r\nhost: ${this.host}\r\ncontent-type: application/json\r\ncontent-length: ${payload.length}\r\n\r\n`);
      this.socket.write(payload);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.status === 0) {
      this.head = this.head ? Buffer.concat([this.head, chunk]) : chunk;
      const end = this.head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const lines = this.head.toString('latin1', 0, end).split('\r\n');
      this.status = Number(lines[0]!.slice(9, 12));
      this.headers = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        this.headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      if (this.headers['transfer-encoding']) {
        this.socket.destroy(new Error(`a ${this.headers['transfer-encoding']} reply: RawConnection reads content-length bodies only`));
        return;
      }
      this.left = Number(this.headers['content-length'] ?? 0) - (this.head.length - end - 4);
      this.head = undefined;
    } else {
      this.left -= chunk.length;
    }
    if (this.left > 0) return;
    const w = this.waiting;
    const h = this.headers;
    const status = this.status;
    this.waiting = undefined;
    this.status = 0;
    if (h.connection === 'close') this.closed = true;
    w?.resolve({
      status,
      ms: performance.now() - w.t0,
      body: '',
      ...(h['retry-after'] ? { retryAfter: Number(h['retry-after']) } : {}),
      ...(h['retry-after-ms'] ? { retryAfterMs: Number(h['retry-after-ms']) } : {}),
    });
  }
}
