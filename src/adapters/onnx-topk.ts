import { availableParallelism } from 'node:os';
import { topK, TopKAccumulator, type TopKResult } from '../core/topk.js';

/**
 * Exact top-k on onnxruntime's CPU kernels: a tiny Gemm(q, cᵀ) -> TopK graph built in memory and
 * run over corpus blocks, so the score matrix never exceeds queries x block floats. MLAS uses
 * SIMD and all cores, about 20x the best plain-JavaScript kernel; when onnxruntime cannot load
 * (exotic platform), the JavaScript kernel in core/topk.ts answers the same question.
 */

export interface TopKBackend {
  readonly name: string;
  topK(queries: Float32Array, m: number, corpus: Float32Array, n: number, dim: number, k: number): Promise<TopKResult>;
}

export const jsBackend: TopKBackend = {
  name: 'javascript',
  topK: async (q, m, c, n, dim, k) => topK(q, m, c, n, dim, k),
};

type Ort = typeof import('onnxruntime-node');
type Session = import('onnxruntime-node').InferenceSession;

let sessionPromise: Promise<{ ort: Ort; session: Session }> | undefined;

async function buildModel(): Promise<Uint8Array> {
  const { onnx } = (await import('onnx-proto')).default;
  const F = onnx.TensorProto.DataType.FLOAT;
  const I64 = onnx.TensorProto.DataType.INT64;
  const INT = onnx.AttributeProto.AttributeType.INT;
  const vi = (name: string, elem: number, dims: Array<string | number>) =>
    onnx.ValueInfoProto.create({
      name,
      type: { tensorType: { elemType: elem, shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) } } },
    });
  const graph = onnx.GraphProto.create({
    name: 'embedctl_topk',
    node: [
      onnx.NodeProto.create({ opType: 'Gemm', input: ['q', 'c'], output: ['s'], attribute: [onnx.AttributeProto.create({ name: 'transB', i: 1, type: INT })] }),
      // sorted=1, largest=1 (defaults); equal scores keep the lower index first, like core/topk.
      onnx.NodeProto.create({ opType: 'TopK', input: ['s', 'k'], output: ['v', 'i'], attribute: [onnx.AttributeProto.create({ name: 'axis', i: 1, type: INT })] }),
    ],
    input: [vi('q', F, ['m', 'd']), vi('c', F, ['n', 'd']), vi('k', I64, [1])],
    output: [vi('v', F, ['m', 'kk']), vi('i', I64, ['m', 'kk'])],
  });
  const model = onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: 13 }], graph, producerName: 'embedctl' });
  return onnx.ModelProto.encode(model).finish();
}

async function session() {
  sessionPromise ??= (async () => {
    const ort = (await import('onnxruntime-node')) as Ort;
    const session = await ort.InferenceSession.create(await buildModel(), {
      executionProviders: ['cpu'],
      intraOpNumThreads: availableParallelism(),
      graphOptimizationLevel: 'all',
    });
    return { ort, session };
  })();
  return sessionPromise;
}

export interface OnnxTopKOptions {
  /** Corpus rows per Gemm; queries x block x 4 bytes is the peak extra memory. */
  blockRows?: number;
  /** Queries per pass, so 100k queries do not make a 100k x block score matrix. */
  queryRows?: number;
}

export function onnxBackend(o: OnnxTopKOptions = {}): TopKBackend {
  const blockRows = o.blockRows ?? 8192;
  const queryRows = o.queryRows ?? 1024;
  return {
    name: 'onnxruntime',
    async topK(queries, m, corpus, n, dim, k) {
      const { ort, session: s } = await session();
      const kk = Math.max(0, Math.min(k, n));
      const acc = new TopKAccumulator(m, kk);
      if (kk === 0 || m === 0) return acc.result();
      for (let q0 = 0; q0 < m; q0 += queryRows) {
        const mq = Math.min(queryRows, m - q0);
        const qt = new ort.Tensor('float32', queries.subarray(q0 * dim, (q0 + mq) * dim), [mq, dim]);
        for (let c0 = 0; c0 < n; c0 += blockRows) {
          const rows = Math.min(blockRows, n - c0);
          const kb = Math.min(kk, rows);
          const r = await s.run({
            q: qt,
            c: new ort.Tensor('float32', corpus.subarray(c0 * dim, (c0 + rows) * dim), [rows, dim]),
            k: new ort.Tensor('int64', BigInt64Array.of(BigInt(kb)), [1]),
          });
          const v = r.v!.data as Float32Array;
          const ix = r.i!.data as BigInt64Array;
          for (let q = 0; q < mq; q++) {
            const th = acc.threshold(q0 + q);
            for (let j = 0; j < kb; j++) {
              const score = v[q * kb + j]!;
              // Each block's list is sorted: once one misses the bar, the rest do too.
              if (score < th) break;
              acc.push(q0 + q, score, c0 + Number(ix[q * kb + j]!));
            }
          }
        }
      }
      return acc.result();
    },
  };
}

/** onnxruntime when it loads, else the JavaScript kernel. */
export async function bestTopKBackend(): Promise<TopKBackend> {
  try {
    await session();
    return onnxBackend();
  } catch {
    sessionPromise = undefined;
    return jsBackend;
  }
}
