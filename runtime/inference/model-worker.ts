/**
 * The model in a worker thread. onnxruntime-node 1.30 runs session.run synchronously on the JS
 * thread that calls it, so with the model on the server's main thread nothing else happens while
 * a batch runs: no request is read, tokenised or answered. On a GPU that stalls the event loop for
 * the whole kernel time. loadModelInWorker gives the same LoadedModel with session.run on its own
 * thread: encode() stays here (same tokenizer, so validation and token counts are unchanged),
 * embed() sends token ids over and gets the vectors back with their buffers transferred.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { EmbedctlError, ExternalError, UsageError } from '../../common/errors.js';
import { packageRoot } from '../../common/paths.js';
import { loadModel, type LoadOptions, type Model } from './model.js';
import { loadBundleTokenizer, tokenizerFacade } from './tokenizer.js';
import type { Encoded, LoadedModel, ModelManifest } from './types.js';

export type ModelWorkerSetting = 'on' | 'off' | 'auto';

export interface WorkerInit {
  embedctlModelWorker: true;
  dirOrName: string;
  opts: Omit<LoadOptions, 'log'>;
}

/** An error as data: enough to rebuild the same class (and so the same exit code) on this side. */
export interface WireError {
  kind: 'usage' | 'external' | 'error';
  message: string;
  field?: string;
  system?: string;
  hint?: string;
}

export function toWire(err: unknown): WireError {
  if (err instanceof UsageError) return { kind: 'usage', message: err.message, field: err.field, hint: err.hint };
  if (err instanceof ExternalError) return { kind: 'external', message: err.message, system: err.system, hint: err.hint };
  if (err instanceof EmbedctlError) return { kind: 'error', message: err.message, hint: err.hint };
  return { kind: 'error', message: err instanceof Error ? err.message : String(err) };
}

const strip = (message: string, prefix: string | undefined) => (prefix && message.startsWith(`${prefix}: `) ? message.slice(prefix.length + 2) : message);

export function fromWire(e: WireError): Error {
  if (e.kind === 'usage') return new UsageError(strip(e.message, e.field), { field: e.field, hint: e.hint });
  if (e.kind === 'external') return new ExternalError(e.system ?? 'model', strip(e.message, e.system), { hint: e.hint });
  return e.hint ? new EmbedctlError(e.message, { hint: e.hint }) : new Error(e.message);
}

export interface WorkerModel extends Model {
  /** The thread running the session (tests end it to play a crash). */
  worker: Worker;
  /** Why the model can no longer embed (the worker died), or undefined while it can; /health reports it. */
  fault(): string | undefined;
  /** Calls `listener` once with the reason when the thread dies (at once if it already has); not on close(). */
  onFault(listener: (reason: string) => void): void;
}

/**
 * The compiled worker script beside this file. Running from sources (vitest transpiles TS in the
 * main thread only; a worker gets plain Node), the compiled copy in dist/ stands in.
 */
function entryScript(): URL {
  const beside = new URL('./model-worker-entry.js', import.meta.url);
  if (existsSync(fileURLToPath(beside))) return beside;
  const built = join(packageRoot(), 'dist', 'runtime', 'inference', 'model-worker-entry.js');
  if (existsSync(built)) return new URL(`file://${built}`);
  throw new ExternalError('model worker', `no compiled worker script at ${fileURLToPath(beside)} or ${built}`, { hint: 'run "npx tsc -p tsconfig.json"' });
}

type Pending = { resolve: (v: Float32Array[]) => void; reject: (e: Error) => void };

