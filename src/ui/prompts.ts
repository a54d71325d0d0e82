import type { Context } from '../context.js';
import { UsageError } from '../errors.js';

export interface ConfirmSpec {
  /** The question on the terminal. */
  message: string;
  /** Why there is no asking without a terminal (first line of the usage error). */
  noTerminal: string;
  /** What to do instead, e.g. "pass --yes to accept". */
  hint: string;
  /** The error when the answer is no. */
  refused: string;
}

/**
 * Asks a yes/no question on a terminal; without one, or on "no", refuses with a UsageError
 * naming --yes, so CI runbooks never hang on a prompt. Tests inject `ctx.adapters.confirm`.
 */
export async function confirmOrRefuse(ctx: Context, s: ConfirmSpec): Promise<void> {
  const injected = ctx.adapters.confirm;
  if (!ctx.isTTY || (!ctx.stdin && !injected)) {
    throw new UsageError(s.noTerminal, { field: '--yes', hint: s.hint });
  }
  const ok = injected
    ? await injected({ message: s.message })
    : await (await import('@inquirer/prompts')).confirm({ message: s.message, default: false }, { input: ctx.stdin, output: ctx.stderr, signal: ctx.signal });
  if (!ok) throw new UsageError(s.refused, { field: '--yes' });
}
