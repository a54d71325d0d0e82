/**
 * float32 -> float16 conversion of weights and compute, following ONNX Runtime's converter
 * (onnxconverter_common.float16 with keep_io_types): every float tensor becomes float16 except
 * where an op needs float32's range or accumulation (normalisations, softmax, reductions, pow),
 * and Casts are inserted wherever a tensor's precision and its consumer's differ. Graph inputs
 * and outputs keep their types, so callers and pooling see float32 as before.
 */
import { dimsOf, DT, floatTensor, GraphEditor, halfTensor, inferTypes, readFloats, toNum, type NodeProto, type TensorProto } from './graph.js';

/** Replaces a tensor's contents in place (raw_data only: the typed fields are cleared). */
function rewrite(t: TensorProto, next: TensorProto): void {
  Object.assign(t, { floatData: [], int32Data: [], ...next });
}

/** ORT's DEFAULT_OP_BLOCK_LIST, plus the ops that need float32 range in an encoder. */
export const FP32_OPS = new Set([
  // ORT's converter keeps these in float32
  'ArrayFeatureExtractor', 'Binarizer', 'CastMap', 'CategoryMapper', 'DictVectorizer', 'FeatureVectorizer', 'Imputer',
  'LabelEncoder', 'LinearClassifier', 'LinearRegressor', 'Normalizer', 'OneHotEncoder', 'RandomUniformLike',
  'SVMClassifier', 'SVMRegressor', 'Scaler', 'TreeEnsembleClassifier', 'TreeEnsembleRegressor', 'ZipMap',
  'NonMaxSuppression', 'TopK', 'RoiAlign', 'Resize', 'Range', 'CumSum', 'Min', 'Max', 'Upsample',
  // range and accumulation: variance, exp sums, pooled sums
  'LayerNormalization', 'SimplifiedLayerNormalization', 'SkipLayerNormalization', 'SkipSimplifiedLayerNormalization',
  'Softmax', 'LogSoftmax', 'ReduceMean', 'ReduceSum', 'ReduceSumSquare', 'ReduceL2', 'ReduceLogSumExp', 'Pow', 'Sqrt',
]);

export interface Fp16Record {
  convertedInitializers: number;
  keptFp32Nodes: number;
  castsInserted: number;
}

const isDefaultDomain = (n: NodeProto) => !n.domain || n.domain === 'ai.onnx';

export function convertFp16(ed: GraphEditor): Fp16Record {
  const g = ed.model.graph!;
  if (ed.nodes.some((n) => n.attribute?.some((a) => a.g || a.graphs?.length))) throw new Error('graphs with subgraphs (If, Loop, Scan) are not supported for fp16');
  const types = inferTypes(ed.model);
  const isFloat = (t: string) => types.get(t) === DT.FLOAT;
  const keep32 = (n: NodeProto) => FP32_OPS.has(n.opType!) || !isDefaultDomain(n);
  const rec: Fp16Record = { convertedInitializers: 0, keptFp32Nodes: 0, castsInserted: 0 };

  // Where each float tensor lives: produced in fp16 (converted node or initializer) or in fp32.
  const native = new Map<string, 16 | 32>();
  for (const v of g.input ?? []) if (isFloat(v.name!)) native.set(v.name!, 32);
  for (const t of g.initializer ?? []) {
    if (t.dataType !== DT.FLOAT) continue;
    // Initializers only float32 ops read (LayerNorm's scale and bias) stay float32: no Cast.
    const readers = ed.consumers(t.name!);
    if (readers.length > 0 && readers.every(keep32)) {
      native.set(t.name!, 32);
      continue;
    }
    rewrite(t, halfTensor(t.name!, dimsOf(t), readFloats(t)));
    native.set(t.name!, 16);
    rec.convertedInitializers++;
  }

  const casts = new Map<string, string>();
  const castTo = (tensor: string, to: 16 | 32, out: NodeProto[]): string => {
    const key = `${tensor}@${to}`;
    let name = casts.get(key);
    if (!name) {
      const c = ed.make('Cast', [tensor], { to: to === 16 ? DT.FLOAT16 : DT.FLOAT }, [ed.fresh(`${tensor}_fp${to}`)]);
      out.push(c);
      rec.castsInserted++;
      name = c.output![0]!;
      casts.set(key, name);
    }
    return name;
  };

  const result: NodeProto[] = [];
  for (const n of [...ed.nodes]) {
    const want: 16 | 32 = keep32(n) ? 32 : 16;
    if (want === 32) rec.keptFp32Nodes++;
    n.input = (n.input ?? []).map((i) => {
      const have = native.get(i);
      return have === undefined || have === want || !i ? i : castTo(i, want, result);
    });
    if (want === 16) retype(n);
    result.push(n);
    for (const o of n.output ?? []) if (isFloat(o)) native.set(o, want);
  }
  // Graph outputs keep float32: the producer writes to a renamed tensor, a Cast restores the name.
  for (const v of g.output ?? []) {
    if (native.get(v.name!) !== 16) continue;
    const producer = result.find((n) => n.output?.includes(v.name!))!;
    const inner = ed.fresh(`${v.name}_fp16`);
    producer.output = producer.output!.map((o) => (o === v.name ? inner : o));
    for (const n of result) if (n !== producer) n.input = n.input!.map((i) => (i === v.name ? inner : i));
    result.push(ed.make('Cast', [inner], { to: DT.FLOAT }, [v.name!]));
    rec.castsInserted++;
  }
  g.node = result;
  // Shapes and types inside the graph are re-inferred by the runtime; stale float32 entries would contradict it.
  g.valueInfo = [];
  ed.pruneInitializers();
  return rec;
}

/** A converted node's own float constants and target types become float16. */
function retype(n: NodeProto): void {
  for (const a of n.attribute ?? []) {
    if (n.opType === 'Cast' && a.name === 'to' && toNum(a.i) === DT.FLOAT) a.i = DT.FLOAT16;
    if ((n.opType === 'Constant' || n.opType === 'ConstantOfShape') && a.name === 'value' && a.t?.dataType === DT.FLOAT) {
      a.t = halfTensor(a.t.name ?? '', dimsOf(a.t), readFloats(a.t));
    }
  }
}

/**
 * The source graph with every float32 weight rounded to float16 and back: what the fp16 weights
 * cost in accuracy, measurable on a CPU that has no fast fp16 kernels.
 */
export function roundWeightsToFp16(ed: GraphEditor): number {
  let n = 0;
  for (const t of ed.model.graph!.initializer ?? []) {
    if (t.dataType !== DT.FLOAT) continue;
    const rounded = halfTensor(t.name!, dimsOf(t), readFloats(t));
    rewrite(t, floatTensor(t.name!, dimsOf(t), readFloats(rounded)));
    n++;
  }
  return n;
}
