/**
 * Exact top-10 for 1,000 queries over 100,000 x 384 normalised vectors (seeded), as rag-overlap
 * runs it, against the naive way (a JavaScript double loop scoring every row, then a full sort)
 * timed on a subset of queries and extrapolated per query. One run, one machine, one ratio.
 *   npm run bench:overlap   ->   bench-results/overlap.json
 * Env: BENCH_QUERIES, BENCH_CORPUS, BENCH_DIM, BENCH_NAIVE_QUERIES to shrink it.
 */
import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { bestTopKBackend, jsBackend } from '../../src/adapters/onnx-topk.js';
import { topKNaive } from '../../src/core/topk.js';
import { seededRandom } from '../../src/core/vectors.js';
import { writeJsonAtomic } from '../../src/util/fs.js';
import { packageRoot } from '../../src/util/paths.js';

const M = Number(process.env.BENCH_QUERIES ?? 1000);
const N = Number(process.env.BENCH_CORPUS ?? 100_000);
const D = Number(process.env.BENCH_DIM ?? 384);
const NAIVE_Q = Number(process.env.BENCH_NAIVE_QUERIES ?? 20);
const JS_Q = Number(process.env.BENCH_JS_QUERIES ?? 100);
const K = 10;

function rows(n: number, seed: number): Float32Array {
  const rnd = seededRandom(seed);
  const a = new Float32Array(n * D);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let t = 0; t < D; t++) {
      const v = rnd() * 2 - 1;
      a[i * D + t] = v;
      s += v * v;
    }
    const inv = 1 / Math.sqrt(s);
    for (let t = 0; t < D; t++) a[i * D + t]! *= inv;
  }
  return a;
}

const log = (s: string) => process.stderr.write(`${s}\n`);
log(`generating ${M} queries and ${N} x ${D} corpus vectors (seeded)`);
const corpus = rows(N, 1);
const queries = rows(M, 2);

const backend = await bestTopKBackend();
// Warm-up (session creation, JIT) is not what a user waits for on the second query.
await backend.topK(queries.subarray(0, 4 * D), 4, corpus.subarray(0, 1000 * D), 1000, D, K);
let t = performance.now();
const fast = await backend.topK(queries, M, corpus, N, D, K);
const fastMs = performance.now() - t;
log(`${backend.name}: ${M} queries in ${fastMs.toFixed(0)} ms`);

const jsQ = Math.min(JS_Q, M);
t = performance.now();
const js = await jsBackend.topK(queries, jsQ, corpus, N, D, K);
const jsMs = performance.now() - t;
log(`javascript blocked kernel: ${jsQ} queries in ${jsMs.toFixed(0)} ms`);

const nq = Math.min(NAIVE_Q, M);
t = performance.now();
const naive = topKNaive(queries, nq, corpus, N, D, K);
const naiveMs = performance.now() - t;
log(`naive double loop + full sort: ${nq} queries in ${naiveMs.toFixed(0)} ms`);

// Same answers, or the speed means nothing.
let agree = 0;
for (let q = 0; q < nq; q++) {
  const a = new Set(naive.indices.subarray(q * K, (q + 1) * K));
  for (const i of fast.indices.subarray(q * K, (q + 1) * K)) if (a.has(i)) agree++;
  for (let j = 0; j < K; j++) if (js.indices[q * K + j] !== naive.indices[q * K + j]) throw new Error(`javascript kernel disagrees with naive at query ${q}`);
}
const agreement = agree / (nq * K);

const naivePerQuery = naiveMs / nq;
const result = {
  schema: 'embedctl.bench.overlap/v1',
  shape: { queries: M, corpus: N, dim: D, k: K },
  machine: { cpus: availableParallelism(), model: cpus()[0]?.model ?? 'unknown', node: process.version },
  fast: { backend: backend.name, totalMs: Math.round(fastMs), perQueryMs: fastMs / M },
  jsKernel: { queries: jsQ, totalMs: Math.round(jsMs), perQueryMs: jsMs / jsQ, extrapolatedTotalMs: Math.round((jsMs / jsQ) * M) },
  naive: { queries: nq, totalMs: Math.round(naiveMs), perQueryMs: naivePerQuery, extrapolatedTotalMs: Math.round(naivePerQuery * M) },
  speedup: { fastVsNaive: (naivePerQuery * M) / fastMs, jsKernelVsNaive: naivePerQuery / (jsMs / jsQ) },
  topkAgreementWithNaive: agreement,
  target: '>= 10x faster than naive',
  generatedAt: new Date().toISOString(),
};
const out = join(packageRoot(), 'bench-results', 'overlap.json');
await writeJsonAtomic(out, result);
process.stdout.write(
  `exact top-${K}, ${M} x ${N} x ${D}: ${backend.name} ${(fastMs / 1000).toFixed(2)} s; naive (extrapolated) ${((naivePerQuery * M) / 1000).toFixed(1)} s; ` +
    `speedup ${result.speedup.fastVsNaive.toFixed(1)}x (js kernel alone ${result.speedup.jsKernelVsNaive.toFixed(1)}x); agreement ${agreement}\n-> ${out}\n`,
);
