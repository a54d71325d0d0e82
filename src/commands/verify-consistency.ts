import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { Context } from '../context.js';
import { parseFlag, parsers, resolveOption } from '../config.js';
import { GateFailed, UsageError } from '../errors.js';
import { cosine, sampleIndices, summarize } from '../core/vectors.js';
import { preview, type TextItem } from '../core/sample-texts.js';
import { fmtNum, printJson, table, withSchema } from '../ui/output.js';
import { writeJsonAtomic } from '../util/fs.js';
import { dataDir } from '../util/paths.js';
import { action, examples, type ExitHolder } from './shared.js';
import { answeredBy, checkCandidateBackends } from '../adapters/evidence-targets.js';
import { addEndpointOptions, embedWithProgress, endpointClients, guardCost, readTextFile, resolveSides, type EndpointFlags } from './embedding-endpoints.js';
import { verifyConsistencyReport } from '../contracts/reports.js';

interface Opts extends EndpointFlags {
  texts?: string;
  sample?: string;
  seed: string;
  task?: string;
  minCosine?: string;
  warnCosine?: string;
  out?: string;
  json?: boolean;
}

export type Verdict = 'pass' | 'warn' | 'fail';

export function register(program: Command, ctx: Context, holder: ExitHolder): void {
  const cmd = program
    .command('verify-consistency')
    .description('Embed the same texts on two endpoints and compare per-text cosine: does the candidate answer like the reference?');
  addEndpointOptions(cmd)
    .option('--texts <file>', 'texts to compare (.jsonl with "text" fields, or .txt one per line); default: the built-in multilingual sample')
    .option('--sample <n>', 'compare a seeded random sample of n texts')
    .option('--seed <n>', 'seed for --sample', '1')
    .option('--task <task>', 'task sent to both sides (Jina/embedctl), e.g. retrieval.passage, text-matching')
    .option('--min-cosine <x>', 'gate: every text must reach this cosine (env EMBEDCTL_MIN_COSINE, embedctl.yaml verify.minCosine)')
    .option('--warn-cosine <x>', 'rollback trigger: below this a live rollout goes back (env EMBEDCTL_WARN_COSINE, verify.warnCosine)')
    .option('--out <file>', 'also write the JSON report here (atomically), as evidence for rollout');
  examples(cmd, [
    'embedctl verify-consistency --reference https://api.jina.ai/v1/embeddings --candidate http://10.0.1.5:8080 --task text-matching',
    'embedctl verify-consistency --reference http://127.0.0.1:8080 --candidate http://127.0.0.1:8081 --sample 40 --json',
    'embedctl verify-consistency --reference $OLD --candidate $NEW --texts my-queries.txt --min-cosine 0.995 --out .embedctl/verify.json',
    'embedctl verify-consistency --deployment local --sample 40 --out .embedctl/reports/verify-consistency.json',
  ]);
  cmd.action(
    action<Opts>(ctx, holder, async ({ opts, globals, log }) => {
      const minCosine = resolveOption(ctx, {
        flag: '--min-cosine', flagValue: opts.minCosine, env: 'EMBEDCTL_MIN_COSINE', file: 'verify.minCosine', default: 0.999,
        parse: parsers.number({ min: -1, max: 1 }),
      }).value;
      const warnCosine = resolveOption(ctx, {
        flag: '--warn-cosine', flagValue: opts.warnCosine, env: 'EMBEDCTL_WARN_COSINE', file: 'verify.warnCosine', default: 0.99,
        parse: parsers.number({ min: -1, max: 1 }),
      }).value;
      if (warnCosine > minCosine) {
        throw new UsageError(`${warnCosine} is above --min-cosine ${minCosine}; the rollback trigger must sit at or below the gate`, { field: '--warn-cosine' });
      }
      const seed = parseFlag('--seed', opts.seed, parsers.number({ integer: true }));
      const sampleN = opts.sample === undefined ? undefined : parseFlag('--sample', opts.sample, parsers.number({ integer: true, min: 1 }));
      const via = await resolveSides(ctx, opts);
      const sides = endpointClients(ctx, opts, opts.task);

      const all: TextItem[] = opts.texts
        ? readTextFile(ctx, '--texts', opts.texts)
        : readTextFile(ctx, '--texts', join(dataDir(), 'sample-texts.jsonl'));
      const items = sampleN === undefined ? all : sampleIndices(all.length, sampleN, seed).map((i) => all[i]!);
      const texts = items.map((t) => t.text);
      const source = opts.texts ?? 'built-in sample (data/sample-texts.jsonl)';
      log.info(`comparing ${texts.length} texts from ${source}`);

      await guardCost(ctx, log, [{ client: sides.reference, texts }, { client: sides.candidate, texts }], {
        maxCost: sides.maxCost, pricePerMillion: sides.pricePerMillion, yes: opts.yes,
      });
      const ref = await embedWithProgress(ctx, 'reference', sides.reference, texts);
      const cand = await embedWithProgress(ctx, 'candidate', sides.candidate, texts);
      checkCandidateBackends(cand.backends, opts.candidate);
      const rd = ref.vectors[0]!.length;
      const cd = cand.vectors[0]!.length;
      if (rd !== cd) {
        throw new UsageError(
          `reference answers ${rd}-dimensional vectors (${ref.model ?? 'unknown model'}), candidate ${cd}-dimensional (${cand.model ?? 'unknown model'}): per-text cosine needs the same model`,
          { hint: 'a different model is a re-index: compare retrieval quality with `embedctl rag-overlap --qrels ...`, or pass --dimensions if both truncate' },
        );
      }
      const cos = texts.map((_, i) => cosine(ref.vectors[i]!, cand.vectors[i]!));
      const s = summarize(cos);
      const order = cos.map((c, i) => i).sort((a, b) => cos[a]! - cos[b]! || a - b);
      const worst = order.slice(0, 10).map((i) => ({ index: i, id: items[i]!.id, text: preview(items[i]!.text), cosine: cos[i]! }));
      const belowMin = cos.filter((c) => c < minCosine).length;
      const belowWarn = cos.filter((c) => c < warnCosine).length;
      const verdict: Verdict = s.min >= minCosine ? 'pass' : s.min >= warnCosine ? 'warn' : 'fail';
      // Unaligned spaces (a different model with the same width) give cosines near 0, not 0.98.
      const differentModel = s.p50 < 0.5;
      const doc = {
        reference: { url: opts.reference, endpoint: sides.reference.endpoint, model: ref.model ?? null, cached: ref.cached, tokens: ref.usage.tokens, answeredBy: answeredBy(ref.backends), backends: ref.backends, via: via.referenceVia },
        candidate: { url: opts.candidate, endpoint: sides.candidate.endpoint, model: cand.model ?? null, cached: cand.cached, tokens: cand.usage.tokens, answeredBy: answeredBy(cand.backends), backends: cand.backends, via: via.candidateVia },
        texts: source,
        count: texts.length,
        dimensions: rd,
        task: opts.task ?? null,
        cosine: { min: s.min, p1: s.p1, p5: s.p5, p50: s.p50, mean: s.mean },
        belowMin,
        belowWarn,
        worst,
        thresholds: { minCosine, warnCosine },
        verdict,
        ...(differentModel ? { note: 'median cosine under 0.5: the candidate looks like a different model; this move is a re-index (use rag-overlap with --qrels)' } : {}),
        generatedAt: ctx.now().toISOString(),
      };
      if (opts.out) await verifyConsistencyReport.write(resolve(ctx.cwd, opts.out), withSchema('verify-consistency', doc));

      if (globals.json) printJson(ctx, 'verify-consistency', doc);
      else {
        const c = log.c;
        const f = (x: number) => x.toFixed(6);
        const lines = [
          `reference  ${sides.reference.endpoint}  (${ref.model ?? 'model not reported'})`,
          `candidate  ${sides.candidate.endpoint}  (${cand.model ?? 'model not reported'}; answered by ${answeredBy(cand.backends)})`,
          `${texts.length} texts, ${rd} dimensions${opts.task ? `, task ${opts.task}` : ''}`,
          '',
          table(['cosine', 'min', 'p1', 'p5', 'p50', 'mean'], [['', f(s.min), f(s.p1), f(s.p5), f(s.p50), f(s.mean)]]).trimEnd(),
          '',
          `gate --min-cosine ${minCosine}: ${belowMin} text(s) below`,
          `rollback trigger --warn-cosine ${warnCosine}: ${belowWarn} text(s) below`,
          '',
          'worst texts:',
          table(['#', 'id', 'cosine', 'text'], worst.map((w) => [w.index, w.id, f(w.cosine), w.text]), ['right', 'left', 'right', 'left']).trimEnd(),
          '',
          ...(differentModel ? [c.yellow(doc.note!), ''] : []),
          `verdict: ${verdict === 'pass' ? c.green('pass') : verdict === 'warn' ? c.yellow('warn (gate failed, above the rollback trigger: hold)') : c.red('fail (below the rollback trigger)')}`,
        ];
        ctx.stdout.write(`${lines.join('\n')}\n`);
        if (opts.out) log.info(`report written to ${opts.out}`);
      }
      if (verdict !== 'pass') {
        const w = worst[0]!;
        throw new GateFailed(
          `min cosine ${fmtNum(s.min, 6)} is below --min-cosine ${minCosine} (${belowMin} of ${texts.length} texts; worst: #${w.index} ${w.id} "${w.text}")`,
          { report: doc, hint: verdict === 'fail' ? `below the rollback trigger --warn-cosine ${warnCosine}` : 'above the rollback trigger; do not promote the candidate yet' },
        );
      }
      return 0;
    }),
  );
}
