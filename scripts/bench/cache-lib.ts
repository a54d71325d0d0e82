/**
 * Shared by the cache benchmark's parts (cache.ts, cache-limiter.ts): texts that are new every
 * time, small statistics, and real runtime processes with a keep-alive load generator.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitForRuntimeLog } from './runtime-lib.js';

export const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
const entry = join(root, 'dist', 'runtime', 'main.js');

export const settings = { model: 'default', durationMs: 2000, rounds: 3, limiterRounds: 9, chunkWords: 200 };

const WORDS = 'the of and to in is for river city music green ocean market winter garden science history light mountain coffee train paper doctor school money forest window summer bread engine island data model search query'.split(' ');
let seq = 0;
/** A text never produced before in this run (a guaranteed miss). */
export const freshText = () => {
  const n = seq++;
  return `${Array.from({ length: 6 + (n % 10) }, (_, j) => WORDS[(n * 7 + j * 13) % WORDS.length]).join(' ')} ${n}`;
};

/** A never-seen text of `words` words (a RAG chunk's size); the counter keeps it unique. */
export const freshChunk = () => {
  const n = seq++;
  return `${Array.from({ length: settings.chunkWords }, (_, j) => WORDS[(n * 7 + j * 13 + (j >> 3)) % WORDS.length]).join(' ')} ${n}`;
};

export const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
export const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;


export async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer().once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => ok(p));
    });
  });
}

export async function startRuntime(args: string[]) {
  // Access log to a file: a pipe drained late by this busy process would slow the server down.
  const logPath = join(tmpdir(), `embedctl-bench-cache-${process.pid}-${Date.now()}.log`);
  const fd = openSync(logPath, 'w');
  const child = spawn(process.execPath, [entry, '--model', settings.model, '--port', '0', '--host', '127.0.0.1', ...args], { stdio: ['ignore', 'ignore', fd] });
  closeSync(fd);
  let exited = false;
  const done = new Promise<void>((r) => child.once('exit', () => ((exited = true), r())));
  const url = await waitForRuntimeLog(logPath, () => exited);
  return {
    url: new URL(url),
    /** The runtime's request events (its own "ms") logged after byte `from` of its log. */
    logSize: () => readFileSync(logPath).length,
    requestMs(from: number): number[] {
      return readFileSync(logPath)
        .subarray(from)
        .toString('utf8')
        .split('\n')
        .filter((l) => l.includes('"event":"request"') && l.includes('"path":"/v1/embeddings"'))
        .map((l) => (JSON.parse(l) as { ms: number }).ms);
    },
    async stop() {
      child.kill('SIGTERM');
      await done;
      rmSync(logPath, { force: true });
    },
  };
}

export function post(agent: Agent, url: URL, body: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((ok, fail) => {
    const req = request({ agent, host: url.hostname, port: url.port, path: '/v1/embeddings', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } }, (res) => {
      res.resume();
      res.on('end', () => ok(res.statusCode ?? 0));
    });
    req.on('error', fail);
    req.end(body);
  });
}

/** `clients` concurrent clients for settings.durationMs, each request's text from `next()`. */
export async function load(url: URL, next: () => string, clients: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  let ok = 0;
  const errors: Record<string, number> = {};
  const t0 = performance.now();
  const end = t0 + settings.durationMs;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < end) {
        const status = await post(agent, url, JSON.stringify({ input: next() })).catch((e: NodeJS.ErrnoException) => e.code ?? e.message);
        if (status === 200) ok++;
        else errors[String(status)] = (errors[String(status)] ?? 0) + 1;
      }
    }),
  );
  agent.destroy();
  if (Object.keys(errors).length) throw new Error(`requests failed: ${JSON.stringify(errors)}`);
  return ok / ((performance.now() - t0) / 1000);
}

