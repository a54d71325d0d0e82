/**
 * A small editor over a decoded ONNX ModelProto (onnx-proto), shared by the int8, fp16 and
 * pooling passes: tensor reading and writing, fresh names, node insertion, consumer lookup and
 * a dtype inference good enough for encoder graphs. Pure: bytes in, bytes out.
 */
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
export type ModelProto = onnxProto.onnx.IModelProto;
export type NodeProto = onnxProto.onnx.INodeProto;
export type TensorProto = onnxProto.onnx.ITensorProto;
export type AttributeProto = onnxProto.onnx.IAttributeProto;

export const DT = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, BOOL: 9, FLOAT16: 10, DOUBLE: 11 } as const;
const A = onnx.AttributeProto.AttributeType;

/** protobufjs hands int64 fields back as Long objects; every count here fits a double. */
export function toNum(v: unknown): number {
  if (typeof v === 'number') return v;
  if (v && typeof v === 'object' && 'toNumber' in v) return (v as { toNumber(): number }).toNumber();
  return Number(v);
}

export function decodeModel(bytes: Uint8Array): ModelProto {
  return onnx.ModelProto.decode(bytes);
}

export function encodeModel(model: ModelProto): Uint8Array {
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}

export function opsetVersion(model: ModelProto): number {
  const d = model.opsetImport?.find((o) => !o.domain || o.domain === 'ai.onnx');
  return d ? toNum(d.version) : 1;
}

/* ---------- half precision ---------- */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 -> IEEE 754 half bits, round to nearest even, overflow to infinity. */
export function floatToHalf(value: number): number {
  f32[0] = value;
  const bits = u32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp8 = (bits >>> 23) & 0xff;
  const frac = bits & 0x7fffff;
  if (exp8 === 0xff) return sign | 0x7c00 | (frac ? 0x200 : 0);
  const e = exp8 - 112; // rebias 127 -> 15
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const full = frac | 0x800000;
    const shift = 14 - e;
    const q = full >>> shift;
    const r = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    return sign | (q + (r > half || (r === half && q & 1) ? 1 : 0));
  }
  const q = (e << 10) | (frac >>> 13);
  const r = frac & 0x1fff;
  // A carry out of the mantissa bumps the exponent, which is the right rounding too.
  return sign | (q + (r > 0x1000 || (r === 0x1000 && q & 1) ? 1 : 0));
}

export function halfToFloat(h: number): number {
  const exp = (h >>> 10) & 0x1f;
  const frac = h & 0x3ff;
  const mag = exp === 0 ? frac * 2 ** -24 : exp === 31 ? (frac ? NaN : Infinity) : (1024 + frac) * 2 ** (exp - 25);
  return h & 0x8000 ? -mag : mag;
}

/* ---------- tensors ---------- */

function le(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export const dimsOf = (t: TensorProto): number[] => (t.dims ?? []).map(toNum);
export const sizeOf = (dims: number[]): number => dims.reduce((a, b) => a * b, 1);

/** A FLOAT or FLOAT16 tensor's values as float32, from raw_data or the typed fields. */
export function readFloats(t: TensorProto): Float32Array {
  const n = sizeOf(dimsOf(t));
  const raw = t.rawData && t.rawData.length ? t.rawData : undefined;
  if (t.dataType === DT.FLOAT) {
    if (!raw) return Float32Array.from(t.floatData ?? []);
    const v = le(raw);
    return Float32Array.from({ length: n }, (_, i) => v.getFloat32(i * 4, true));
  }
  if (t.dataType === DT.FLOAT16) {
    if (!raw) return Float32Array.from(t.int32Data ?? [], halfToFloat);
    const v = le(raw);
    return Float32Array.from({ length: n }, (_, i) => halfToFloat(v.getUint16(i * 2, true)));
  }
  throw new Error(`tensor ${t.name} is type ${t.dataType}, not float`);
}

export function floatTensor(name: string, dims: number[], values: ArrayLike<number>): TensorProto {
  const raw = new Uint8Array(values.length * 4);
  const v = le(raw);
  for (let i = 0; i < values.length; i++) v.setFloat32(i * 4, values[i]!, true);
  return { name, dataType: DT.FLOAT, dims, rawData: raw };
}

export function halfTensor(name: string, dims: number[], values: ArrayLike<number>): TensorProto {
  const raw = new Uint8Array(values.length * 2);
  const v = le(raw);
  for (let i = 0; i < values.length; i++) v.setUint16(i * 2, floatToHalf(values[i]!), true);
  return { name, dataType: DT.FLOAT16, dims, rawData: raw };
}

export function int8Tensor(name: string, dims: number[], values: Int8Array): TensorProto {
  return { name, dataType: DT.INT8, dims, rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength).slice() };
}

export function int64Tensor(name: string, dims: number[], values: number[]): TensorProto {
  const raw = new Uint8Array(values.length * 8);
  const v = le(raw);
  values.forEach((x, i) => v.setBigInt64(i * 8, BigInt(x), true));
  return { name, dataType: DT.INT64, dims, rawData: raw };
}

/* ---------- attributes ---------- */

export type AttrValue = number | number[] | { f: number } | { t: TensorProto };

export function attr(name: string, value: AttrValue): AttributeProto {
  if (typeof value === 'number') return { name, type: A.INT, i: value };
  if (Array.isArray(value)) return { name, type: A.INTS, ints: value };
  if ('f' in value) return { name, type: A.FLOAT, f: value.f };
  return { name, type: A.TENSOR, t: value.t };
}

