import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { GateFailed, UsageError } from '../errors.js';
import { bestTopKBackend } from '../adapters/onnx-topk.js';
import { meanDefined, ndcgAtK, overlapAtK, parseQrels, rbo, recallAtK, type Qrels } from '../core/overlap.js';
import { cosine, histogram, packNormalized, summarize } from '../core/vectors.js';
import { preview } from '../core/sample-texts.js';
import { dataDir } from '../util/paths.js';
import { defineCommand } from './define.js';
import { RAG_OPTIONS } from './define-options.js';
import { checkCandidateBackends } from '../adapters/evidence-targets.js';
import { emitReport, embedWithProgress, endpointClients, guardCost, judge, mergeCounts, readTextFile, resolveSides, sideDoc, triggerBelowGate } from './embedding-endpoints.js';
import { ragText } from '../ui/evidence.js';
import { ragOverlapReport } from '../contracts/reports.js';

const RBO_P = 0.9;
export const register = defineCommand({
  name: 'rag-overlap',
  options: RAG_OPTIONS,
  examples: [
    'embedctl rag-overlap --reference https://api.jina.ai/v1/embeddings --candidate http://10.0.1.5:8080',
    'embedctl rag-overlap --reference $OLD --candidate $NEW --corpus docs.jsonl --queries queries.jsonl --qrels qrels.tsv --json',
    'embedctl rag-overlap --reference http://127.0.0.1:8080 --candidate http://127.0.0.1:8081 --k 20 --out .embedctl/rag.json',
  ],
  async run(opts, { ctx, globals, log }) {
    const { minOverlap, warnOverlap, k } = opts;
    const [minRatio, warnRatio] = [opts.minNdcgRatio, opts.warnNdcgRatio];
    triggerBelowGate(warnOverlap, '--warn-overlap', minOverlap, '--min-overlap');
    triggerBelowGate(warnRatio, '--warn-ndcg-ratio', minRatio, '--min-ndcg-ratio');

    const sample = !opts.corpus && !opts.queries;
    if (!sample && (!opts.corpus || !opts.queries)) {
      throw new UsageError('give both --corpus and --queries, or neither for the shipped sample', { field: opts.corpus ? '--queries' : '--corpus' });
    }
    const corpusPath = opts.corpus ?? join(dataDir(), 'rag', 'corpus.jsonl');
    const queriesPath = opts.queries ?? join(dataDir(), 'rag', 'queries.jsonl');
    const qrelsPath = opts.qrels ?? (sample ? join(dataDir(), 'rag', 'qrels.tsv') : undefined);
    const corpus = readTextFile(ctx, '--corpus', corpusPath, ['text', 'contents', 'passage']);
    const queries = readTextFile(ctx, '--queries', queriesPath, ['text', 'query']);
    let qrels: Qrels | undefined;
    if (qrelsPath) {
      let raw: string;
      try {
        raw = readFileSync(resolve(ctx.cwd, qrelsPath), 'utf8');
      } catch (err) {
        throw new UsageError(`cannot read ${qrelsPath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { field: '--qrels' });
      }
      try {
        qrels = parseQrels(raw, qrelsPath);
      } catch (err) {
        throw new UsageError((err as Error).message, { field: '--qrels' });
      }
      qrels = restrictQrels(qrels, new Set(queries.map((q) => q.id)), new Set(corpus.map((c) => c.id)));
      if (qrels.size === 0) throw new UsageError(`no judgement in ${qrelsPath} matches a query and a passage given`, { field: '--qrels' });
    }
    log.info(`${queries.length} queries over ${corpus.length} passages, top ${k}${qrels ? `, ${qrels.size} judged queries` : ''}`);

    const via = await resolveSides(ctx, opts);
    const pSides = endpointClients(ctx, opts, opts.passageTask);
    const qSides = endpointClients(ctx, opts, opts.queryTask);
    const ptexts = corpus.map((c) => c.text);
    const qtexts = queries.map((q) => q.text);
    await guardCost(
      ctx,
      log,
      [
        { client: pSides.reference, texts: ptexts },
        { client: qSides.reference, texts: qtexts },
        { client: pSides.candidate, texts: ptexts },
        { client: qSides.candidate, texts: qtexts },
      ],
      { maxCost: pSides.maxCost, pricePerMillion: pSides.pricePerMillion, yes: opts.yes },
    );
    const backend = await bestTopKBackend();
    const depth = Math.max(k, 10);
    const side = async (name: 'reference' | 'candidate') => {
      const P = await embedWithProgress(ctx, `${name} passages`, pSides[name], ptexts);
      const Q = await embedWithProgress(ctx, `${name} queries`, qSides[name], qtexts);
      const backends = mergeCounts(P.backends, Q.backends);
      if (name === 'candidate') checkCandidateBackends(backends, opts.candidate!, '--candidate', P.cached + Q.cached);
      const dim = P.vectors[0]!.length;
      if (Q.vectors[0]!.length !== dim) {
        throw new UsageError(`${name} answers ${Q.vectors[0]!.length}-dimensional query vectors but ${dim}-dimensional passage vectors`, { field: `--${name}` });
      }
      const t0 = performance.now();
      const r = await backend.topK(packNormalized(Q.vectors, dim), queries.length, packNormalized(P.vectors, dim), corpus.length, dim, depth);
      log.verbose(`${name}: top-${depth} of ${queries.length} x ${corpus.length} x ${dim} in ${Math.round(performance.now() - t0)} ms (${backend.name})`);
      const lists = queries.map((_, q) => Array.from(r.indices.subarray(q * r.k, (q + 1) * r.k), (i) => corpus[i]!.id));
      return { model: P.model ?? Q.model, dim, lists, queryVectors: Q.vectors, cached: P.cached + Q.cached, backends };
    };
    const ref = await side('reference');
    const cand = await side('candidate');

    const ov = ref.lists.map((l, q) => overlapAtK(l, cand.lists[q]!, k));
    const rb = ref.lists.map((l, q) => rbo(l.slice(0, k), cand.lists[q]!.slice(0, k), RBO_P));
    const ovs = summarize(ov);
    // Same model served two ways gives aligned spaces; a different model does not, whatever its width.
    let reindexReason: string | undefined;
    if (opts.reindex) reindexReason = 'asked for with --reindex';
    else if (ref.dim !== cand.dim) reindexReason = `dimensions differ (${ref.dim} vs ${cand.dim})`;
    else {
      const qc = summarize(ref.queryVectors.map((v, i) => cosine(v, cand.queryVectors[i]!)));
      if (qc.p50 < 0.5) reindexReason = `query vectors do not line up (median cosine ${qc.p50.toFixed(3)}): a different model`;
    }
    const reindex = reindexReason !== undefined;

    let quality: { reference: { recall: number; ndcg10: number }; candidate: { recall: number; ndcg10: number }; ratio: number } | undefined;
    if (qrels) {
      const q = (lists: string[][]) => ({
        recall: meanDefined(queries.map((qq, i) => recallAtK(lists[i]!, qrels!.get(qq.id), k))),
        ndcg10: meanDefined(queries.map((qq, i) => ndcgAtK(lists[i]!, qrels!.get(qq.id), 10))),
      });
      const r = q(ref.lists);
      const c = q(cand.lists);
      quality = { reference: r, candidate: c, ratio: r.ndcg10 > 0 ? c.ndcg10 / r.ndcg10 : c.ndcg10 > 0 ? Infinity : 1 };
    }
    if (reindex && !quality) {
      throw new UsageError(`the candidate is a different model (${reindexReason}): overlap with the old index says nothing about quality`, {
        field: '--qrels',
        hint: 'give --qrels with relevance judgements for your queries to compare retrieval quality',
      });
    }
    const gate = reindex ? 'ndcg-ratio' : 'overlap';
    const value = reindex ? quality!.ratio : ovs.mean;
    const [gMin, gWarn] = reindex ? [minRatio, warnRatio] : [minOverlap, warnOverlap];
    const verdict = judge(value, gMin, gWarn);
    const worst = ov
      .map((o, i) => ({ i, o }))
      .sort((a, b) => a.o - b.o || a.i - b.i)
      .slice(0, 10)
      .map(({ i, o }) => ({ id: queries[i]!.id, text: preview(queries[i]!.text), overlap: o, rbo: rb[i]! }));
    const doc = {
      reference: { ...sideDoc(opts.reference!, pSides.reference, ref, via.referenceVia, via.referenceDeployment), dimensions: ref.dim },
      candidate: { ...sideDoc(opts.candidate!, pSides.candidate, cand, via.candidateVia, via.candidateDeployment), dimensions: cand.dim },
      k,
      queries: queries.length,
      corpus: corpus.length,
      overlap: { mean: ovs.mean, min: ovs.min, p50: ovs.p50, histogram: histogram(ov, 10, 0, 1) },
      rbo: { mean: meanDefined(rb), p: RBO_P },
      ...(quality ? { quality } : {}),
      reindex,
      ...(reindexReason ? { reindexReason } : {}),
      gate,
      thresholds: { minOverlap, warnOverlap, minNdcgRatio: minRatio, warnNdcgRatio: warnRatio },
      verdict,
      worst,
      topkBackend: backend.name,
      generatedAt: ctx.now().toISOString(),
    };
    await emitReport(ctx, globals.json, { command: 'rag-overlap', contract: ragOverlapReport, out: opts.out, doc, text: () => ragText(doc, log.c) });
    if (verdict !== 'pass') {
      throw new GateFailed(
        reindex
          ? `candidate nDCG@10 is ${value.toFixed(3)}x the reference's, below --min-ndcg-ratio ${minRatio}`
          : `mean overlap@${k} ${value.toFixed(3)} is below --min-overlap ${minOverlap}`,
        { report: doc, hint: verdict === 'fail' ? 'below the rollback trigger' : 'above the rollback trigger; do not promote the candidate yet' },
      );
    }
    return 0;
  },
});

/** Judgements only for the queries and passages actually compared (a corpus subset stays fair). */
function restrictQrels(q: Qrels, queryIds: Set<string>, docIds: Set<string>): Qrels {
  const out: Qrels = new Map();
  for (const [qid, m] of q) {
    if (!queryIds.has(qid)) continue;
    const kept = new Map([...m].filter(([d, g]) => docIds.has(d) && g > 0));
    if (kept.size) out.set(qid, kept);
  }
  return out;
}
