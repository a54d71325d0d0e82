// A tiny ONNX graph builder over onnx-proto, shared by build-models.js and make-test-model.js.
// Plain ESM JavaScript: it runs at npm postinstall, before tsc has produced dist/.
// Everything written here is deterministic: no timestamps, no random names, tensors stored as
// little-endian raw_data, so the same recipe always gives the same bytes (and the same sha256).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { onnx } = require('onnx-proto');

export const DT = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, FLOAT16: 10 };
export const OPSET = 18;
const IR_VERSION = 8;

function rawBytes(dataType, values) {
  switch (dataType) {
    case DT.FLOAT: {
      const a = values instanceof Float32Array ? values : Float32Array.from(values);
      return littleEndian(a);
    }
    case DT.FLOAT16: {
      const a = values instanceof Uint16Array ? values : Uint16Array.from(values);
      return littleEndian(a);
    }
    case DT.INT8: {
      const a = values instanceof Int8Array ? values : Int8Array.from(values);
      return new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice();
    }
    case DT.INT64: {
      const a = BigInt64Array.from(values, (v) => BigInt(v));
      return littleEndian(a);
    }
    case DT.INT32: {
      const a = Int32Array.from(values);
      return littleEndian(a);
    }
    default:
      throw new Error(`unsupported tensor data type ${dataType}`);
  }
}

/** Typed-array bytes in ONNX's little-endian order, whatever the host's order is. */
function littleEndian(a) {
  const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice();
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] === 1) return bytes;
  const w = a.BYTES_PER_ELEMENT;
  for (let i = 0; i < bytes.length; i += w) bytes.subarray(i, i + w).reverse();
  return bytes;
}

function attribute(name, value) {
  const A = onnx.AttributeProto.AttributeType;
  // JS cannot tell 1.0 from 1: a float attribute that happens to be whole is passed as {f: 1}.
  if (value && typeof value === 'object' && typeof value.f === 'number') return { name, type: A.FLOAT, f: value.f };
  if (typeof value === 'number' && Number.isInteger(value) && !Object.is(value, -0)) {
    return { name, type: A.INT, i: value };
  }
  if (typeof value === 'number') return { name, type: A.FLOAT, f: value };
  if (typeof value === 'string') return { name, type: A.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value) && value.every((v) => Number.isInteger(v))) return { name, type: A.INTS, ints: value };
  if (Array.isArray(value)) return { name, type: A.FLOATS, floats: value };
  if (value && typeof value === 'object' && value.tensor) return { name, type: A.TENSOR, t: value.tensor };
  throw new Error(`unsupported attribute ${name}`);
}

function valueInfo(name, elemType, shape) {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: shape.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  };
}

export class GraphBuilder {
  constructor(name) {
    this.name = name;
    this.nodes = [];
    this.initializers = [];
    this.inputs = [];
    this.outputs = [];
    this.counter = 0;
  }

  input(name, elemType, shape) {
    this.inputs.push(valueInfo(name, elemType, shape));
    return name;
  }

  output(name, elemType, shape) {
    this.outputs.push(valueInfo(name, elemType, shape));
    return name;
  }

  /** A constant tensor stored in the file. */
  init(name, dataType, dims, values) {
    this.initializers.push({ name, dataType, dims, rawData: rawBytes(dataType, values) });
    return name;
  }

  /** Shorthand constants; names derive from a counter, so they are stable across runs. */
  f32(values, dims = [values.length]) {
    return this.init(`const_${this.counter++}`, DT.FLOAT, dims, values);
  }

  i64(values, dims = [values.length]) {
    return this.init(`const_${this.counter++}`, DT.INT64, dims, values);
  }

  /**
   * Add a node; returns its output name (or names when `outputs` > 1). `out` names the (first)
   * output explicitly, e.g. the graph output.
   */
  op(opType, inputs, attrs = {}, { out, outputs = 1 } = {}) {
    const id = this.counter++;
    const outs = Array.from({ length: outputs }, (_, k) => (k === 0 && out ? out : `${opType.toLowerCase()}_${id}_${k}`));
    this.nodes.push({
      name: `${opType}_${id}`,
      opType,
      input: inputs,
      output: outs,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outputs === 1 ? outs[0] : outs;
  }

  /** The serialised ModelProto. */
  toBytes({ producer = 'embedctl', docString = '' } = {}) {
    const model = onnx.ModelProto.create({
      irVersion: IR_VERSION,
      producerName: producer,
      producerVersion: '1',
      docString,
      opsetImport: [{ domain: '', version: OPSET }],
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

/** float32 -> IEEE half bits (round to nearest even), for the optional fp16 variants. */
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function toHalf(value) {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  let exp = ((x >>> 23) & 0xff) - 127 + 15;
  let mant = x & 0x7fffff;
  if (exp >= 31) return sign | 0x7c00 | (((x >>> 23) & 0xff) === 0xff && mant ? 0x200 : 0);
  if (exp <= 0) {
    if (exp < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - exp;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (exp << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}
