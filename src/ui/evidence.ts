import type { ChalkInstance } from 'chalk';
import { table } from './output.js';

/**
 * The text views of the evidence reports (verify-consistency, rag-overlap), drawn from the very
 * document --json prints and --out writes, so the two can never tell different stories.
 */

type Verdict = 'pass' | 'warn' | 'fail';

interface Side {
  endpoint: string;
  model: string | null;
  answeredBy?: string;
  dimensions?: number;
}

export function verdictLine(c: ChalkInstance, verdict: Verdict): string {
  return `verdict: ${verdict === 'pass' ? c.green('pass') : verdict === 'warn' ? c.yellow('warn (gate failed, above the rollback trigger: hold)') : c.red('fail (below the rollback trigger)')}`;
}

function sideLine(name: string, s: Side, extra: string): string {
  return `${name}  ${s.endpoint}  (${s.model ?? 'model not reported'}${extra})`;
}

export interface VerifyDoc {
  reference: Side;
  candidate: Side;
  count: number;
  dimensions: number;
  task: string | null;
  cosine: { min: number; p1: number; p5: number; p50: number; mean: number };
  belowMin: number;
  belowWarn: number;
  worst: Array<{ index: number; id: string; text: string; cosine: number }>;
  thresholds: { minCosine: number; warnCosine: number };
  verdict: Verdict;
  note?: string;
}

export function verifyText(d: VerifyDoc, c: ChalkInstance): string[] {
  const f = (x: number) => x.toFixed(6);
  const s = d.cosine;
  return [
    sideLine('reference', d.reference, ''),
    sideLine('candidate', d.candidate, `; answered by ${d.candidate.answeredBy}`),
    `${d.count} texts, ${d.dimensions} dimensions${d.task ? `, task ${d.task}` : ''}`,
    '',
    table(['cosine', 'min', 'p1', 'p5', 'p50', 'mean'], [['', f(s.min), f(s.p1), f(s.p5), f(s.p50), f(s.mean)]]).trimEnd(),
    '',
    `gate --min-cosine ${d.thresholds.minCosine}: ${d.belowMin} text(s) below`,
    `rollback trigger --warn-cosine ${d.thresholds.warnCosine}: ${d.belowWarn} text(s) below`,
    '',
    'worst texts:',
    table(['#', 'id', 'cosine', 'text'], d.worst.map((w) => [w.index, w.id, f(w.cosine), w.text]), ['right', 'left', 'right', 'left']).trimEnd(),
    '',
    ...(d.note ? [c.yellow(d.note), ''] : []),
    verdictLine(c, d.verdict),
  ];
}

type Quality = { recall: number; ndcg10: number };

export interface RagDoc {
  reference: Side;
  candidate: Side;
  k: number;
  queries: number;
  corpus: number;
  overlap: { mean: number; min: number; histogram: number[] };
  rbo: { mean: number; p: number };
  quality?: { reference: Quality; candidate: Quality; ratio: number };
  reindex: boolean;
  reindexReason?: string;
  thresholds: { minOverlap: number; warnOverlap: number; minNdcgRatio: number; warnNdcgRatio: number };
  verdict: Verdict;
  worst: Array<{ id: string; text: string; overlap: number; rbo: number }>;
}

export function ragText(d: RagDoc, c: ChalkInstance): string[] {
  const f = (x: number) => x.toFixed(4);
  const { k, quality: q, thresholds: t } = d;
  const dims = (s: Side) => `, ${s.dimensions} dims`;
  return [
    sideLine('reference', d.reference, dims(d.reference)),
    sideLine('candidate', d.candidate, dims(d.candidate)),
    `${d.queries} queries, ${d.corpus} passages, k = ${k}`,
    '',
    table(['metric', 'mean', 'min'], [[`overlap@${k}`, f(d.overlap.mean), f(d.overlap.min)], [`RBO (p=${d.rbo.p})`, f(d.rbo.mean), '']]).trimEnd(),
    `overlap histogram (0-0.1 ... 0.9-1): ${d.overlap.histogram.join(' ')}`,
    ...(q
      ? ['', table(['quality', `recall@${k}`, 'nDCG@10'], [['reference', f(q.reference.recall), f(q.reference.ndcg10)], ['candidate', f(q.candidate.recall), f(q.candidate.ndcg10)]]).trimEnd(), `candidate/reference nDCG@10: ${f(q.ratio)}`]
      : []),
    '',
    ...(d.reindex ? [c.yellow(`re-index: ${d.reindexReason}. Per-text agreement does not apply; gating on retrieval quality (nDCG ratio) instead of overlap.`), ''] : []),
    d.reindex
      ? `gate --min-ndcg-ratio ${t.minNdcgRatio}, rollback trigger --warn-ndcg-ratio ${t.warnNdcgRatio}: ratio ${f(q!.ratio)}`
      : `gate --min-overlap ${t.minOverlap}, rollback trigger --warn-overlap ${t.warnOverlap}: mean overlap@${k} ${f(d.overlap.mean)}`,
    ...(d.worst.length && !d.reindex ? ['', 'least overlap:', table(['query', 'overlap', 'RBO', 'text'], d.worst.slice(0, 5).map((w) => [w.id, f(w.overlap), f(w.rbo), w.text])).trimEnd()] : []),
    '',
    verdictLine(c, d.verdict),
  ];
}
