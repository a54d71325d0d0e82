// The only importer of onnxruntime-node.
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { ExternalError, UsageError } from '../../common/errors.js';
import { ensureBuiltin, readManifest, resolveModelRef } from '../../common/models-registry.js';
import { loadBundleTokenizer, tokenizerFacade, type BundleTokenizer } from './tokenizer.js';
import type { Encoded, LoadedModel, ModelManifest } from './types.js';

export interface LoadOptions {
  /** Execution providers to try, in order; the first that loads and runs a warm-up batch wins. */
  providers?: string[];
  /** GPU ordinal for cuda. */
  deviceId?: number;
  log?: (line: string) => void;
  intraOpThreads?: number;
  /** For resolving relative bundle paths and the hub cache dir. */
  cwd?: string;
  env?: Record<string, string | undefined>;
}

export interface Model extends LoadedModel {
  /** The bundle directory in use. */
  dir: string;
  /** Runs one tiny batch (loadModel already did, per provider tried). */
  warmup(): Promise<void>;
}

export const KNOWN_PROVIDERS = ['cuda', 'webgpu', 'cpu'] as const;

/** How each provider name is handed to onnxruntime. */
function providerConfig(name: string, deviceId: number): ort.InferenceSession.ExecutionProviderConfig {
  switch (name) {
    case 'cuda':
      // onnxruntime-node 1.30 reads only deviceId from the CUDA provider options (no arena or
      // memory-limit settings reach the C++ side), so GPU memory cannot be capped from here: run
      // one runtime per GPU and size --max-batch-tokens to the card.
      return { name: 'cuda', deviceId } as ort.InferenceSession.ExecutionProviderConfig;
    case 'webgpu':
      return { name: 'webgpu' } as ort.InferenceSession.ExecutionProviderConfig;
    default:
      return name as ort.InferenceSession.ExecutionProviderConfig;
  }
}

const firstLine = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0]!.trim();

let ortEnvSet = false;

export async function loadModel(dirOrName: string, opts: LoadOptions = {}): Promise<Model> {
  const log = opts.log ?? (() => {});
  const providers = opts.providers?.length ? opts.providers : ['cpu'];
  const ref = resolveModelRef(dirOrName, { cwd: opts.cwd, env: opts.env });
  const dir = ref.kind === 'builtin' ? await ensureBuiltin(ref.name, log, opts.env) : ref.dir;
  const manifest = readManifest(dir);
  const tokenizer = loadBundleTokenizer(dir, manifest.maxTokens);

  if (!ortEnvSet) {
    // A provider that cannot load also prints a native error line; we report it ourselves, once.
    ort.env.logLevel = (opts.env ?? process.env).EMBEDCTL_ORT_LOG_LEVEL === 'verbose' ? 'verbose' : 'fatal';
    ortEnvSet = true;
  }

  const sessionOptions: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    interOpNumThreads: 1,
    ...(opts.intraOpThreads ? { intraOpNumThreads: opts.intraOpThreads } : {}),
    // onnxruntime's pool threads spin between runs by default. In the server they share the CPU
    // with the event loop (HTTP, tokenising, batching), so spinning steals the time the next batch
    // needs; EMBEDCTL_ORT_SPIN=1 restores it for a dedicated inference box.
    ...((opts.env ?? process.env).EMBEDCTL_ORT_SPIN === '1'
      ? {}
      : { extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } } }),
  };

  const failures: string[] = [];
  for (const provider of providers) {
    let session: ort.InferenceSession | undefined;
    try {
      session = await ort.InferenceSession.create(join(dir, 'model.onnx'), {
        ...sessionOptions,
        executionProviders: [providerConfig(provider, opts.deviceId ?? 0)],
      });
    } catch (err) {
      failures.push(`${provider}: ${firstLine(err)}`);
      log(`model: execution provider ${provider} unavailable: ${firstLine(err)}`);
      continue;
    }
    const model = makeModel(session, manifest, tokenizer, provider, dir);
    try {
      // Some providers load but fail on the first run (missing kernels, cuDNN): count that as unavailable.
      await model.warmup();
    } catch (err) {
      await session.release().catch(() => {});
      if (err instanceof UsageError) throw err;
      failures.push(`${provider}: ${firstLine(err)}`);
      log(`model: execution provider ${provider} failed its warm-up run: ${firstLine(err)}`);
      continue;
    }
    log(`model: ${manifest.name} (${manifest.dimensions} dims, max ${manifest.maxTokens} tokens) on execution provider ${provider}`);
    return model;
  }
  throw new ExternalError('onnxruntime', `no execution provider could run ${manifest.name} (${failures.join('; ')})`, {
    hint: providers.includes('cpu') ? 'check that model.onnx is a valid ONNX file' : 'add cpu to the providers list (--ep cuda,cpu)',
  });
}

