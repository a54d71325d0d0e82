import type { Readable, Writable } from 'node:stream';

/**
 * Everything a command may touch of the outside world. Commands never read `process` directly,
 * so tests run `main(argv, ctx)` in-process with PassThrough streams, a fake env and a fake clock.
 */
export interface Context {
  stdout: Writable;
  stderr: Writable;
  stdin?: Readable;
  env: Record<string, string | undefined>;
  cwd: string;
  /** Wall clock; rollout dwell and report ages read this, so tests and `rehearse` can inject one. */
  now(): Date;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** Whether stdin and stderr are an interactive terminal (prompts and spinners only then). */
  isTTY: boolean;
  /** Aborted on SIGINT/SIGTERM by the bin shim; long commands stop and print partial results. */
  signal?: AbortSignal;
  /**
   * Injected outside-world clients for tests, keyed by adapter name (each adapter documents its
   * key, e.g. `ec2Send`, `dockerHost`). Missing keys mean "build the real client".
   */
  adapters: Record<string, unknown>;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function processContext(signal?: AbortSignal): Context {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    cwd: process.cwd(),
    now: () => new Date(),
    sleep,
    isTTY: Boolean(process.stdin.isTTY && process.stderr.isTTY),
    signal,
    adapters: {},
  };
}
