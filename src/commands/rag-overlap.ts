import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { Context } from '../context.js';
import { parseFlag, parsers, resolveOption } from '../config.js';
import { GateFailed, UsageError } from '../errors.js';
import { bestTopKBackend } from '../adapters/onnx-topk.js';
import { meanDefined, ndcgAtK, overlapAtK, parseQrels, rbo, recallAtK, type Qrels } from '../core/overlap.js';
import { cosine, histogram, packNormalized, summarize } from '../core/vectors.js';
import { preview } from '../core/sample-texts.js';
import { printJson, table, withSchema } from '../ui/output.js';
import { writeJsonAtomic } from '../util/fs.js';
import { dataDir } from '../util/paths.js';
import { action, examples, type ExitHolder } from './shared.js';
import { answeredBy, checkCandidateBackends } from '../adapters/evidence-targets.js';
import { addEndpointOptions, embedWithProgress, endpointClients, guardCost, mergeCounts, readTextFile, resolveSides, type EndpointFlags } from './embedding-endpoints.js';
import { ragOverlapReport } from '../contracts/reports.js';

interface Opts extends EndpointFlags {
  corpus?: string;
  queries?: string;
  qrels?: string;
  k: string;
  queryTask?: string;
  passageTask?: string;
  minOverlap?: string;
  warnOverlap?: string;
  minNdcgRatio?: string;
  warnNdcgRatio?: string;
  reindex?: boolean;
  out?: string;
}

const RBO_P = 0.9;

