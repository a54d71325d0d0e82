import { dirname, join } from 'node:path';
import { PassThrough, type Writable } from 'node:stream';
import type { Context } from '../context.js';
import { exitCodeOf, formatError, Interrupted } from '../errors.js';
import { localInstance, localSsmClient } from '../adapters/aws/ssm-local.js';
import { localPaths } from '../adapters/local-stack.js';
import { nginxBinary } from '../adapters/nginx.js';
import { logger, type Logger } from '../ui/output.js';
import type { RolloutOpts } from './rollout/options.js';

/**
 * How the rehearsal runs the other commands: their typed run() functions, called in-process on
 * the rehearsal's clock and work dir, with their progress forwarded (indented) as ours.
 */
export interface SubResult {
  code: number;
  /** The end of what the command wrote on stderr, and its error (one line) when it threw. */
  errTail: string;
}

export type SubRun = (fn: (ctx: Context, log: Logger) => Promise<number | void>, o?: { quiet?: boolean; env?: Record<string, string>; adapters?: Partial<Context['adapters']> }) => Promise<SubResult>;

/** A sub-command's streams: stdout dropped (its report is read from its --out file), stderr indented. */
function subStreams(parent: Writable, quiet: boolean) {
  const out = new PassThrough();
  const err = new PassThrough();
  let errTail = '';
  out.resume();
  let pending = '';
  err.on('data', (d: Buffer) => {
    const s = d.toString();
    errTail = (errTail + s).slice(-2000);
    if (quiet) return;
    pending += s;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const l of lines) if (l.trim()) parent.write(`    | ${l}\n`);
  });
  return { out, err, errTail: () => errTail };
}

export function subRunner(ctx: Context, work: string, now: () => Date): SubRun {
  return async (fn, o = {}) => {
    const s = subStreams(ctx.stderr, Boolean(o.quiet));
    const sub: Context = { ...ctx, env: { ...ctx.env, ...o.env }, adapters: { ...ctx.adapters, ...o.adapters }, stdout: s.out, stderr: s.err, cwd: work, now, isTTY: false };
    // --json: each command prints one document on the (dropped) stdout and no tables.
    const log = logger(sub, { json: true, verbose: false, color: false });
    try {
      return { code: (await fn(sub, log)) ?? 0, errTail: s.errTail() };
    } catch (err) {
      if (err instanceof Interrupted || ctx.signal?.aborted) throw err;
      return { code: exitCodeOf(err), errTail: `${s.errTail()}\n${formatError(err, false).trim()}` };
    }
  };
}

/** The rehearsal's stand-in for a provisioned instance: an SSM managed-node id (mi-: this machine). */
export const REHEARSAL_INSTANCE = 'mi-0000000000000000';

/**
 * The rollout options that move the rehearsal's gateway. With nginx: the `ssm` driver, as for a
 * provisioned deployment, its SSM client answered by this machine (src/adapters/aws/ssm-local.ts)
 * running the very script SSM would run against the local stack's nginx, whose nginx.conf sits
 * where the instance keeps it (<deploy dir>/nginx/nginx.conf). Without nginx: the env driver the
 * hybrid client reads.
 */
export function rehearsalDriver(ctx: Context, work: string, gatewayUrl: string | undefined): { opts: RolloutOpts; adapters: Partial<Context['adapters']>; env: Record<string, string> } {
  // The rehearsal's own rollout.json (where rehearse reads it), not the project's $EMBEDCTL_STATE_DIR.
  const stateFile = join(work, '.embedctl', 'rollout.json');
  if (!gatewayUrl) return { opts: { driver: 'env', trafficEnv: join(work, '.embedctl', 'traffic.env'), stateFile }, adapters: {}, env: {} };
  const paths = localPaths(work);
  const instance = localInstance({ root: join(paths.dir, 'rehearsal-instance'), deployDir: dirname(paths.prefix), prefix: paths.prefix, instanceId: REHEARSAL_INSTANCE, path: ctx.env.PATH, nginxBin: nginxBinary(ctx.env) });
  return {
    opts: { driver: 'ssm', ssmInstance: REHEARSAL_INSTANCE, ssmRegion: 'local', gatewayUrl, samples: '400', tolerance: '8', stateFile },
    adapters: { ssmClient: localSsmClient(instance) },
    // The local instance answers at once: poll its result every 50 ms instead of every second.
    env: { EMBEDCTL_SSM_POLL_MS: '50' },
  };
}