export async function loadModelInWorker(dirOrName: string, opts: LoadOptions = {}): Promise<WorkerModel> {
  const { log = () => {}, ...rest } = opts;
  const init: WorkerInit = { embedctlModelWorker: true, dirOrName, opts: rest };
  const worker = new Worker(entryScript(), {
    workerData: init,
    // The worker's process.env is a copy taken now; loadModel reads EMBEDCTL_* from opts.env when given.
    env: opts.env ? { ...process.env, ...opts.env } : process.env,
  });

  const pending = new Map<number, Pending>();
  let nextId = 1;
  let fault: string | undefined;
  const faultListeners: Array<(reason: string) => void> = [];
  let closing = false;
  let loaded: ((v: { manifest: ModelManifest; provider: string; dir: string }) => void) | undefined;
  let loadFailed: ((e: Error) => void) | undefined;
  const load = new Promise<{ manifest: ModelManifest; provider: string; dir: string }>((resolve, reject) => {
    loaded = resolve;
    loadFailed = reject;
  });
  // Idle, the thread must not keep a finished CLI or test process alive; busy, it must.
  const setRef = () => (pending.size > 0 ? worker.ref() : worker.unref());

  const die = (reason: string) => {
    if (fault) return;
    fault = `the model worker thread ${reason}`;
    const err = new ExternalError('model worker', `${fault}; this runtime can no longer embed`, { hint: 'restart the runtime; its log has the cause' });
    loadFailed?.(err);
    for (const p of pending.values()) p.reject(err);
    pending.clear();
    setRef();
    for (const l of faultListeners.splice(0)) l(fault);
  };

  worker.on('message', (msg: { type: string; id?: number; line?: string; vectors?: Float32Array[]; error?: WireError } & Record<string, unknown>) => {
    switch (msg.type) {
      case 'log':
        log(msg.line!);
        return;
      case 'loaded':
        loaded?.(msg as unknown as { manifest: ModelManifest; provider: string; dir: string });
        return;
      case 'load_failed':
        loadFailed?.(fromWire(msg.error!));
        return;
      case 'result':
      case 'embed_failed': {
        const p = pending.get(msg.id!);
        if (!p) return;
        pending.delete(msg.id!);
        setRef();
        if (msg.type === 'result') p.resolve(msg.vectors!);
        else p.reject(fromWire(msg.error!));
        return;
      }
    }
  });
  worker.on('error', (err) => die(`crashed: ${err.message.split('\n')[0]}`));
  worker.on('exit', (code) => {
    if (!closing) die(`exited (code ${code})`);
  });

  let meta: { manifest: ModelManifest; provider: string; dir: string };
  try {
    meta = await load;
  } catch (err) {
    closing = true;
    await worker.terminate();
    throw err;
  }
  const { manifest, provider, dir } = meta;
  const tokenizer = loadBundleTokenizer(dir, manifest.maxTokens);
  log(`model: running ${manifest.name} in a worker thread (thread ${worker.threadId})`);
  setRef();

  const embed = (batch: Encoded[]): Promise<Float32Array[]> => {
    if (batch.length === 0) return Promise.resolve([]);
    if (fault) return Promise.reject(new ExternalError('model worker', `${fault}; this runtime can no longer embed`, { hint: 'restart the runtime; its log has the cause' }));
    if (closing) return Promise.reject(new ExternalError('model worker', 'the model is closed'));
    // One flat buffer of ids plus row offsets: one transfer instead of a structured clone of arrays.
    const offsets = new Int32Array(batch.length + 1);
    for (let r = 0; r < batch.length; r++) offsets[r + 1] = offsets[r]! + batch[r]!.ids.length;
    const ids = new Int32Array(offsets[batch.length]!);
    const fullLengths = new Int32Array(batch.length);
    batch.forEach((e, r) => {
      ids.set(e.ids, offsets[r]!);
      fullLengths[r] = e.fullLength;
    });
    const id = nextId++;
    return new Promise<Float32Array[]>((resolve, reject) => {
      pending.set(id, { resolve, reject });
      setRef();
      const tokenRows = batch.flatMap((e, r) => (e.tokens ? [r] : []));
      worker.postMessage({ type: 'embed', id, ids, offsets, fullLengths, task: batch[0]!.task, tokenRows }, [ids.buffer, offsets.buffer, fullLengths.buffer]);
    });
  };

  let closed: Promise<void> | undefined;
  return {
    manifest,
    provider,
    dir,
    worker,
    fault: () => fault,
    onFault(listener) {
      if (fault) queueMicrotask(() => listener(fault!));
      else faultListeners.push(listener);
    },
    ...tokenizerFacade(tokenizer, embed),
    embed,
    close() {
      return (closed ??= (async () => {
        closing = true;
        if (!fault) {
          // The worker releases the session (GPU memory) first: terminate() while a native
          // session.run is in progress can abort the whole process (onnxruntime-node 1.30 throws
          // into the dying thread). A wedged worker gets 5 s, then is terminated regardless.
          worker.ref();
          const released = new Promise<void>((resolve) => {
            const onMsg = (m: { type: string }) => m.type === 'closed' && resolve();
            worker.on('message', onMsg);
            worker.once('exit', () => resolve());
          });
          worker.postMessage({ type: 'close' });
          await Promise.race([released, new Promise((r) => setTimeout(r, 5000).unref())]);
        }
        const err = new ExternalError('model worker', 'the model was closed while this batch ran');
        for (const p of pending.values()) p.reject(err);
        pending.clear();
        await worker.terminate();
      })());
    },
  };
}

/**
 * Whether --model-worker picks the worker: on/off as said; auto = on when a GPU provider is asked
 * for (the kernel time would otherwise stall the event loop), off for cpu only (see
 * bench-results/runtime.json for the A/B on CPU).
 */
export function wantsModelWorker(setting: ModelWorkerSetting, providers: string[]): boolean {
  if (setting !== 'auto') return setting === 'on';
  return providers.some((p) => p === 'cuda' || p === 'webgpu');
}

/** loadModel or loadModelInWorker, as --model-worker says. */
export function loadRuntimeModel(dirOrName: string, setting: ModelWorkerSetting, opts: LoadOptions = {}): Promise<Model> {
  return wantsModelWorker(setting, opts.providers?.length ? opts.providers : ['cpu']) ? loadModelInWorker(dirOrName, opts) : loadModel(dirOrName, opts);
}