function makeModel(
  session: ort.InferenceSession,
  manifest: ModelManifest,
  tokenizer: BundleTokenizer,
  provider: string,
  dir: string,
): Model {
  const known = new Set(['input_ids', 'attention_mask', 'token_type_ids', 'position_ids', 'task_id']);
  const unknownInputs = session.inputNames.filter((n) => !known.has(n));
  if (unknownInputs.length) {
    throw new UsageError(`${dir}/model.onnx takes inputs embedctl cannot fill: ${unknownInputs.join(', ')}`, { field: '--model' });
  }
  if (!session.outputNames.includes(manifest.output)) {
    throw new UsageError(`${dir}/model.onnx has no output "${manifest.output}" (it has ${session.outputNames.join(', ')}); fix "output" in embedctl-model.json`, {
      field: '--model',
    });
  }
  // Feed what the graph takes; the manifest's list documents it, the session is the authority.
  const feedsWanted = session.inputNames;
  const extra = manifest as ModelManifest & { loraTasks?: string[]; defaultTask?: string };
  // jina-embeddings-v3 picks a LoRA adapter per call via task_id: each batch runs under the task
  // of its inputs (the batcher never mixes them), the manifest's default task when none is given.
  const defaultTaskId = Math.max(0, extra.loraTasks?.indexOf(extra.defaultTask ?? extra.loraTasks[0] ?? '') ?? 0);
  const taskMeta = session.inputMetadata?.find((m) => m.name === 'task_id');
  const taskIsScalar = !taskMeta || !taskMeta.isTensor || taskMeta.shape.length === 0;
  const dim = manifest.dimensions;

  const embed = async (batch: Encoded[]): Promise<Float32Array[]> => {
    if (batch.length === 0) return [];
    const b = batch.length;
    const taskId = batch[0]!.task ?? defaultTaskId;
    // At least one column so an empty text still makes a valid tensor (it pools to a zero vector).
    const seq = Math.max(1, ...batch.map((e) => e.ids.length));
    const ids = new BigInt64Array(b * seq).fill(BigInt(tokenizer.padId));
    const mask = new BigInt64Array(b * seq);
    batch.forEach((e, r) => {
      for (let i = 0; i < e.ids.length; i++) {
        ids[r * seq + i] = BigInt(e.ids[i]!);
        mask[r * seq + i] = 1n;
      }
    });
    const feeds: Record<string, ort.Tensor> = {};
    for (const name of feedsWanted) {
      if (name === 'input_ids') feeds[name] = new ort.Tensor('int64', ids, [b, seq]);
      else if (name === 'attention_mask') feeds[name] = new ort.Tensor('int64', mask, [b, seq]);
      else if (name === 'token_type_ids') feeds[name] = new ort.Tensor('int64', new BigInt64Array(b * seq), [b, seq]);
      else if (name === 'position_ids') {
        const pos = new BigInt64Array(b * seq);
        for (let i = 0; i < pos.length; i++) pos[i] = BigInt(i % seq);
        feeds[name] = new ort.Tensor('int64', pos, [b, seq]);
      } else if (name === 'task_id') {
        feeds[name] = taskIsScalar ? new ort.Tensor('int64', BigInt64Array.of(BigInt(taskId)), []) : new ort.Tensor('int64', new BigInt64Array(b).fill(BigInt(taskId)), [b]);
      }
    }
    const result = await session.run(feeds, [manifest.output]);
    const out = result[manifest.output]!;
    try {
      const data = toFloat32(out);
      return manifest.pooledByGraph || manifest.pooling === 'none'
        ? rows(data, out.dims, b, dim, dir)
        : pool(data, out.dims, mask, b, seq, dim, manifest.pooling, manifest.normalize, dir, batch);
    } finally {
      for (const t of Object.values(result)) t.dispose?.();
    }
  };

  return {
    manifest,
    provider,
    dir,
    ...tokenizerFacade(tokenizer, embed),
    embed,
    async close() {
      await session.release();
    },
  };
}

