import type { Command } from 'commander';
import { parseFlag, parsers } from '../config.js';
import type { Context } from '../context.js';
import { targetOfNext } from '../core/rollout/machine.js';
import { UsageError } from '../errors.js';
import type { Logger } from '../ui/output.js';
import { addOptions, resolveSettings, type OptionGroup, type RolloutOpts } from './rollout/options.js';
import type { Runner } from './rollout/runner.js';
import { action, examples, type ExitHolder } from './shared.js';

/**
 * `embedctl rollout <verb>`: noun-verb like kubectl and wrangler. Today's `--next`-style flags
 * stay as aliases for one release (with a one-line deprecation note on stderr).
 */
export type Verb = 'plan' | 'status' | 'check' | 'next' | 'to' | 'rollback' | 'pause' | 'resume' | 'watch';

const VERBS: Array<{ verb: Verb; args?: string; help: string; groups: OptionGroup[] }> = [
  { verb: 'plan', help: 'the week-by-week plan with dates', groups: ['plan'] },
  { verb: 'status', help: 'timeline, current step, dwell left, latest gates, next step, history (the default)', groups: ['plan'] },
  { verb: 'check', help: 'evaluate the gates; exit 0 when all pass, 3 otherwise; nothing moves', groups: ['plan', 'gates', 'signals'] },
  { verb: 'next', help: 'move one step forward, after the dwell and when the gates pass', groups: ['plan', 'move', 'gates', 'signals', 'driver'] },
  { verb: 'to', args: '<percent>', help: 'move to this step of the plan (0 = roll back)', groups: ['plan', 'move', 'gates', 'signals', 'driver', 'confirm'] },
  { verb: 'rollback', help: 'put 0 % on self-hosted now, whatever state the files are in, and record why (--reason)', groups: ['plan', 'move', 'driver', 'confirm'] },
  { verb: 'pause', help: 'block moving forward until resume', groups: ['plan', 'move'] },
  { verb: 'resume', help: 'lift a pause', groups: ['plan', 'move'] },
  { verb: 'watch', help: 'poll a live traffic signal and roll back by itself after --failure-limit bad intervals (exit 4)', groups: ['plan', 'gates', 'signals', 'driver', 'watch', 'confirm'] },
];

const LEGACY = ['percent', 'next', 'rollback', 'pause', 'resume', 'status', 'plan', 'check', 'watch'] as const;
type Legacy = (typeof LEGACY)[number];
type LegacyOpts = RolloutOpts & Partial<Record<Exclude<Legacy, 'percent'>, boolean>> & { percent?: string };

