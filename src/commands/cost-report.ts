import { isAbsolute, join } from 'node:path';
import type { Context } from '../context.js';
import { UsageError } from '../errors.js';
import { embeddingsAt } from '../core/cost/model.js';
import { PRICE_TABLE_DATE, PRICE_TABLE_REGION } from '../core/cost/prices.js';
import { analyse } from '../core/cost/report.js';
import { stateFile } from '../contracts/state.js';
import { costReport } from '../contracts/reports.js';
import { statePaths } from '../core/state.js';
import { csvText, htmlText, jsonDoc, textReport, type ActualData } from '../ui/cost-report.js';
import { printJson, withSchema } from '../ui/output.js';
import { writeFileAtomic } from '../util/fs.js';
import { resolveInputs } from './cost-report-inputs.js';
import { defineCommand } from './define.js';
import { COST_OPTIONS } from './define-options.js';

/** Instance ids embedctl provisioned, from the provision state file when there is one. */
async function provisionedInstanceIds(ctx: Context): Promise<string[]> {
  const state = await stateFile.read(statePaths(ctx.cwd, ctx.env).state);
  return Object.values(state?.deployments ?? {}).flatMap((d) => (d.instance ? [d.instance.id] : []));
}

/** Writes a file the user named with a flag; a failure names the flag. */
async function writeNamed(ctx: Context, flag: string, file: string, write: (path: string) => Promise<void>): Promise<string> {
  const path = isAbsolute(file) ? file : join(ctx.cwd, file);
  try {
    await write(path);
  } catch (err) {
    throw new UsageError(`cannot write ${path}: ${(err as Error).message}`, { field: flag });
  }
  return path;
}

export const register = defineCommand({
  name: 'cost-report',
  options: COST_OPTIONS,
  examples: [
    'embedctl cost-report --tokens-per-month 2e9',
    'embedctl cost-report --queries-per-month 1M --tokens-per-query 10 --corpus-tokens 100M --churn 10% --pricing all',
    'embedctl cost-report --tokens-per-month 5B --provider openai --model text-embedding-3-large --instance-type g5.xlarge',
    'embedctl cost-report --tokens-per-month 2B --capacity-from .embedctl/reports/load-test.json --engineering-hours 40 --hourly-rate 120',
    'embedctl cost-report --tokens-per-month 2B --json > cost.json && embedctl cost-report --tokens-per-month 2B --html cost.html',
    'embedctl cost-report --tokens-per-month 2B --live-pricing --region eu-west-1 --actual',
  ],
  async run(opts, { ctx, globals, log, sources }) {
    if (opts.csv && globals.json) throw new UsageError('choose one of --json and --csv', { field: '--csv' });
    const inputs = await resolveInputs(ctx, { values: opts, sources }, log);
    const a = analyse(inputs);
    const fixed = inputs.self.fixedInstances;
    if (fixed !== undefined && fixed * inputs.self.capacityPerInstance < a.peakPerMinute) {
      log.warn(
        `--instances ${fixed} carry ${Math.round(fixed * inputs.self.capacityPerInstance).toLocaleString('en-US')} embeddings/min but the peak needs ${Math.round(a.peakPerMinute).toLocaleString('en-US')}; the report prices ${fixed} anyway`,
      );
    }
    let actual: ActualData | undefined;
    if (inputs.output.actual) {
      log.warn('--actual calls Cost Explorer, which bills $0.01 per request (this run makes at least 3)');
      const [{ fetchActualCosts }, { fetchUsage }] = await Promise.all([import('../adapters/aws/cost-explorer.js'), import('../adapters/aws/cloudwatch-metrics.js')]);
      const costs = await fetchActualCosts(ctx);
      if (costs.tag.hint) log.warn(costs.tag.hint);
      const usage = await fetchUsage(ctx, inputs.instance.region, await provisionedInstanceIds(ctx));
      log.info(`Cost Explorer requests made: ${costs.costExplorerRequests} ($${(costs.costExplorerRequests * 0.01).toFixed(2)})`);
      actual = { costs, usage };
    }
    if (inputs.output.html) {
      const html = htmlText(inputs, a, ctx.now());
      log.info(`wrote ${await writeNamed(ctx, '--html', inputs.output.html, (p) => writeFileAtomic(p, html))}`);
    }
    const m = inputs.measured;
    // What --capacity-from measured, beside the hosted figures: the capacity before its conversion
    // to the priced texts, and the self-hosted p95 (which the hosted latency trigger does not read).
    const doc = { ...jsonDoc(inputs, a, actual, ctx.now()), ...(m ? { selfHosted: { loadTest: m.file, capacity: m.capacity, latency: m.p95 } } : {}) };
    if (opts.out) log.info(`report written to ${await writeNamed(ctx, '--out', opts.out, (p) => costReport.write(p, withSchema('cost-report', doc)))}`);
    if (globals.json) printJson(ctx, 'cost-report', doc);
    else if (inputs.output.csv) ctx.stdout.write(csvText(inputs, a));
    else ctx.stdout.write(textReport(inputs, a, log.c, actual));
    log.verbose(`price table ${PRICE_TABLE_DATE}, ${PRICE_TABLE_REGION}; embeddings at your volume: ${embeddingsAt(inputs.workload, inputs.workload.tokensPerMonth)}`);
  },
});
