import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/**
 * Starts the real runtime (`node dist/runtime/main.js`) on 127.0.0.1 with a free port, waits for
 * its "listening" event and for /ready, and hands back its URL. Build first (`npx tsc -p
 * tsconfig.json`; `npm test` does). Always `await rt.stop()` (afterAll): it sends SIGTERM, waits
 * for the exit, and SIGKILLs after a few seconds.
 */

export interface StartRuntimeOptions {
  /** 'default' | 'default-q' | 'tiny-bert' or a model directory. Default: 'default'. */
  model?: string;
  apiKey?: string;
  /** Extra environment (merged over the parent's). */
  env?: Record<string, string | undefined>;
  /** Extra flags, e.g. ['--max-queue', '8']. */
  args?: string[];
  /** How long to wait for /ready. Default 30 s. */
  timeoutMs?: number;
  /** Do not wait for /ready (only for the listening line). */
  noWaitReady?: boolean;
}

export interface RuntimeHandle {
  url: string;
  port: number;
  pid: number;
  /** Every stderr line so far (JSON events: listening, ready, request, ...). */
  stderrLines(): string[];
  /** Parsed JSON events from stderr (lines that are not JSON are skipped). */
  events(): Array<Record<string, unknown>>;
  /** Resolves with the exit code once the process has exited. */
  exited: Promise<number | null>;
  child: ChildProcess;
  /** SIGTERM, wait for exit (SIGKILL after 5 s). Safe to call twice. */
  stop(): Promise<void>;
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const runtimeEntry = join(root, 'dist', 'runtime', 'main.js');

export async function startRuntime(o: StartRuntimeOptions = {}): Promise<RuntimeHandle> {
  if (!existsSync(runtimeEntry)) {
    throw new Error(`${runtimeEntry} is missing: run "npx tsc -p tsconfig.json" (npm test builds first)`);
  }
  const args = [runtimeEntry, '--model', o.model ?? 'default', '--host', '127.0.0.1', '--port', '0', ...(o.args ?? [])];
  const env: Record<string, string | undefined> = { ...process.env, ...o.env };
  if (o.apiKey !== undefined) env.EMBEDCTL_API_KEY = o.apiKey;
  const child = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'ignore', 'pipe'] });
  const lines: string[] = [];
  // If the test process ends without stop() (a failed assertion before it, a crash), take the
  // runtime along rather than leave it listening.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      process.off('exit', killOnExit);
      resolve(code);
    }),
  );
  let onListening: ((url: string) => void) | undefined;
  createInterface({ input: child.stderr! }).on('line', (line) => {
    lines.push(line);
    if (process.env.EMBEDCTL_TEST_RUNTIME_LOG) process.stderr.write(`[runtime ${child.pid}] ${line}\n`);
    try {
      const ev = JSON.parse(line) as { event?: string; url?: string };
      if (ev.event === 'listening' && ev.url) onListening?.(ev.url);
    } catch {
      /* not an event line */
    }
  });

  const timeoutMs = o.timeoutMs ?? 30_000;
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(killer);
    })());

  const fail = async (why: string): Promise<never> => {
    await stop();
    throw new Error(`runtime did not start: ${why}\n${lines.slice(-20).join('\n')}`);
  };

  const url = await new Promise<string | null>((resolve) => {
    const t = setTimeout(() => resolve(null), timeoutMs);
    onListening = (u) => {
      clearTimeout(t);
      resolve(u);
    };
    void exited.then(() => {
      clearTimeout(t);
      resolve(null);
    });
  });
  if (!url) return fail(child.exitCode !== null ? `exited with code ${child.exitCode}` : `no "listening" event within ${timeoutMs} ms`);

  if (!o.noWaitReady) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (child.exitCode !== null) return fail(`exited with code ${child.exitCode}`);
      const ok = await fetch(`${url}/ready`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline) return fail(`/ready not 200 within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  return {
    url,
    port: Number(new URL(url).port),
    pid: child.pid!,
    child,
    exited,
    stderrLines: () => [...lines],
    events: () =>
      lines.flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      }),
    stop,
  };
}