export function register(program: Command, ctx: Context, holder: ExitHolder): void {
  const cmd = program
    .command('rollout')
    .description('Move traffic to self-hosted step by step (10 -> 25 -> 50 -> 75 -> 100 %), behind gates, with rollback');
  for (const v of VERBS) {
    const sub = addOptions(cmd.command(v.args ? `${v.verb} ${v.args}` : v.verb).description(v.help), v.groups);
    sub.action(
      action<RolloutOpts>(ctx, holder, async ({ opts, args, ctx, log }) => {
        return run(v.verb, opts, ctx, log, args[0]);
      }),
    );
  }
  // The deprecated flag spellings, kept for one release.
  cmd
    .option('--percent <n>', 'deprecated: `rollout to N`')
    .option('--next', 'deprecated: `rollout next`')
    .option('--rollback', 'deprecated: `rollout rollback`')
    .option('--pause', 'deprecated: `rollout pause`')
    .option('--resume', 'deprecated: `rollout resume`')
    .option('--status', 'deprecated: `rollout status`')
    .option('--plan', 'deprecated: `rollout plan`')
    .option('--check', 'deprecated: `rollout check`')
    .option('--watch', 'deprecated: `rollout watch`');
  addOptions(cmd, ['plan', 'move', 'gates', 'signals', 'driver', 'watch', 'confirm']);
  examples(cmd, [
    'embedctl rollout plan',
    'embedctl rollout check                        # gates only; exit 3 when one fails or evidence is missing',
    'embedctl rollout next                         # one step, after the week is over and gates pass',
    'embedctl rollout to 50 --force --reason "capacity test approved by SRE" --dry-run',
    'embedctl rollout watch --interval 30s --metrics-url http://10.0.0.5:8080/metrics',
    'embedctl rollout rollback --reason "p95 regression"',
    'embedctl rollout to 25 --driver env --traffic-env /etc/myapp/traffic.env',
    'embedctl rollout status --json',
  ]);
  cmd.addHelpText(
    'after',
    '\n--force lifts only the one-step-at-a-time and dwell rules. A failed or inconclusive gate always stops\na forward move (exit 3): fix the cause or refresh the evidence; there is no override.\n',
  );
  cmd.action(
    action<LegacyOpts>(ctx, holder, async ({ opts, ctx, log }) => {
      const given = LEGACY.filter((a) => opts[a] !== undefined && opts[a] !== false);
      if (given.length > 1) throw new UsageError(`choose one of ${given.map((g) => `--${g}`).join(', ')}`, { field: `--${given[1]}` });
      const flag = given[0];
      const verb: Verb = flag === undefined ? 'status' : flag === 'percent' ? 'to' : flag;
      if (flag) ctx.stderr.write(`embedctl: --${flag} is deprecated and goes away in the next release; use \`embedctl rollout ${verb === 'to' ? 'to N' : verb}\`\n`);
      return dispatch(await runner(ctx, opts, log, verb), verb, opts.percent, '--percent');
    }),
  );
}

/**
 * `embedctl rollout <verb> [arg]` as a typed function: the CLI and `rehearse` both call it.
 * `arg` is `to`'s percent. Errors are thrown (UsageError, GateFailed, ...), as from any run().
 */
export async function run(verb: Verb, opts: RolloutOpts, ctx: Context, log: Logger, arg?: string): Promise<number> {
  return dispatch(await runner(ctx, opts, log, verb), verb, arg, 'rollout to <percent>');
}

async function runner(ctx: Context, opts: RolloutOpts, log: Logger, verb: Verb): Promise<Runner> {
  if (opts.force && !opts.reason?.trim()) {
    throw new UsageError('needs --reason "<why>" (it is recorded in the rollout history)', { field: '--force' });
  }
  if (opts.force && verb !== 'to' && verb !== 'next') throw new UsageError('only applies to `rollout to` and `rollout next`', { field: '--force' });
  const settings = resolveSettings(ctx, opts);
  // The store, the verbs and their traffic drivers (AWS SDK clients, nginx, kubectl) load when a
  // verb runs: `rollout --help` needs none of them (issue 15: within 4x of node -e 0).
  const { RolloutStore } = await import('./rollout/store.js');
  return { ctx, opts, log, settings, store: new RolloutStore(ctx.cwd, opts.stateFile, settings, ctx.env) };
}

async function dispatch(r: Runner, verb: Verb, arg: string | undefined, argName: string): Promise<number> {
  const [{ check, move, pauseResume, rollback, showPlan, showStatus }, { watch }] = await Promise.all([import('./rollout/actions.js'), import('./rollout/watch.js')]);
  switch (verb) {
    case 'plan':
      return showPlan(r);
    case 'status':
      return showStatus(r);
    case 'check':
      return check(r);
    case 'pause':
    case 'resume':
      return pauseResume(r, verb);
    case 'rollback':
      return rollback(r, r.opts.reason?.trim() || 'manual', 'rollback');
    case 'watch':
      return watch(r);
    case 'next': {
      const t = targetOfNext((await r.store.current()).state);
      if (typeof t !== 'number') throw new UsageError(t.message);
      return move(r, t);
    }
    case 'to':
      return move(r, parseFlag(argName, arg, parsers.number({ min: 0, max: 100 })));
  }
}
