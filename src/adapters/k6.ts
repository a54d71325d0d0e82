/**
 * The k6 engine: writes the rendered script to a private temp dir, runs `k6 run` through execa,
 * streams k6's own output to the caller, and reads back the JSON summary the script's
 * handleSummary() writes. Knows k6's exit codes; decides nothing about gates.
 */
import { execa } from 'execa';
import { accessSync, constants, promises as fsp, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';
import type { K6Summary } from '../core/loadtest.js';

/** k6's documented exit codes (errext/exitcodes) that the load-test command distinguishes. */
export const K6_EXIT = {
  thresholdsFailed: 99,
  invalidConfig: 104,
  externalAbort: 105,
  scriptException: 107,
  scriptAborted: 108,
} as const;

/** `k6` on the given PATH (or EMBEDCTL_K6 as an explicit binary), like `command -v k6`. */
export function findK6(env: Record<string, string | undefined>): string | undefined {
  const explicit = env.EMBEDCTL_K6;
  if (explicit) return isAbsolute(explicit) && executable(explicit) ? explicit : findOnPath(explicit, env.PATH);
  return findOnPath('k6', env.PATH);
}

function findOnPath(name: string, path: string | undefined): string | undefined {
  for (const dir of (path ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (executable(candidate)) return candidate;
  }
  return undefined;
}

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

export interface K6Run {
  binary: string;
  /** Renders the script, given the absolute path its handleSummary must write the JSON to. */
  renderScript: (summaryPath: string) => string;
  env: Record<string, string | undefined>;
  cwd: string;
  signal?: AbortSignal;
  /** k6's stdout and stderr as they arrive (progress lines, its text summary). */
  onOutput: (chunk: string) => void;
}

export interface K6Result {
  exitCode: number;
  /** The handleSummary JSON, when k6 got that far. */
  summary?: K6Summary;
  interrupted: boolean;
  /** The last lines k6 printed, for error messages. */
  tail: string;
}

export async function runK6(o: K6Run): Promise<K6Result> {
  // The script carries the request headers (often an API key): private dir, owner-only file.
  const dir = await fsp.mkdtemp(join(tmpdir(), 'embedctl-k6-'));
  try {
    const summaryPath = join(dir, 'summary.json');
    const scriptPath = join(dir, 'load-test.js');
    await fsp.writeFile(scriptPath, o.renderScript(summaryPath), { mode: 0o600 });
    const child = execa(o.binary, ['run', scriptPath], {
      cwd: o.cwd,
      env: { ...o.env, K6_NO_USAGE_REPORT: 'true' },
      extendEnv: false,
      reject: false,
      buffer: false,
      stdin: 'ignore',
      // k6 stops on SIGINT and still runs handleSummary: that is how Ctrl-C keeps a partial report.
      cancelSignal: o.signal,
      killSignal: 'SIGINT',
      forceKillAfterDelay: 15_000,
    });
    let tail = '';
    const onData = (d: Buffer) => {
      const s = d.toString();
      tail = (tail + s).slice(-4000);
      o.onOutput(s);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    const result = await child;
    let summary: K6Summary | undefined;
    try {
      summary = JSON.parse(await fsp.readFile(summaryPath, 'utf8')) as K6Summary;
    } catch {
      summary = undefined;
    }
    const failedToStart = result.failed && result.exitCode === undefined && !result.isCanceled;
    if (failedToStart) tail = `${tail}\n${result.shortMessage ?? result.message ?? ''}`.trim();
    return {
      exitCode: result.exitCode ?? (result.isCanceled ? 130 : 1),
      summary,
      interrupted: Boolean(result.isCanceled || o.signal?.aborted),
      tail: tail.trim().split('\n').slice(-5).join('\n'),
    };
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}
