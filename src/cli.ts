import type { Writable } from 'node:stream';
import { Command, CommanderError } from 'commander';
import { processContext, type Context } from './context.js';
import { ExitCode, errorDocument, type ErrorDocument, exitCodeOf, formatError, Interrupted, UsageError } from './errors.js';
import { packageVersion } from './util/paths.js';
import type { ExitHolder, Register } from './commands/shared.js';
import { SUMMARIES } from './commands/summaries.js';

interface CommandEntry {
  name: string;
  /** One line for `embedctl --help`; the module's own description shows in `<cmd> --help`. */
  summary: string;
  load(): Promise<{ register: Register }>;
}

const upModule = () => import('./commands/up.js');

/**
 * Modules are imported only when their command runs (or shows its help): the AWS SDK,
 * onnxruntime and friends cost seconds at start-up, and `embedctl --version` needs none of them.
 * Literal specifiers, so bundlers and vitest see every module; up.js registers `down` too.
 */
const LOAD: Record<string, () => Promise<{ register: Register }>> = {
  rehearse: () => import('./commands/rehearse.js'),
  'cost-report': () => import('./commands/cost-report.js'),
  models: () => import('./commands/models.js'),
  serve: () => import('./commands/serve.js'),
  render: () => import('./commands/render.js'),
  provision: () => import('./commands/provision.js'),
  up: upModule,
  down: upModule,
  status: () => import('./commands/status.js'),
  teardown: () => import('./commands/teardown.js'),
  'verify-consistency': () => import('./commands/verify-consistency.js'),
  'rag-overlap': () => import('./commands/rag-overlap.js'),
  'load-test': () => import('./commands/load-test.js'),
  rollout: () => import('./commands/rollout.js'),
};
const COMMANDS: CommandEntry[] = Object.entries(SUMMARIES).map(([name, summary]) => ({ name, summary, load: LOAD[name]! }));

/** Flags of the program itself; none takes a value, so the first other word names the command. */
const GLOBAL_FLAGS = new Set(['--json', '--verbose', '--no-color', '-V', '--version', '-h', '--help']);

/** The command an argv invokes (`help <cmd>` counts as <cmd>), or undefined for the program itself. */
export function invokedCommand(args: string[]): string | undefined {
  const words = args.filter((a) => !GLOBAL_FLAGS.has(a));
  if (words[0] === 'help') return words[1];
  return words[0]?.startsWith('-') ? undefined : words[0];
}

/**
 * Builds the commander program. `load` says which command modules to import: 'all' (docs,
 * tests of every command) or only the one being run (none for `--version`); the others appear
 * in the program's help by their summary only.
 */
export async function buildProgram(ctx: Context, holder: ExitHolder, load: 'all' | { only?: string } = 'all'): Promise<Command> {
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
  const wanted = COMMANDS.filter((e) => load === 'all' || e.name === load.only);
  // Distinct modules only (up.js registers both `up` and `down`), in the listed order.
  for (const importer of new Set(wanted.map((e) => e.load))) (await importer()).register(program, ctx, holder);
  const registered = new Set(program.commands.map((c) => c.name()));
  for (const e of COMMANDS) if (!registered.has(e.name)) program.command(e.name).description(e.summary);
  if (load !== 'all') sortLike(program);
  const inherit = (cmd: Command) => {
    cmd.exitOverride().configureOutput(program.configureOutput()).showSuggestionAfterError(true);
    cmd.commands.forEach(inherit);
  };
  program.commands.forEach(inherit);
  return program;
}

/** Runs the CLI and returns the exit code; never throws, never calls process.exit. */
export async function main(argv: string[], outer: Context = processContext()): Promise<number> {
  const holder: ExitHolder = { code: ExitCode.ok };
  const args = argv.slice(2);
  const verbose = args.includes('--verbose');
  // Under --json a failure is a JSON document on stdout too, so CI never scrapes stderr; unless
  // the command already printed its own report (a failed gate's report carries the verdict).
  const json = args.includes('--json') && !args.includes('--help') && !args.includes('-h');
  const stdout = noticeWrites(outer.stdout);
  const ctx: Context = { ...outer, stdout: stdout.stream };
  const printError = (doc: ErrorDocument) => {
    if (json && !stdout.written()) outer.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
  };
  const fail = (err: unknown): number => {
    ctx.stderr.write(formatError(err, verbose));
    printError(errorDocument(err));
    return exitCodeOf(err);
  };
  let program: Command;
  const command = invokedCommand(args);
  try {
    program = await buildProgram(ctx, holder, { only: command });
    // embedctl.yaml is checked as a whole before a command runs: a typo anywhere is refused,
    // not silently ignored (help and --version need no configuration).
    if (command && args[0] !== 'help' && !args.includes('--help') && !args.includes('-h')) {
      (await import('./config-schema.js')).checkProjectConfig(ctx);
    }
  } catch (err) {
    return fail(err);
  }
  try {
    if (args.length === 0) {
      program.outputHelp();
      return ExitCode.usage;
    }
    await program.parseAsync(argv);
    return interrupted(ctx) && holder.code !== ExitCode.rolledBack ? ExitCode.interrupted : holder.code;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') {
        return ExitCode.ok;
      }
      const code = err.code === 'commander.executeSubCommandAsync' ? ExitCode.external : ExitCode.usage;
      const doc = errorDocument(new UsageError(err.message.replace(/^error: /, ''), { hint: 'see `embedctl --help`' }));
      printError({ ...doc, error: { ...doc.error, exitCode: code } });
      return code;
    }
    // A command stopped by Ctrl-C fails with whatever the abort broke; the cause is the interrupt.
    if (interrupted(ctx) && exitCodeOf(err) === ExitCode.external) {
      ctx.stderr.write('embedctl: interrupted\n');
      printError(errorDocument(new Interrupted()));
      return ExitCode.interrupted;
    }
    return fail(err);
  }
}

function interrupted(ctx: Context): boolean {
  return ctx.signal?.aborted === true;
}

/** Keeps `embedctl --help` in migration order whichever command was loaded first. */
function sortLike(program: Command): void {
  const order = COMMANDS.map((e) => e.name);
  (program.commands as Command[]).sort((a, b) => order.indexOf(a.name()) - order.indexOf(b.name()));
}

/** The same stream, remembering whether anything was written to it (a Proxy keeps fd, isTTY, columns). */
function noticeWrites(stream: Writable): { stream: Writable; written(): boolean } {
  let written = false;
  const proxy = new Proxy(stream, {
    get(target, prop) {
      if (prop === 'write') {
        return (...a: Parameters<Writable['write']>) => {
          written = true;
          return target.write(...a);
        };
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...x: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { stream: proxy, written: () => written };
}
