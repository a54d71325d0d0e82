// `embedctl models optimize` on the tiny models: the written graphs checked with onnx-proto and a
// direct onnxruntime session, the vectors against the runtime's own pooling of the source, the
// gate refusing (exit 3, nothing written), and the result served by a real runtime process.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type Model } from '../runtime/inference/model.js';
import { builtinModelsDir } from '../common/models-registry.js';
import { decodeModel, encodeModel, GraphEditor, roundWeightsToFp16 } from '../src/core/onnx-optimize/index.js';
import { int8Cpu } from '../src/adapters/cpu-info.js';
import { runCli } from './helpers/cli.js';
import { cosine } from './helpers/reference-math.js';
import { startRuntime } from './helpers/runtime.js';

const require = createRequire(import.meta.url);
const { onnx } = require('onnx-proto') as typeof import('onnx-proto');
const FLOAT = 1;
const FLOAT16 = 10;

const TEXTS = ['a short text', 'the quick brown fox jumps over the lazy dog near the river bank', '', 'search query about gpu cost', 'x'.repeat(300)];
let tmp: string;
const src = (name: string) => join(builtinModelsDir(), name);

async function vectors(dir: string, texts = TEXTS): Promise<Float32Array[]> {
  const m: Model = await loadModel(dir);
  try {
    return await m.embed(texts.map((t) => m.encode(t)));
  } finally {
    await m.close();
  }
}

const minCos = (a: Float32Array[], b: Float32Array[]) => Math.min(...a.map((v, i) => cosine(v, b[i]!)));
const ops = (file: string) => decodeModel(readFileSync(file)).graph!.node!.map((n) => n.opType!);

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'embedctl-optimize-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('models optimize --int8', () => {
  it('quantises every weight MatMul, records the source, and stays within cosine 0.99', async () => {
    const out = join(tmp, 'int8');
    const r = await runCli(['models', 'optimize', 'tiny-bert', '--int8', '--no-rag', '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const doc = r.json<{ schema: string; written: boolean; gate: { pass: boolean; distribution: { min: number }; texts: number }; cpu: { kernel: string } }>();
    expect(doc.schema).toBe('embedctl.models/v1');
    expect(doc.written).toBe(true);
    // The kernel that decides int8's speed on this machine is named with the figures it made.
    expect(doc.cpu.kernel).toBe(int8Cpu().kernel);
    expect(doc.gate.texts).toBeGreaterThan(100);
    const manifest = JSON.parse(readFileSync(join(out, 'embedctl-model.json'), 'utf8'));
    const source = JSON.parse(readFileSync(join(src('tiny-bert'), 'embedctl-model.json'), 'utf8'));
    expect(manifest.optimization.source.sha256).toBe(source.sha256);
    expect(manifest.optimization.steps).toEqual(['int8']);
    expect(manifest.sha256).not.toBe(source.sha256);
    expect(manifest.recipe).toBeUndefined();
    // ORT's offline optimisation fused the quantised groups: no float MatMul on a weight remains.
    const kinds = ops(join(out, 'model.onnx'));
    expect(kinds.filter((k) => k === 'DynamicQuantizeMatMul' || k === 'MatMulIntegerToFloat' || k === 'MatMulInteger').length).toBe(12);
    const weights = decodeModel(readFileSync(join(out, 'model.onnx'))).graph!.initializer!;
    expect(weights.filter((t) => t.dataType === 3 && t.dims!.length === 2).length).toBe(12);
    const a = await vectors(src('tiny-bert'));
    const b = await vectors(out);
    expect(minCos(a, b)).toBeGreaterThanOrEqual(0.99);
    expect(minCos(a, b)).toBeLessThan(1 - 1e-7); // it did change the numbers
    expect(doc.gate.distribution.min).toBeGreaterThanOrEqual(0.99);
  });

  it('refuses a threshold int8 cannot reach: exit 3, the distribution printed, nothing written', async () => {
    const out = join(tmp, 'refused');
    const r = await runCli(['models', 'optimize', 'tiny-bert', '--int8', '--no-rag', '--min-cosine', '1', '--out', out]);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/cosine vs the source over \d+ sample texts \(gate: min >= 1, --min-cosine\)/);
    expect(r.stdout).toMatch(/gate: FAILED/);
    expect(r.stdout).toContain(`int8 kernel ${int8Cpu().kernel} (`);
    expect(r.stderr).toMatch(/below 1 .*no bundle written/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(tmp).filter((f) => f.includes('partial'))).toEqual([]);
  });

  it('rejects bad input with exit 2 and the flag named', async () => {
    const both = await runCli(['models', 'optimize', 'tiny-bert', '--int8', '--fp16', '--out', join(tmp, 'x')]);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--fp16: .*pick one/);
    const exists = await runCli(['models', 'optimize', 'tiny-bert', '--int8', '--out', tmp]);
    expect(exists.code).toBe(2);
    expect(exists.stderr).toMatch(/--out: .*already exists/);
    const level = await runCli(['models', 'optimize', 'tiny-bert', '--int8', '--ort-level', 'max', '--out', join(tmp, 'y')]);
    expect(level.code).toBe(2);
    expect(level.stderr).toMatch(/--ort-level/);
    const dry = await runCli(['models', 'optimize', 'tiny-bert', '--int8', '--dry-run', '--out', join(tmp, 'dry')]);
    expect(dry.code).toBe(0);
    expect(existsSync(join(tmp, 'dry'))).toBe(false);
  });
});

