import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';
import { hashVector, startFakeEmbeddings } from './helpers/fake-embeddings.js';

let dir: string;
const stops: Array<() => Promise<void>> = [];
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'embedctl-rag-'));
  // Passage i lies along axis i (of 8); the query for axis q scores passage q highest, then the
  // rest by a small hash tie-breaker: top-1 is known by construction.
  writeFileSync(join(dir, 'corpus.jsonl'), Array.from({ length: 8 }, (_, i) => JSON.stringify({ id: `p${i}`, text: `passage ${i}` })).join('\n'));
  writeFileSync(join(dir, 'queries.jsonl'), Array.from({ length: 4 }, (_, q) => JSON.stringify({ id: `q${q}`, text: `query ${q}` })).join('\n'));
  writeFileSync(join(dir, 'qrels.tsv'), 'query-id\tcorpus-id\tscore\nq0\tp0\t1\nq1\tp1\t1\nq2\tp2\t1\nq3\tp3\t1\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  while (stops.length) await stops.pop()!();
});

function axisVector(text: string, rotate = 0): number[] {
  const n = Number(text.split(' ')[1]);
  const v = hashVector(text, 8).map((x) => 0.01 * x);
  v[(n + rotate) % 8] = 1;
  return v;
}

async function fake(vectorOf: (t: string) => number[]) {
  const s = await startFakeEmbeddings({ dim: 8, vectorOf });
  stops.push(s.stop);
  return s;
}

const args = (a: string, b: string, extra: string[] = []) => [
  'rag-overlap', '--reference', a, '--candidate', b, '--corpus', join(dir, 'corpus.jsonl'), '--queries', join(dir, 'queries.jsonl'), '--json', ...extra,
];

describe('rag-overlap', () => {
  it('hand-built case: identical retrieval at k=1 passes with overlap 1 and perfect nDCG on both sides', async () => {
    const a = await fake((t) => axisVector(t));
    const r = await runCli(args(a.url, a.url, ['--k', '1', '--qrels', join(dir, 'qrels.tsv')]), { env: { EMBEDCTL_CACHE_DIR: join(dir, 'c') } });
    expect(r.code, r.stderr).toBe(0);
    const j = r.json<Record<string, any>>();
    expect(j.overlap).toMatchObject({ mean: 1, min: 1 });
    expect(j.quality.reference).toEqual({ recall: 1, ndcg10: 1 });
    expect(j.quality.candidate).toEqual({ recall: 1, ndcg10: 1 });
  });

  it('a candidate that ranks another passage first: overlap@1 = 0 for every query, exit 3', async () => {
    const a = await fake((t) => axisVector(t));
    // Passages move one axis over, queries stay (so the spaces still line up): every top-1 changes.
    const b = await fake((t) => (t.startsWith('passage') ? axisVector(t, 1) : axisVector(t)));
    const r = await runCli(args(a.url, b.url, ['--k', '1']), { env: { EMBEDCTL_CACHE_DIR: join(dir, 'c') } });
    const j = r.json<Record<string, any>>();
    expect(j.overlap.mean).toBe(0);
    expect(j.overlap.histogram[0]).toBe(4);
    expect(j.verdict).toBe('fail');
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/mean overlap@1 0.000 is below --min-overlap 0.8/);
  });

  it('a different model without qrels is a usage error naming --qrels', async () => {
    const a = await fake((t) => axisVector(t));
    const b = await fake((t) => hashVector(`other model ${t}`, 8));
    const r = await runCli(args(a.url, b.url, ['--reindex']), { env: { EMBEDCTL_CACHE_DIR: join(dir, 'c') } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--qrels: the candidate is a different model \(asked for with --reindex\)/);
  });

  it('bad input names the flag', async () => {
    const a = await fake((t) => axisVector(t));
    for (const [extra, re] of [
      [['--k', '0'], /--k: must be >= 1/],
      [['--min-overlap', '0.5', '--warn-overlap', '0.6'], /--warn-overlap: 0.6 is above --min-overlap 0.5/],
      [['--qrels', join(dir, 'nope.tsv')], /--qrels: cannot read/],
    ] as Array<[string[], RegExp]>) {
      const r = await runCli(args(a.url, a.url, extra), { env: { EMBEDCTL_CACHE_DIR: join(dir, 'c') } });
      expect(r.code, extra.join(' ')).toBe(2);
      expect(r.stderr).toMatch(re);
    }
    const only = await runCli(['rag-overlap', '--reference', a.url, '--candidate', a.url, '--corpus', join(dir, 'corpus.jsonl')]);
    expect(only.code).toBe(2);
    expect(only.stderr).toMatch(/--queries: give both --corpus and --queries/);
    expect(a.requests).toHaveLength(0);
  });
});
