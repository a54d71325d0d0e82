import { PassThrough } from 'node:stream';
import { main } from '../../src/cli.js';
import { sleep, type Context } from '../../src/context.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON (throws when it is not one JSON document). */
  json<T = Record<string, unknown>>(): T;
}

export interface CliOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  now?: () => Date;
  isTTY?: boolean;
  adapters?: Record<string, unknown>;
  signal?: AbortSignal;
  /** Replaces the real sleep, so polling commands finish in milliseconds. */
  sleep?: Context['sleep'];
  stdin?: Context['stdin'];
}

/** Runs `embedctl <args>` in-process with captured streams, the way the habits describe. */
export async function runCli(args: string[], o: CliOptions = {}): Promise<CliResult> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => (out += d));
  stderr.on('data', (d) => (err += d));
  const ctx: Context = {
    stdout,
    stderr,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, CI: 'true', ...o.env },
    cwd: o.cwd ?? process.cwd(),
    now: o.now ?? (() => new Date()),
    sleep: o.sleep ?? sleep,
    stdin: o.stdin,
    isTTY: o.isTTY ?? false,
    signal: o.signal,
    adapters: o.adapters ?? {},
  };
  const code = await main(['node', 'embedctl', ...args], ctx);
  return {
    code,
    get stdout() {
      return out;
    },
    get stderr() {
      return err;
    },
    json<T>() {
      return JSON.parse(out) as T;
    },
  };
}