describe('models optimize --pool-in-graph', () => {
  for (const name of ['tiny-bert', 'tiny-bert-cls']) {
    it(`${name}: the graph returns the runtime's own pooled vectors, [batch, dim] instead of [batch, seq, dim]`, async () => {
      const out = join(tmp, `pool-${name}`);
      const r = await runCli(['models', 'optimize', name, '--pool-in-graph', '--no-rag', '--out', out]);
      expect(r.code, r.stderr).toBe(0);
      const manifest = JSON.parse(readFileSync(join(out, 'embedctl-model.json'), 'utf8'));
      expect(manifest).toMatchObject({ pooledByGraph: true, output: 'sentence_embedding' });
      // The runtime pools the source itself; the result's graph does it.
      expect(minCos(await vectors(src(name)), await vectors(out))).toBeGreaterThanOrEqual(0.99999);

      const ids = [[2, 40, 41, 3, 0, 0], [2, 50, 51, 52, 53, 3]];
      const feeds = {
        input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.flat(), BigInt), [2, 6]),
        attention_mask: new ort.Tensor('int64', BigInt64Array.from(ids.flat(), (x, i) => BigInt(i < 4 || i >= 6 ? 1 : 0)), [2, 6]),
        token_type_ids: new ort.Tensor('int64', new BigInt64Array(12), [2, 6]),
      };
      const before = await ort.InferenceSession.create(join(src(name), 'model.onnx'));
      const after = await ort.InferenceSession.create(join(out, 'model.onnx'));
      const b = (await before.run(feeds)).last_hidden_state!;
      const a = (await after.run(feeds)).sentence_embedding!;
      expect(after.outputNames).toEqual(['sentence_embedding']);
      expect(b.dims).toEqual([2, 6, 32]);
      expect(a.dims).toEqual([2, 32]);
      expect(a.size).toBe(b.size / 6);
      await before.release();
      await after.release();
    });
  }

  it('refuses a model whose graph already pools', async () => {
    const out = join(tmp, 'pool-again');
    expect((await runCli(['models', 'optimize', 'tiny-bert', '--pool-in-graph', '--no-rag', '--ort-level', 'off', '--out', out])).code).toBe(0);
    const again = await runCli(['models', 'optimize', out, '--pool-in-graph', '--out', join(tmp, 'pool-twice')]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/--pool-in-graph: .*already returns pooled vectors/);
  });
});

