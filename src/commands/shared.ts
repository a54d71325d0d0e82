import type { Command } from 'commander';
import type { Context } from '../context.js';
import { ExitCode, UsageError } from '../errors.js';
import { readState, statePaths } from '../core/state.js';
import { logger, type GlobalOptions, type Logger } from '../ui/output.js';

export interface RunEnv<O> {
  opts: O;
  args: string[];
  globals: GlobalOptions;
  ctx: Context;
  log: Logger;
}

/** Where the action's exit code lands; main() reads it after parseAsync. */
export interface ExitHolder {
  code: number;
}

/**
 * Wraps a command's handler: hands it the parsed options, the globals and a logger, and stores
 * the exit code it returns (undefined = 0). Errors propagate to main(), which maps them.
 */
export function action<O>(ctx: Context, holder: ExitHolder, fn: (env: RunEnv<O>) => Promise<number | void>) {
  return async (...argsIn: unknown[]) => {
    const cmd = argsIn[argsIn.length - 1] as Command;
    const all = cmd.optsWithGlobals() as O & { json?: boolean; verbose?: boolean; color?: boolean };
    const globals: GlobalOptions = { json: Boolean(all.json), verbose: Boolean(all.verbose), color: all.color !== false };
    const positional = argsIn.slice(0, -2).filter((a): a is string => typeof a === 'string');
    const code = await fn({ opts: all, args: positional, globals, ctx, log: logger(ctx, globals) });
    holder.code = code ?? ExitCode.ok;
  };
}

/** `--help` footer with examples. */
export function examples(cmd: Command, lines: string[]): Command {
  return cmd.addHelpText('after', `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`);
}

export type Register = (program: Command, ctx: Context, holder: ExitHolder) => void;

/** The deployments of the state file a command acts on: every one, or the one --name picks. */
export async function selectDeployments(ctx: Context, name: string | undefined) {
  const paths = statePaths(ctx.cwd, ctx.env);
  const state = await readState(paths.state);
  if (name && !state.deployments[name]) {
    const known = Object.keys(state.deployments);
    throw new UsageError(`no deployment "${name}" in ${paths.state}`, { field: '--name', hint: known.length ? `known: ${known.join(', ')}` : 'nothing is provisioned' });
  }
  return { paths, state, deployments: Object.values(state.deployments).filter((d) => !name || d.name === name) };
}