export function register(program: Command, ctx: Context, holder: ExitHolder): void {
  const cmd = program
    .command('rag-overlap')
    .description('Retrieve with both endpoints over the same corpus and compare the top-k lists (and quality against qrels)');
  addEndpointOptions(cmd)
    .option('--corpus <file>', 'passages, .jsonl with "id" (or "_id"), "text" and optional "title"; default: the shipped sample (data/rag)')
    .option('--queries <file>', 'queries, .jsonl with "id" and "text"; default: the shipped sample')
    .option('--qrels <file>', 'relevance judgements (TSV: query-id, corpus-id, grade); default with the shipped sample: its qrels')
    .option('--k <n>', 'how many results per query to compare', '10')
    .option('--query-task <task>', 'task for queries (Jina/embedctl)', 'retrieval.query')
    .option('--passage-task <task>', 'task for passages (Jina/embedctl)', 'retrieval.passage')
    .option('--min-overlap <x>', 'gate: mean overlap@k must reach this (env EMBEDCTL_MIN_OVERLAP, rag.minOverlap)')
    .option('--warn-overlap <x>', 'rollback trigger: mean overlap@k below this (env EMBEDCTL_WARN_OVERLAP, rag.warnOverlap)')
    .option('--min-ndcg-ratio <x>', 're-index gate: candidate nDCG@10 / reference nDCG@10 must reach this', '0.95')
    .option('--warn-ndcg-ratio <x>', 're-index rollback trigger for the nDCG ratio', '0.9')
    .option('--reindex', 'treat the move as a re-index (different model) even if it does not look like one')
    .option('--out <file>', 'also write the JSON report here (atomically), as evidence for rollout');
  examples(cmd, [
    'embedctl rag-overlap --reference https://api.jina.ai/v1/embeddings --candidate http://10.0.1.5:8080',
    'embedctl rag-overlap --reference $OLD --candidate $NEW --corpus docs.jsonl --queries queries.jsonl --qrels qrels.tsv --json',
    'embedctl rag-overlap --reference http://127.0.0.1:8080 --candidate http://127.0.0.1:8081 --k 20 --out .embedctl/rag.json',
  ]);
  cmd.action(
    action<Opts>(ctx, holder, async ({ opts, globals, log }) => {
      const num = (flag: string, env: string, file: string, v: string | undefined, d: number) =>
        resolveOption(ctx, { flag, flagValue: v, env, file, default: d, parse: parsers.number({ min: 0, max: 1 }) }).value;
      const minOverlap = num('--min-overlap', 'EMBEDCTL_MIN_OVERLAP', 'rag.minOverlap', opts.minOverlap, 0.8);
      const warnOverlap = num('--warn-overlap', 'EMBEDCTL_WARN_OVERLAP', 'rag.warnOverlap', opts.warnOverlap, 0.7);
      if (warnOverlap > minOverlap) throw new UsageError(`${warnOverlap} is above --min-overlap ${minOverlap}; the rollback trigger must sit at or below the gate`, { field: '--warn-overlap' });
      const minRatio = parseFlag('--min-ndcg-ratio', opts.minNdcgRatio, parsers.number({ min: 0, max: 2 }));
      const warnRatio = parseFlag('--warn-ndcg-ratio', opts.warnNdcgRatio, parsers.number({ min: 0, max: 2 }));
      if (warnRatio > minRatio) throw new UsageError(`${warnRatio} is above --min-ndcg-ratio ${minRatio}`, { field: '--warn-ndcg-ratio' });
      const k = parseFlag('--k', opts.k, parsers.number({ integer: true, min: 1, max: 1000 }));

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
        if (name === 'candidate') checkCandidateBackends(backends, opts.candidate);
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
      const verdict = value >= gMin ? 'pass' : value >= gWarn ? 'warn' : 'fail';
      const worst = ov
        .map((o, i) => ({ i, o }))
        .sort((a, b) => a.o - b.o || a.i - b.i)
        .slice(0, 10)
        .map(({ i, o }) => ({ id: queries[i]!.id, text: preview(queries[i]!.text), overlap: o, rbo: rb[i]! }));
      const doc = {
        reference: { url: opts.reference, endpoint: pSides.reference.endpoint, model: ref.model ?? null, dimensions: ref.dim, cached: ref.cached, answeredBy: answeredBy(ref.backends), backends: ref.backends, via: via.referenceVia },
        candidate: { url: opts.candidate, endpoint: pSides.candidate.endpoint, model: cand.model ?? null, dimensions: cand.dim, cached: cand.cached, answeredBy: answeredBy(cand.backends), backends: cand.backends, via: via.candidateVia },
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
      if (opts.out) await ragOverlapReport.write(resolve(ctx.cwd, opts.out), withSchema('rag-overlap', doc));
      if (globals.json) printJson(ctx, 'rag-overlap', doc);
      else {
        const c = log.c;
        const f = (x: number) => x.toFixed(4);
        const lines = [
          `reference  ${doc.reference.endpoint}  (${ref.model ?? 'model not reported'}, ${ref.dim} dims)`,
          `candidate  ${doc.candidate.endpoint}  (${cand.model ?? 'model not reported'}, ${cand.dim} dims)`,
          `${queries.length} queries, ${corpus.length} passages, k = ${k}`,
          '',
          table(['metric', 'mean', 'min'], [[`overlap@${k}`, f(ovs.mean), f(ovs.min)], [`RBO (p=${RBO_P})`, f(doc.rbo.mean), '']]).trimEnd(),
          `overlap histogram (0-0.1 ... 0.9-1): ${doc.overlap.histogram.join(' ')}`,
          ...(quality
            ? ['', table(['quality', `recall@${k}`, 'nDCG@10'], [['reference', f(quality.reference.recall), f(quality.reference.ndcg10)], ['candidate', f(quality.candidate.recall), f(quality.candidate.ndcg10)]]).trimEnd(), `candidate/reference nDCG@10: ${f(quality.ratio)}`]
            : []),
          '',
          ...(reindex ? [c.yellow(`re-index: ${reindexReason}. Per-text agreement does not apply; gating on retrieval quality (nDCG ratio) instead of overlap.`), ''] : []),
          reindex
            ? `gate --min-ndcg-ratio ${minRatio}, rollback trigger --warn-ndcg-ratio ${warnRatio}: ratio ${f(value)}`
            : `gate --min-overlap ${minOverlap}, rollback trigger --warn-overlap ${warnOverlap}: mean overlap@${k} ${f(value)}`,
          ...(worst.length && !reindex ? ['', 'least overlap:', table(['query', 'overlap', 'RBO', 'text'], worst.slice(0, 5).map((w) => [w.id, f(w.overlap), f(w.rbo), w.text])).trimEnd()] : []),
          '',
          `verdict: ${verdict === 'pass' ? c.green('pass') : verdict === 'warn' ? c.yellow('warn (gate failed, above the rollback trigger: hold)') : c.red('fail (below the rollback trigger)')}`,
        ];
        ctx.stdout.write(`${lines.join('\n')}\n`);
      }
      if (verdict !== 'pass') {
        throw new GateFailed(
          reindex
            ? `candidate nDCG@10 is ${value.toFixed(3)}x the reference's, below --min-ndcg-ratio ${minRatio}`
            : `mean overlap@${k} ${value.toFixed(3)} is below --min-overlap ${minOverlap}`,
          { report: doc, hint: verdict === 'fail' ? 'below the rollback trigger' : 'above the rollback trigger; do not promote the candidate yet' },
        );
      }
      return 0;
    }),
  );
}

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
