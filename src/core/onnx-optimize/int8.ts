/**
 * Dynamic int8 quantisation of the weight matrices, laid out as ONNX Runtime's own
 * quantize_dynamic writes it (QOperator format), so ORT's optimiser fuses each group into one
 * DynamicQuantizeMatMul / MatMulIntegerToFloat kernel:
 *
 *   x -> DynamicQuantizeLinear -> (xq uint8, xs, xzp)          once per activation
 *   MatMulInteger(xq, Wq int8 [K, N], xzp, Wzp int8 [N]) -> int32
 *   Cast(float) * (xs * Ws[N]) -> the MatMul's original output
 *
 * Weights are symmetric per output channel (column). On x86 CPUs without VNNI, MLAS multiplies
 * uint8 x int8 pairs with a saturating 16-bit add (vpmaddubsw): 255 * 127 * 2 overflows it, so the
 * weights keep 7 bits there ("reduce range", as ORT recommends for non-VNNI machines).
 */
import { dimsOf, floatTensor, GraphEditor, int8Tensor, intAttr, readFloats, DT, getAttr, type NodeProto } from './graph.js';

export interface Int8Options {
  /** Weights in [-64, 63] instead of [-127, 127] (see above). */
  reduceRange: boolean;
  /** Matrices with fewer elements than this stay float (the quantise step would cost more). */
  minElements?: number;
}

export interface Int8Record {
  quantized: number;
  skipped: Array<{ node: string; why: string }>;
  weightBytesBefore: number;
  weightBytesAfter: number;
}

/** Per-column symmetric int8 of a [K, N] row-major matrix. */
export function quantizePerColumn(w: Float32Array, k: number, n: number, qmax: number): { q: Int8Array; scale: Float32Array } {
  const scale = new Float32Array(n);
  for (let r = 0; r < k; r++) for (let c = 0; c < n; c++) scale[c] = Math.max(scale[c]!, Math.abs(w[r * n + c]!));
  for (let c = 0; c < n; c++) scale[c] = scale[c]! > 0 ? scale[c]! / qmax : 1;
  const q = new Int8Array(k * n);
  for (let r = 0; r < k; r++) {
    for (let c = 0; c < n; c++) q[r * n + c] = Math.max(-qmax, Math.min(qmax, Math.round(w[r * n + c]! / scale[c]!)));
  }
  return { q, scale };
}

function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = w[r * cols + c]!;
  return t;
}

/** The float [K, N] weight a node multiplies its activation by, or why it has none we can take. */
function weightOf(ed: GraphEditor, node: NodeProto): { w: Float32Array; k: number; n: number; alpha: number } | string {
  const b = ed.inits.get(node.input![1]!);
  if (!b) return 'weight is not a constant (activation x activation)';
  if (b.dataType !== DT.FLOAT) return `weight is type ${b.dataType}, not float32`;
  const dims = dimsOf(b);
  if (dims.length !== 2) return `weight has ${dims.length} dimensions, not 2`;
  if (node.opType === 'MatMul') return { w: readFloats(b), k: dims[0]!, n: dims[1]!, alpha: 1 };
  if (intAttr(node, 'transA', 0)) return 'Gemm with transA';
  const alpha = getAttr(node, 'alpha')?.f ?? 1;
  return intAttr(node, 'transB', 0) ? { w: transpose(readFloats(b), dims[0]!, dims[1]!), k: dims[1]!, n: dims[0]!, alpha } : { w: readFloats(b), k: dims[0]!, n: dims[1]!, alpha };
}

export function quantizeInt8(ed: GraphEditor, o: Int8Options): Int8Record {
  const qmax = o.reduceRange ? 63 : 127;
  const rec: Int8Record = { quantized: 0, skipped: [], weightBytesBefore: 0, weightBytesAfter: 0 };
  // One DynamicQuantizeLinear per activation: Q, K and V projections share their input.
  const quantizedInputs = new Map<string, string[]>();
  const targets = ed.nodes.filter((n) => (n.opType === 'MatMul' || n.opType === 'Gemm') && (!n.domain || n.domain === 'ai.onnx'));
  for (const node of targets) {
    const got = weightOf(ed, node);
    if (typeof got === 'string') {
      // Attention's Q x K and P x V are activation products: expected, not worth reporting.
      if (!got.startsWith('weight is not a constant')) rec.skipped.push({ node: node.name ?? node.opType!, why: got });
      continue;
    }
    const { w, k, n, alpha } = got;
    if (k * n < (o.minElements ?? 0)) {
      rec.skipped.push({ node: node.name ?? node.opType!, why: `only ${k * n} weights` });
      continue;
    }
    const x = node.input![0]!;
    const at = ed.nodes.indexOf(node);
    const before: NodeProto[] = [];
    let xq = quantizedInputs.get(x);
    if (!xq) {
      const dql = ed.make('DynamicQuantizeLinear', [x], {}, [ed.fresh(`${x}_quantized`), ed.fresh(`${x}_scale`), ed.fresh(`${x}_zero_point`)]);
      before.push(dql);
      xq = dql.output!;
      quantizedInputs.set(x, xq);
    }
    const { q, scale } = quantizePerColumn(w, k, n, qmax);
    const base = node.input![1]!;
    const wq = ed.addInit(int8Tensor(`${base}_quantized`, [k, n], q));
    const wzp = ed.addInit(int8Tensor(`${base}_zero_point`, [n], new Int8Array(n)));
    const ws = ed.addInit(floatTensor(`${base}_scale`, [n], alpha === 1 ? scale : scale.map((s) => s * alpha)));
    const mmi = ed.make('MatMulInteger', [xq[0]!, wq, xq[2]!, wzp]);
    const cast = ed.make('Cast', [mmi.output![0]!], { to: DT.FLOAT });
    const scales = ed.make('Mul', [xq[1]!, ws]);
    const isGemm = node.opType === 'Gemm';
    const c = isGemm ? node.input![2] : undefined;
    const y = node.output![0]!;
    const mul = ed.make('Mul', [cast.output![0]!, scales.output![0]!], {}, c ? undefined : [y]);
    const group = [...before, mmi, cast, scales, mul];
    if (c) {
      const beta = getAttr(node, 'beta')?.f ?? 1;
      const bias = beta === 1 ? c : ed.make('Mul', [c, ed.addInit(floatTensor('gemm_beta', [], [beta]))]);
      if (typeof bias !== 'string') group.push(bias);
      group.push(ed.make('Add', [mul.output![0]!, typeof bias === 'string' ? bias : bias.output![0]!], {}, [y]));
    }
    // The DynamicQuantizeLinear must come before every MatMulInteger that reads it: place the
    // group where the first consumer of x stood.
    ed.nodes.splice(at, 1, ...group);
    rec.quantized++;
    rec.weightBytesBefore += k * n * 4;
    rec.weightBytesAfter += k * n + n * 5;
  }
  ed.pruneInitializers();
  return rec;
}
