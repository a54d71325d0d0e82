/**
 * What the quality gate of `models optimize` runs: both bundles loaded by the runtime's own model
 * layer (the same tokeniser, pooling and execution provider serving will use), the built-in
 * sample texts embedded with each, and the shipped RAG sample retrieved with each.
 */
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import type { Model } from '../../runtime/inference/model.js';
import type { Context } from '../context.js';
import { parseQrels } from '../core/overlap.js';
import { retrievalCost, type RetrievalCost } from '../core/onnx-optimize/quality.js';
import { packNormalized } from '../core/vectors.js';
import type { Logger } from '../ui/output.js';
import { dataDir } from '../util/paths.js';
import { readTextFile } from './embedding-endpoints.js';

export interface Pair {
  source: Model;
  result: Model;
  close(): Promise<void>;
}

export async function openPair(ctx: Context, srcDir: string, outDir: string, ep: string): Promise<Pair> {
  const { loadModel } = await import('../../runtime/inference/model.js');
  const opts = { providers: [ep], cwd: ctx.cwd, env: ctx.env };
  const source = await loadModel(srcDir, opts);
  const result = await loadModel(outDir, opts).catch(async (err: unknown) => {
    await source.close();
    throw err;
  });
  return { source, result, close: async () => void (await Promise.all([source.close(), result.close()])) };
}

/**
 * One model's vectors for the texts, in batches of similar length (as the runtime's batcher forms
 * them), returned in input order.
 */
export async function embedAll(model: Model, texts: string[], batch = 16): Promise<Float32Array[]> {
  const enc = texts.map((t, i) => ({ i, e: model.encode(t) }));
  enc.sort((a, b) => a.e.ids.length - b.e.ids.length || a.i - b.i);
  const out = new Array<Float32Array>(texts.length);
  for (let s = 0; s < enc.length; s += batch) {
    const chunk = enc.slice(s, s + batch);
    const vs = await model.embed(chunk.map((c) => c.e));
    chunk.forEach((c, k) => (out[c.i] = vs[k]!));
  }
  return out;
}

export function sampleTexts(ctx: Context): string[] {
  return readTextFile(ctx, 'sample texts', join(dataDir(), 'sample-texts.jsonl')).map((t) => t.text);
}

export async function sampleVectors(ctx: Context, pair: Pair): Promise<{ source: Float32Array[]; result: Float32Array[] }> {
  const texts = sampleTexts(ctx);
  return { source: await embedAll(pair.source, texts), result: await embedAll(pair.result, texts) };
}

/** Top-10 retrieval over the shipped RAG sample with both bundles: overlap and nDCG@10 against its qrels. */
export async function measureRetrieval(ctx: Context, log: Logger, pair: Pair, k = 10): Promise<RetrievalCost> {
  const { bestTopKBackend } = await import('../adapters/onnx-topk.js');
  const rag = join(dataDir(), 'rag');
  const corpus = readTextFile(ctx, 'rag sample', join(rag, 'corpus.jsonl'), ['text', 'contents', 'passage']);
  const queries = readTextFile(ctx, 'rag sample', join(rag, 'queries.jsonl'), ['text', 'query']);
  const qrels = parseQrels(readFileSync(join(rag, 'qrels.tsv'), 'utf8'), 'qrels.tsv');
  const backend = await bestTopKBackend();
  log.info(`retrieval cost: ${queries.length} queries over ${corpus.length} passages of the shipped RAG sample, with both bundles`);
  const lists = async (m: Model) => {
    const prefix = (task: string) => m.manifest.taskPrefixes[task] ?? '';
    const P = await embedAll(m, corpus.map((c) => prefix('retrieval.passage') + c.text));
    const Q = await embedAll(m, queries.map((q) => prefix('retrieval.query') + q.text));
    const dim = P[0]!.length;
    const r = await backend.topK(packNormalized(Q, dim), Q.length, packNormalized(P, dim), P.length, dim, k);
    return queries.map((_, q) => Array.from(r.indices.subarray(q * r.k, (q + 1) * r.k), (i) => corpus[i]!.id));
  };
  return retrievalCost(
    queries.map((q) => q.id),
    await lists(pair.source),
    await lists(pair.result),
    qrels,
    k,
    corpus.length,
  );
}
