/**
 * The graph passes of `embedctl models optimize`, in the order they must run: int8 or fp16 on the
 * encoder, then pooling on its (float32) output. Pure: ONNX bytes in, ONNX bytes and a record of
 * what was done out; loading, ORT's optimiser and the quality gate live with the command.
 */
import { decodeModel, encodeModel, GraphEditor } from './graph.js';
import { convertFp16, type Fp16Record } from './fp16.js';
import { quantizeInt8, type Int8Record } from './int8.js';
import { appendPooling, type PoolOptions } from './pool.js';

export interface TransformOptions {
  int8?: { reduceRange: boolean };
  fp16?: boolean;
  pool?: PoolOptions;
}

export type StepRecord =
  | ({ step: 'int8'; scheme: string } & Int8Record)
  | ({ step: 'fp16'; keptFp32: string } & Fp16Record)
  | { step: 'pool-in-graph'; pooling: 'mean' | 'cls'; normalize: boolean; output: string; outputShape: string };

export function transformModel(bytes: Uint8Array, o: TransformOptions): { bytes: Uint8Array; steps: StepRecord[]; output?: string } {
  if (o.int8 && o.fp16) throw new Error('--int8 and --fp16 target different hardware (CPU and GPU); pick one');
  const ed = new GraphEditor(decodeModel(bytes));
  const steps: StepRecord[] = [];
  if (o.int8) {
    const r = quantizeInt8(ed, o.int8);
    if (r.quantized === 0) throw new Error(`no MatMul/Gemm with a float32 weight matrix to quantise${r.skipped.length ? ` (${r.skipped[0]!.node}: ${r.skipped[0]!.why})` : ''}`);
    steps.push({ step: 'int8', scheme: `dynamic, per-channel symmetric int8 weights${o.int8.reduceRange ? ' (7-bit range)' : ''}, uint8 activations (DynamicQuantizeLinear + MatMulInteger)`, ...r });
  }
  if (o.fp16) {
    const r = convertFp16(ed);
    steps.push({ step: 'fp16', keptFp32: 'LayerNorm, Softmax, reductions, Pow/Sqrt, pooling; inputs and outputs', ...r });
  }
  let output: string | undefined;
  if (o.pool) {
    output = appendPooling(ed, o.pool);
    steps.push({ step: 'pool-in-graph', pooling: o.pool.pooling, normalize: o.pool.normalize, output, outputShape: `[batch, ${o.pool.dimensions}]` });
  }
  return { bytes: encodeModel(ed.model), steps, output };
}

export { roundWeightsToFp16 } from './fp16.js';
export { decodeModel, encodeModel, GraphEditor } from './graph.js';
