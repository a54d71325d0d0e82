import { ExitCode, UsageError } from '../errors.js';
import { StateStore } from '../core/state.js';
import type { DryRunResult, Waiter } from '../adapters/aws/ec2.js';
import { printJson } from '../ui/output.js';
import { dryRunChecks, remove, renderOutcome, renderSurvey, survey, surveyDoc, type Outcome, type Survey } from './provision/teardown-steps.js';
import { defineCommand, settingsDoc, settingsText } from './define.js';
import { selectDeployments } from './shared.js';
import { TEARDOWN_OPTIONS } from './define-options.js';
import { rolloutFile } from '../contracts/rollout.js';
import { confirmOrRefuse } from '../ui/prompts.js';

export const register = defineCommand({
  name: 'teardown',
  options: TEARDOWN_OPTIONS,
  examples: ['embedctl teardown --dry-run', 'embedctl teardown --yes', 'embedctl teardown --name blue --yes --json'],
  async run(opts, { ctx, globals, log, sources }) {
    const { paths, deployments } = await selectDeployments(ctx, opts.name);
    const names = deployments.map((d) => d.name);
    if (names.length === 0) {
      if (globals.json) printJson(ctx, 'teardown', { dryRun: Boolean(opts.dryRun), deployments: [], nothingToDo: true });
      else ctx.stdout.write(`Nothing to tear down: ${paths.state} lists no deployments.\n`);
      return 0;
    }
    const live = opts.dryRun || opts.force ? 0 : await rolloutPercent(paths.rollout);
    if (live > 0) {
      throw new UsageError(`${paths.rollout} still sends ${live}% of traffic to self-hosted; tearing down would cut it off`, {
        field: '--force',
        hint: 'roll back first (`embedctl rollout rollback --reason teardown`), or pass --force',
      });
    }
    const w: Waiter = { sleep: ctx.sleep, now: () => ctx.now(), signal: ctx.signal, onProgress: (m) => log.status(m) };

    return StateStore.locked({ cwd: ctx.cwd, env: ctx.env, command: 'teardown', now: () => ctx.now() }, async (store) => {
      const surveys: Survey[] = [];
      // What stays after this run: a resource one of them records (a shared keys parameter) is kept.
      const staying = Object.values(store.state.deployments).filter((d) => !names.includes(d.name));
      for (const n of names) {
        const dep = store.state.deployments[n];
        if (dep) surveys.push(await survey(dep, staying));
      }
      const planText = surveys.map(renderSurvey).join('');

      if (opts.dryRun) {
        const checks: DryRunResult[] = [];
        for (const s of surveys) checks.push(...(await dryRunChecks(s)));
        const denied = checks.filter((c) => !c.ok);
        // The settings view every --dry-run shows: each option's value and where it came from.
        const settings = settingsDoc(TEARDOWN_OPTIONS, { values: opts, sources });
        if (globals.json) printJson(ctx, 'teardown', { dryRun: true, settings, deployments: surveys.map(surveyDoc), checks });
        else {
          ctx.stdout.write(planText);
          ctx.stdout.write('\nEC2 dry run (nothing was removed):\n');
          for (const c of checks) ctx.stdout.write(`  ${c.ok ? 'ok     ' : 'DENIED '} ${c.action}${c.ok ? '' : `  (${c.reason})`}\n`);
          ctx.stdout.write(`\n${settingsText(settings)}`);
        }
        return denied.length ? ExitCode.external : ExitCode.ok;
      }

      if (!globals.json) ctx.stderr.write(planText);
      if (!opts.yes) {
        await confirmOrRefuse(ctx, {
          message: 'Remove these resources?',
          noTerminal: 'confirmation needed and there is no terminal to ask on',
          hint: 'review what would be removed with --dry-run, then re-run with --yes',
          refused: 'not confirmed; nothing was removed',
        });
      }

      const outcomes: Outcome[] = [];
      for (const s of surveys) outcomes.push(await remove(store, s, w, log));
      const skipped = outcomes.flatMap((o) => o.skipped);
      if (globals.json) printJson(ctx, 'teardown', { dryRun: false, deployments: outcomes });
      else ctx.stdout.write(outcomes.map(renderOutcome).join(''));
      if (skipped.length) {
        log.warn(`${skipped.length} resource(s) left in place and still listed in ${paths.state}; see above`);
        return ExitCode.external;
      }
      return ExitCode.ok;
    });
  },
});

/** What the rollout state sends to self-hosted (0 without one); a damaged file stops the teardown. */
async function rolloutPercent(path: string): Promise<number> {
  return (await rolloutFile.read(path))?.percent ?? 0;
}
