/**
 * The worker-thread side of runtime/inference/model-worker.ts: loads the bundle with loadModel (same
 * providers and options as the main thread would) and answers embed messages. onnxruntime-node
 * runs session.run synchronously on its calling thread; here that thread is this one, so the
 * server's event loop keeps reading, tokenising and answering while a batch runs.
 *
 * Protocol (parent -> worker): {type:'embed', id, ids: Int32Array, offsets: Int32Array,
 * fullLengths: Int32Array, task?: number, tokenRows: number[]} (buffers transferred; one LoRA task per batch), {type:'close'}. Worker -> parent: {type:'log'},
 * {type:'loaded', manifest, provider, dir}, {type:'load_failed', error}, {type:'result', id,
 * vectors} (vector buffers transferred), {type:'embed_failed', id, error}, {type:'closed'}.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadModel, type Model } from './model.js';
import { toWire, type WorkerInit } from './model-worker.js';
import type { Encoded } from './types.js';

const port = parentPort;
const init = workerData as WorkerInit | undefined;
// Only as the model worker: importing this file anywhere else (a test runner's own worker) does nothing.
if (port && init?.embedctlModelWorker) {
  let model: Model | undefined;
  const loading = loadModel(init.dirOrName, { ...init.opts, log: (line) => port.postMessage({ type: 'log', line }) }).then(
    (m) => {
      model = m;
      port.postMessage({ type: 'loaded', manifest: m.manifest, provider: m.provider, dir: m.dir });
    },
    (err: unknown) => port.postMessage({ type: 'load_failed', error: toWire(err) }),
  );

  port.on('message', async (msg: { type: string; id?: number; ids?: Int32Array; offsets?: Int32Array; fullLengths?: Int32Array; task?: number; tokenRows?: number[] }) => {
    if (msg.type === 'close') {
      await loading;
      await model?.close().catch(() => {});
      port.postMessage({ type: 'closed' });
      return;
    }
    if (msg.type !== 'embed') return;
    const { id, ids, offsets, fullLengths } = msg as Required<typeof msg>;
    const task = msg.task;
    try {
      if (!model) throw new Error('the model is not loaded');
      // Views over the one transferred buffer; model.ts only reads .length and [i] of ids.
      const batch: Encoded[] = Array.from({ length: fullLengths.length }, (_, r) => ({
        ids: ids.subarray(offsets[r]!, offsets[r + 1]!) as unknown as number[],
        fullLength: fullLengths[r]!,
        ...(task === undefined ? {} : { task }),
        ...(msg.tokenRows?.includes(r) ? { tokens: true } : {}),
      }));
      const vectors = await model.embed(batch);
      // Each vector owns its buffer (model.ts copies rows out of the output tensor); a Set in
      // case a future model path hands back views of one buffer.
      const buffers = [...new Set(vectors.map((v) => v.buffer as ArrayBuffer))];
      port.postMessage({ type: 'result', id, vectors }, buffers);
    } catch (err) {
      port.postMessage({ type: 'embed_failed', id, error: toWire(err) });
    }
  });
}