export function getAttr(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute?.find((a) => a.name === name);
}

export const intAttr = (node: NodeProto, name: string, dflt: number): number => {
  const a = getAttr(node, name);
  return a ? toNum(a.i) : dflt;
};

/* ---------- the editor ---------- */

export class GraphEditor {
  readonly model: ModelProto;
  private readonly used = new Set<string>();
  private counter = 0;
  readonly inits = new Map<string, TensorProto>();

  constructor(model: ModelProto) {
    this.model = model;
    const g = model.graph!;
    g.node ??= [];
    g.initializer ??= [];
    for (const t of g.initializer) this.inits.set(t.name!, t);
    for (const n of g.node) {
      if (n.name) this.used.add(n.name);
      for (const o of [...(n.input ?? []), ...(n.output ?? [])]) this.used.add(o);
    }
    for (const v of [...(g.input ?? []), ...(g.output ?? []), ...(g.valueInfo ?? [])]) this.used.add(v.name!);
    for (const t of g.initializer) this.used.add(t.name!);
  }

  get nodes(): NodeProto[] {
    return this.model.graph!.node!;
  }

  /** A name no tensor or node in the graph has yet. */
  fresh(base: string): string {
    let name = base;
    while (this.used.has(name)) name = `${base}_${++this.counter}`;
    this.used.add(name);
    return name;
  }

  addInit(t: TensorProto): string {
    t.name = this.fresh(t.name!);
    this.model.graph!.initializer!.push(t);
    this.inits.set(t.name, t);
    return t.name;
  }

  /** A node, not yet placed; `place` puts a list of them into the graph in order. */
  make(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, outputs?: string[], domain = ''): NodeProto {
    const name = this.fresh(`embedctl_${opType}`);
    return {
      name,
      opType,
      domain,
      input: inputs,
      output: outputs ?? [this.fresh(`${name}_out`)],
      attribute: Object.entries(attrs).map(([k, v]) => attr(k, v)),
    };
  }

  /** Inserts nodes before position `at` (default: the end). */
  place(nodes: NodeProto[], at = this.nodes.length): void {
    this.nodes.splice(at, 0, ...nodes);
  }

  /** Drops initializers no node, output or subgraph refers to any more. */
  pruneInitializers(): number {
    const refs = new Set<string>();
    for (const n of this.nodes) for (const i of n.input ?? []) refs.add(i);
    for (const o of this.model.graph!.output ?? []) refs.add(o.name!);
    const g = this.model.graph!;
    const before = g.initializer!.length;
    g.initializer = g.initializer!.filter((t) => refs.has(t.name!));
    for (const name of [...this.inits.keys()]) if (!refs.has(name)) this.inits.delete(name);
    return before - g.initializer.length;
  }

  consumers(tensor: string): NodeProto[] {
    return this.nodes.filter((n) => n.input?.includes(tensor));
  }

  isGraphInput(name: string): boolean {
    return (this.model.graph!.input ?? []).some((v) => v.name === name) && !this.inits.has(name);
  }
}

/* ---------- dtype inference ---------- */

const BOOL_OPS = new Set(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'Not', 'And', 'Or', 'Xor', 'IsNaN', 'IsInf']);
const INT64_OPS = new Set(['Shape', 'Size', 'NonZero', 'ArgMax', 'ArgMin']);

/**
 * The element type of every tensor the graph names, as far as the ops here tell: enough to know
 * which tensors are float for the fp16 pass. Nodes must be in topological order (ONNX requires it).
 */
export function inferTypes(model: ModelProto): Map<string, number> {
  const g = model.graph!;
  const types = new Map<string, number>();
  for (const v of [...(g.input ?? []), ...(g.valueInfo ?? []), ...(g.output ?? [])]) {
    const t = v.type?.tensorType?.elemType;
    if (t) types.set(v.name!, t);
  }
  for (const t of g.initializer ?? []) types.set(t.name!, t.dataType!);
  for (const n of g.node ?? []) {
    const ins = (n.input ?? []).map((i) => types.get(i));
    const first = ins.find((t) => t !== undefined);
    const outs: Array<number | undefined> = [];
    const op = n.opType!;
    if (op === 'Cast') outs.push(toNum(getAttr(n, 'to')?.i));
    else if (INT64_OPS.has(op)) outs.push(DT.INT64);
    else if (BOOL_OPS.has(op)) outs.push(DT.BOOL);
    else if (op === 'Constant' || op === 'ConstantOfShape') {
      const v = getAttr(n, 'value');
      const f = getAttr(n, 'value_float') ?? getAttr(n, 'value_floats');
      outs.push(v?.t?.dataType ?? (f ? DT.FLOAT : op === 'ConstantOfShape' ? DT.FLOAT : DT.INT64));
    } else if (op === 'DynamicQuantizeLinear') outs.push(DT.UINT8, DT.FLOAT, DT.UINT8);
    else if (op === 'MatMulInteger') outs.push(DT.INT32);
    else if (op === 'DequantizeLinear') outs.push(DT.FLOAT);
    else if (op === 'Where') outs.push(ins[1] ?? ins[2]);
    else if (op === 'LayerNormalization') outs.push(ins[0], DT.FLOAT, DT.FLOAT);
    else outs.push(ins[0] ?? first);
    (n.output ?? []).forEach((o, k) => {
      const t = outs[k] ?? outs[0];
      if (o && t !== undefined && !types.has(o)) types.set(o, t);
    });
  }
  return types;
}