describe('models optimize --fp16', () => {
  it('float16 weights and compute, fp32 where range matters, io types kept; close to the source', async () => {
    const out = join(tmp, 'fp16');
    const r = await runCli(['models', 'optimize', 'tiny-bert', '--fp16', '--pool-in-graph', '--no-rag', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/ORT +skipped: an fp16 graph is optimised by the GPU provider/);
    const g = decodeModel(readFileSync(join(out, 'model.onnx'))).graph!;
    const inits = new Map(g.initializer!.map((t) => [t.name!, t]));
    const producers = new Map(g.node!.flatMap((n) => n.output!.map((o) => [o, n] as const)));
    const matmulWeights = g.node!.filter((n) => n.opType === 'MatMul' && inits.has(n.input![1]!)).map((n) => inits.get(n.input![1]!)!);
    expect(matmulWeights.length).toBe(12);
    expect(matmulWeights.every((t) => t.dataType === FLOAT16)).toBe(true);
    // LayerNorm and Softmax read float32: a float32 initializer or a Cast to float.
    for (const n of g.node!.filter((x) => x.opType === 'LayerNormalization' || x.opType === 'Softmax')) {
      const x = n.input![0]!;
      expect(producers.get(x)?.opType, `${n.name} input`).toBe('Cast');
      expect(Number(producers.get(x)!.attribute![0]!.i)).toBe(FLOAT);
      for (const p of n.input!.slice(1)) if (inits.has(p)) expect(inits.get(p)!.dataType).toBe(FLOAT);
    }
    // Pooling was appended in float32, after the cast back of the hidden states.
    const hiddenSum = g.node!.find((n) => n.opType === 'ReduceSum' && producers.get(n.input![0]!)?.opType === 'Mul')!;
    const hidden = producers.get(producers.get(hiddenSum.input![0]!)!.input![0]!)!;
    expect(hidden.opType).toBe('Cast');
    expect(Number(hidden.attribute![0]!.i)).toBe(FLOAT);
    expect(g.input!.map((v) => v.type!.tensorType!.elemType)).toEqual([7, 7, 7]);
    expect(g.output!.map((v) => v.type!.tensorType!.elemType)).toEqual([FLOAT]);

    // ORT's load-time checks (type and shape inference) accept it; on CPU it runs with casts.
    const s = await ort.InferenceSession.create(join(out, 'model.onnx'));
    expect(s.outputNames).toEqual(['sentence_embedding']);
    await s.release();
    const source = await vectors(src('tiny-bert'));
    expect(minCos(source, await vectors(out))).toBeGreaterThanOrEqual(0.999);

    // Its fp16 weights cast back to fp32 in the source graph: within cosine 0.9999 of the source.
    const ed = new GraphEditor(decodeModel(readFileSync(join(src('tiny-bert'), 'model.onnx'))));
    expect(roundWeightsToFp16(ed)).toBeGreaterThan(12);
    const emu = join(tmp, 'fp16-emulated');
    const { cpSync, writeFileSync } = await import('node:fs');
    cpSync(src('tiny-bert'), emu, { recursive: true });
    writeFileSync(join(emu, 'model.onnx'), encodeModel(ed.model));
    const emulated = await vectors(emu);
    expect(minCos(source, emulated)).toBeGreaterThanOrEqual(0.9999);
    expect(minCos(source, emulated)).toBeLessThan(1 - 1e-9);
  });
});

describe('an optimised bundle is served like any other', () => {
  it('serve --model DIR answers with the pooled-in-graph int8 vectors', async () => {
    const out = join(tmp, 'serve-me');
    const r = await runCli(['models', 'optimize', 'tiny-bert', '--int8', '--pool-in-graph', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/retrieval cost on the shipped RAG sample \(\d+ queries, \d+ passages\):\n {2}overlap@10 with the source's top 10: mean 0\.9\d+/);
    const rt = await startRuntime({ model: out });
    try {
      const res = await fetch(`${rt.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: TEXTS.slice(0, 2) }) });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { data: Array<{ embedding: number[] }> };
      const want = await vectors(src('tiny-bert'), TEXTS.slice(0, 2));
      body.data.forEach((d, i) => expect(cosine(d.embedding, want[i]!)).toBeGreaterThanOrEqual(0.99));
      // TEI's /info says what the weights are (it said float32 for every bundle before).
      expect(((await (await fetch(`${rt.url}/info`)).json()) as { model_dtype: string }).model_dtype).toBe('int8');
    } finally {
      await rt.stop();
    }
  });
});

it('onnx-proto round trip keeps a graph byte-identical when nothing changes', () => {
  const bytes = readFileSync(join(src('tiny-bert'), 'model.onnx'));
  expect(Buffer.from(encodeModel(decodeModel(bytes))).equals(Buffer.from(onnx.ModelProto.encode(onnx.ModelProto.decode(bytes)).finish()))).toBe(true);
});
