import { Command, CommanderError } from 'commander';
import { processContext, type Context } from './context.js';
import { ExitCode, exitCodeOf, formatError } from './errors.js';
import { packageVersion } from './util/paths.js';
import type { ExitHolder, Register } from './commands/shared.js';
import { register as costReport } from './commands/cost-report.js';
import { register as loadTest } from './commands/load-test.js';
import { register as models } from './commands/models.js';
import { register as provision } from './commands/provision.js';
import { register as ragOverlap } from './commands/rag-overlap.js';
import { register as rehearse } from './commands/rehearse.js';
import { register as render } from './commands/render.js';
import { register as rollout } from './commands/rollout.js';
import { register as serve } from './commands/serve.js';
import { register as status } from './commands/status.js';
import { register as teardown } from './commands/teardown.js';
import { register as up } from './commands/up.js';
import { register as verifyConsistency } from './commands/verify-consistency.js';

/** In the order `embedctl --help` lists them: the order of a migration. */
const COMMANDS: Register[] = [
  rehearse,
  costReport,
  models,
  serve,
  render,
  provision,
  up,
  status,
  teardown,
  verifyConsistency,
  ragOverlap,
  loadTest,
  rollout,
];

export function buildProgram(ctx: Context, holder: ExitHolder): Command {
  const program = new Command('embedctl');
  program
    .description('Move a text-embedding workload off a hosted API onto your own GPUs on AWS, safely.')
    .version(packageVersion(), '-V, --version')
    .option('--json', 'print one JSON document on stdout (schema key "embedctl.<command>/v1")')
    .option('--verbose', 'more detail on stderr, and the cause chain of errors')
    .option('--no-color', 'no ANSI colour (also NO_COLOR=1, CI=true or a non-TTY)')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => void ctx.stdout.write(s),
      writeErr: (s) => void ctx.stderr.write(s),
      // A fixed width keeps --help identical everywhere, so docs/reference.md can be checked.
      getOutHelpWidth: () => 100,
      getErrHelpWidth: () => 100,
      // commander's own errors (unknown command, bad flag): one line, then a pointer to --help.
      outputError: (s, write) => write(`embedctl: ${s.trim().replace(/^error: /, 'error: ')}\n`),
    })
    .addHelpText(
      'after',
      `\nExit codes: 0 ok, 1 outside system failed, 2 bad usage or input, 3 gate failed, 4 rolled back, 130 interrupted.\n\nStart here:\n  $ embedctl rehearse          # the whole migration on this machine, offline\n  $ embedctl cost-report --tokens-per-month 2e9\n`,
    );
  for (const reg of COMMANDS) reg(program, ctx, holder);
  const inherit = (cmd: Command) => {
    cmd.exitOverride().configureOutput(program.configureOutput()).showSuggestionAfterError(true);
    cmd.commands.forEach(inherit);
  };
  program.commands.forEach(inherit);
  return program;
}

/** Runs the CLI and returns the exit code; never throws, never calls process.exit. */
export async function main(argv: string[], ctx: Context = processContext()): Promise<number> {
  const holder: ExitHolder = { code: ExitCode.ok };
  const verbose = argv.includes('--verbose');
  let program: Command;
  try {
    program = buildProgram(ctx, holder);
  } catch (err) {
    ctx.stderr.write(formatError(err, verbose));
    return exitCodeOf(err);
  }
  try {
    if (argv.slice(2).length === 0) {
      program.outputHelp();
      return ExitCode.usage;
    }
    await program.parseAsync(argv);
    return holder.code;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') {
        return ExitCode.ok;
      }
      if (err.code === 'commander.executeSubCommandAsync') return ExitCode.external;
      return ExitCode.usage;
    }
    ctx.stderr.write(formatError(err, verbose));
    return exitCodeOf(err);
  }
}
