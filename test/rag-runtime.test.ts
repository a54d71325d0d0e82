import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';
import { startRuntime, type RuntimeHandle } from './helpers/runtime.js';
import { cosine } from '../src/core/vectors.js';
import { packageRoot } from '../src/util/paths.js';

/**
 * verify-consistency and rag-overlap against real runtime processes: the same model twice,
 * its quantised copy, and a different (tiny transformer) model.
 */
let def: RuntimeHandle;
let defQ: RuntimeHandle;
let tiny: RuntimeHandle;
let dir: string;
let corpus: string;
let queries: string;
const env = () => ({ EMBEDCTL_CACHE_DIR: join(dir, 'cache') });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'embedctl-rag-rt-'));
  [def, defQ, tiny] = await Promise.all([startRuntime({ model: 'default' }), startRuntime({ model: 'default-q' }), startRuntime({ model: 'tiny-bert' })]);
  // A 300-passage slice of the shipped sample with its queries: seconds, not minutes.
  const rag = join(packageRoot(), 'data', 'rag');
  const passages = readFileSync(join(rag, 'corpus.jsonl'), 'utf8').trim().split('\n').slice(0, 300);
  const ids = new Set(passages.map((l) => (JSON.parse(l) as { id: string }).id));
  const judged = new Set(
    readFileSync(join(rag, 'qrels.tsv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split('\t')).filter((r) => ids.has(r[1]!)).map((r) => r[0]!),
  );
  const qs = readFileSync(join(rag, 'queries.jsonl'), 'utf8').trim().split('\n').filter((l) => judged.has((JSON.parse(l) as { id: string }).id));
  corpus = join(dir, 'corpus.jsonl');
  queries = join(dir, 'queries.jsonl');
  writeFileSync(corpus, passages.join('\n') + '\n');
  writeFileSync(queries, qs.join('\n') + '\n');
}, 60_000);

afterAll(async () => {
  await Promise.all([def, defQ, tiny].filter(Boolean).map((r) => r.stop()));
  rmSync(dir, { recursive: true, force: true });
});

async function embed(url: string, input: string[]): Promise<number[][]> {
  const r = await fetch(`${url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input }) });
  const j = (await r.json()) as { data: Array<{ index: number; embedding: number[] }> };
  return j.data.sort((a, b) => a.index - b.index).map((d) => d.embedding);
}

describe('verify-consistency against real runtimes', () => {
  it('default vs default: cosine ~1, exit 0', async () => {
    const r = await runCli(['verify-consistency', '--reference', def.url, '--candidate', def.url, '--sample', '40', '--json'], { env: env() });
    expect(r.code, r.stderr).toBe(0);
    const j = r.json<Record<string, any>>();
    expect(j.count).toBe(40);
    expect(j.cosine.min).toBeGreaterThan(0.999999);
    expect(j.verdict).toBe('pass');
  });

  it('default vs default-q: measurable drift, reported as computed directly from the two runtimes', async () => {
    const r = await runCli(['verify-consistency', '--reference', def.url, '--candidate', defQ.url, '--sample', '40', '--seed', '3', '--json', '--min-cosine', '0.99999'], { env: env() });
    const j = r.json<Record<string, any>>();
    // Recompute from the same texts, straight from both servers.
    const all = readFileSync(join(packageRoot(), 'data', 'sample-texts.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; text: string });
    const { sampleIndices } = await import('../src/core/vectors.js');
    const texts = sampleIndices(all.length, 40, 3).map((i) => all[i]!.text);
    const [a, b] = await Promise.all([embed(def.url, texts), embed(defQ.url, texts)]);
    const direct = texts.map((_, i) => cosine(a[i]!, b[i]!));
    const min = Math.min(...direct);
    expect(j.cosine.min).toBeCloseTo(min, 9);
    expect(j.cosine.mean).toBeCloseTo(direct.reduce((x, y) => x + y, 0) / direct.length, 9);
    // High but not identical: a quantised copy drifts a little.
    expect(min).toBeGreaterThan(0.99);
    expect(min).toBeLessThan(0.99999);
    expect(j.verdict).not.toBe('pass');
    expect(r.code).toBe(3);
  });

  it('default vs tiny-bert: different dimensions are refused with the re-index hint', async () => {
    const r = await runCli(['verify-consistency', '--reference', def.url, '--candidate', tiny.url, '--sample', '20', '--seed', '9'], { env: env() });
    expect(r.stderr).toMatch(/reference answers 100-dimensional vectors .* candidate 32-dimensional/);
    expect(r.code).toBe(2);
  });
});

describe('rag-overlap against real runtimes', () => {
  it('default vs default: overlap 1.0, RBO 1, exit 0; a re-run with --cache all serves the reference from the cache and still asks the candidate', async () => {
    const args = ['rag-overlap', '--reference', def.url, '--candidate', def.url, '--corpus', corpus, '--queries', queries, '--json', '--cache', 'all'];
    const r = await runCli(args, { env: env() });
    expect(r.code, r.stderr).toBe(0);
    const j = r.json<Record<string, any>>();
    expect(j.schema).toBe('embedctl.rag-overlap/v1');
    expect(j.corpus).toBe(300);
    expect(j.overlap.mean).toBe(1);
    expect(j.overlap.min).toBe(1);
    expect(j.rbo.mean).toBeCloseTo(1, 9);
    expect(j.reindex).toBe(false);
    expect(j.overlap.histogram[9]).toBe(j.queries);

    const before = await requestsTotal(def.url);
    expect(before).toBeGreaterThan(0);
    const again = await runCli(args, { env: env() });
    expect(again.code).toBe(0);
    const a = again.json<Record<string, any>>();
    expect(a.reference.cached).toBe(300 + j.queries);
    // The candidate is what is being verified: never read from a cache (not even the reference's own vectors).
    expect(a.candidate.cached ?? 0).toBe(0);
    expect(a.candidate.answeredBy).not.toBe('cache');
    const after = await requestsTotal(def.url);
    expect(after).toBeGreaterThan(before);
    expect(a.overlap.mean).toBe(1);
  });

  it('default vs tiny-bert: a re-index, gated on nDCG against the qrels, fails with exit 3', async () => {
    const r = await runCli(
      ['rag-overlap', '--reference', def.url, '--candidate', tiny.url, '--corpus', corpus, '--queries', queries, '--qrels', join(packageRoot(), 'data', 'rag', 'qrels.tsv'), '--json'],
      { env: env() },
    );
    const j = r.json<Record<string, any>>();
    expect(j.reindex).toBe(true);
    expect(j.reindexReason).toMatch(/dimensions differ \(100 vs 32\)/);
    expect(j.gate).toBe('ndcg-ratio');
    expect(j.quality.reference.ndcg10).toBeGreaterThan(j.quality.candidate.ndcg10);
    expect(j.overlap.mean).toBeLessThan(0.8);
    expect(j.verdict).not.toBe('pass');
    expect(r.code).toBe(3);
  });
});

async function requestsTotal(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let n = 0;
  for (const m of text.matchAll(/^embedctl_requests_total\{([^}]*)\} (\d+)/gm)) if (m[1]!.includes('embeddings')) n += Number(m[2]);
  return n;
}
