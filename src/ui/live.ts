import type { Context } from '../context.js';

/**
 * One status line that redraws in place on a terminal (log-update) instead of appending a line
 * per update; plain lines when stderr is a pipe, a file or CI. log-update is imported on the first
 * update that needs it (it costs a few hundred ms at start-up); until then the latest message waits.
 */
export interface LiveLine {
  update(msg: string): void;
  /** Keeps the last status on screen and moves below it; the next update starts a new line. */
  done(): void;
}

export function liveLine(ctx: Pick<Context, 'stderr' | 'isTTY' | 'env'>): LiveLine {
  if (!ctx.isTTY || ctx.env.CI) {
    return { update: (msg) => void ctx.stderr.write(`${msg}\n`), done: () => {} };
  }
  let latest: string | undefined;
  let lu: ((text: string) => void) & { done(): void } | undefined;
  let loading: Promise<void> | undefined;
  return {
    update(msg) {
      latest = msg;
      if (lu) return lu(msg);
      loading ??= import('log-update').then(({ createLogUpdate }) => {
        lu = createLogUpdate(ctx.stderr as NodeJS.WriteStream, { showCursor: true });
        if (latest !== undefined) lu(latest);
      });
    },
    done() {
      if (lu && latest !== undefined) lu.done();
      else if (latest !== undefined && !lu) ctx.stderr.write(`${latest}\n`);
      latest = undefined;
      if (!lu) loading = undefined;
    },
  };
}