function toFloat32(t: ort.Tensor): Float32Array {
  if (t.type === 'float32') return t.data as Float32Array;
  if (t.type === 'float16') {
    const src = t.data as unknown as ArrayLike<number>;
    // Newer runtimes hand back a Float16Array, older ones the raw half bits in a Uint16Array.
    if (src instanceof Uint16Array) return Float32Array.from(src, halfToFloat);
    return Float32Array.from(src);
  }
  throw new ExternalError('onnxruntime', `model output is ${t.type}; embedctl reads float32 or float16 outputs`);
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (m / 1024);
  if (e === 31) return m ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + m / 1024);
}

function checkDims(dims: readonly number[], expected: number[], dir: string) {
  if (dims.length !== expected.length || dims.some((d, i) => d !== expected[i])) {
    throw new UsageError(`${dir}/model.onnx returned shape [${dims.join(', ')}], expected [${expected.join(', ')}]; check "dimensions" and "pooledByGraph" in embedctl-model.json`, {
      field: '--model',
    });
  }
}

/** Already pooled: [batch, dim] -> one copy per row (callers may keep them past the next run). */
function rows(data: Float32Array, dims: readonly number[], b: number, dim: number, dir: string): Float32Array[] {
  checkDims(dims, [b, dim], dir);
  return Array.from({ length: b }, (_, r) => data.slice(r * dim, (r + 1) * dim));
}

/** last_hidden_state [batch, seq, dim] -> masked mean or the first ([CLS]) token, then L2. */
function pool(
  data: Float32Array,
  dims: readonly number[],
  mask: BigInt64Array,
  b: number,
  seq: number,
  dim: number,
  pooling: 'mean' | 'cls' | 'none',
  normalize: boolean,
  dir: string,
  batch: Encoded[],
): Float32Array[] {
  checkDims(dims, [b, seq, dim], dir);
  const out: Float32Array[] = [];
  for (let r = 0; r < b; r++) {
    // Padding sits after a row's real tokens: its states are the first ids.length rows.
    if (batch[r]!.tokens) {
      out.push(data.slice(r * seq * dim, (r * seq + batch[r]!.ids.length) * dim));
      continue;
    }
    const v = new Float32Array(dim);
    if (pooling === 'cls') {
      v.set(data.subarray(r * seq * dim, r * seq * dim + dim));
    } else {
      // Accumulate in float64: long inputs sum hundreds of rows.
      const acc = new Float64Array(dim);
      let n = 0;
      for (let t = 0; t < seq; t++) {
        if (mask[r * seq + t] === 0n) continue;
        n++;
        const base = (r * seq + t) * dim;
        for (let d = 0; d < dim; d++) acc[d]! += data[base + d]!;
      }
      for (let d = 0; d < dim; d++) v[d] = n > 0 ? acc[d]! / n : 0;
    }
    if (normalize) l2normalize(v);
    out.push(v);
  }
  return out;
}

export function l2normalize(v: Float32Array): Float32Array {
  let ss = 0;
  for (let i = 0; i < v.length; i++) ss += v[i]! * v[i]!;
  const norm = Math.sqrt(ss);
  if (norm > 1e-12) for (let i = 0; i < v.length; i++) v[i] = v[i]! / norm;
  return v;
}
