import { join } from 'node:path';
import { GateFailed, UsageError } from '../errors.js';
import { cosine, sampleIndices, summarize } from '../core/vectors.js';
import { preview, type TextItem } from '../core/sample-texts.js';
import { fmtNum } from '../ui/output.js';
import { dataDir } from '../util/paths.js';
import { defineCommand } from './define.js';
import { VERIFY_OPTIONS } from './define-options.js';
import { checkCandidateBackends } from '../adapters/evidence-targets.js';
import { emitReport, embedWithProgress, endpointClients, guardCost, judge, readTextFile, resolveSides, sideDoc, triggerBelowGate } from './embedding-endpoints.js';
import { verifyText } from '../ui/evidence.js';
import { verifyConsistencyReport } from '../contracts/reports.js';

export type { Verdict } from './embedding-endpoints.js';

export const register = defineCommand({
  name: 'verify-consistency',
  options: VERIFY_OPTIONS,
  examples: [
    'embedctl verify-consistency --reference https://api.jina.ai/v1/embeddings --candidate http://10.0.1.5:8080 --task text-matching',
    'embedctl verify-consistency --reference http://127.0.0.1:8080 --candidate http://127.0.0.1:8081 --sample 40 --json',
    'embedctl verify-consistency --reference $OLD --candidate $NEW --texts my-queries.txt --min-cosine 0.995 --out .embedctl/verify.json',
    'embedctl verify-consistency --deployment local --sample 40 --out .embedctl/reports/verify-consistency.json',
  ],
  async run(opts, { ctx, globals, log }) {
    const { minCosine, warnCosine, seed } = opts;
    triggerBelowGate(warnCosine, '--warn-cosine', minCosine, '--min-cosine');
    const sampleN = opts.sample;
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
    checkCandidateBackends(cand.backends, opts.candidate!, '--candidate', cand.cached);
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
    const verdict = judge(s.min, minCosine, warnCosine);
    // Unaligned spaces (a different model with the same width) give cosines near 0, not 0.98.
    const differentModel = s.p50 < 0.5;
    const doc = {
      reference: { ...sideDoc(opts.reference!, sides.reference, ref, via.referenceVia, via.referenceDeployment), tokens: ref.usage.tokens },
      candidate: { ...sideDoc(opts.candidate!, sides.candidate, cand, via.candidateVia, via.candidateDeployment), tokens: cand.usage.tokens },
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
    await emitReport(ctx, globals.json, { command: 'verify-consistency', contract: verifyConsistencyReport, out: opts.out, doc, text: () => verifyText(doc, log.c) });
    if (opts.out && !globals.json) log.info(`report written to ${opts.out}`);
    if (verdict !== 'pass') {
      const w = worst[0]!;
      throw new GateFailed(
        `min cosine ${fmtNum(s.min, 6)} is below --min-cosine ${minCosine} (${belowMin} of ${texts.length} texts; worst: #${w.index} ${w.id} "${w.text}")`,
        { report: doc, hint: verdict === 'fail' ? `below the rollback trigger --warn-cosine ${warnCosine}` : 'above the rollback trigger; do not promote the candidate yet' },
      );
    }
    return 0;
  },
});
