import { statSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../../common/errors.js';
import { InferenceError } from './errors.js';
import { ModelService, type ServiceOptions } from './service.js';
import type { LoadedModel } from './types.js';

/**
 * The models one runtime serves, each with its own batcher, found by the request's `model`: the
 * served name (--model-name, else the bundle's name) or one of its aliases (e.g. the hosted
 * model's name, so drop-in clients need no change). No `model` means the first model.
 */

export interface ModelSpec {
  /** What --model said (a built-in name, directory or hub id); shown while loading. */
  ref: string;
  /** Name reported to clients; default: the manifest's name. */
  name?: string;
  aliases?: string[];
  model: LoadedModel | Promise<LoadedModel>;
}

export type SlotState = 'loading' | 'ready' | 'failed';

export class ModelSlot {
  state: SlotState = 'loading';
  service: ModelService | undefined;
  error: string | undefined;
  /** From the start of loading to warmed up. */
  loadMs: number | undefined;
  /** Size of the bundle's model.onnx: what the weights take in (GPU) memory, roughly. */
  weightsBytes: number | undefined;
  readonly ready: Promise<void>;
  private model: LoadedModel | undefined;

  constructor(
    readonly spec: ModelSpec,
    opts: ServiceOptions,
    onReady: (slot: ModelSlot) => void,
    onFault: (slot: ModelSlot, reason: string) => void = () => {},
  ) {
    const t0 = performance.now();
    this.ready = (async () => {
      this.model = await spec.model;
      this.service = await ModelService.start(this.model, opts);
      this.loadMs = Math.round(performance.now() - t0);
      const dir = (this.model as { dir?: string }).dir;
      this.weightsBytes = dir ? statSync(join(dir, 'model.onnx'), { throwIfNoEntry: false })?.size : undefined;
      this.state = 'ready';
      onReady(this);
      // A loaded model that dies later (its worker thread) cannot come back in this process.
      this.service.onFault((reason) => onFault(this, reason));
    })();
    this.ready.catch((err: unknown) => {
      this.error = err instanceof Error ? err.message : String(err);
      this.state = 'failed';
    });
  }

  get name(): string {
    return this.spec.name ?? this.model?.manifest.name ?? this.spec.ref;
  }

  get aliases(): string[] {
    return this.spec.aliases ?? [];
  }

  /** Whether `name` asks for this model. */
  answers(name: string): boolean {
    return name === this.name || this.aliases.includes(name) || (this.model !== undefined && name === this.model.manifest.name);
  }

  /** Whether it loaded and later stopped being able to embed (as opposed to failing to load). */
  get faulted(): boolean {
    return this.state === 'ready' && this.service?.fault() !== undefined;
  }

  /** Why this model can no longer embed, if so (load failure or a dead worker thread). */
  fault(): string | undefined {
    return this.error ?? this.service?.fault();
  }

  /** Answers everything admitted, then stops the batcher (the model stays loaded). */
  async drain(): Promise<void> {
    await this.ready.catch(() => {});
    await this.service?.close();
  }

  /** Frees the model (GPU memory, worker thread); after drain(). */
  async release(): Promise<void> {
    const m = await Promise.resolve(this.spec.model).catch(() => undefined);
    await m?.close().catch(() => {});
  }
}

export class ModelSet {
  readonly slots: ModelSlot[];
  /** Resolves when every model is loaded and warmed up; rejects with the first failure. */
  readonly ready: Promise<void>;

  constructor(specs: ModelSpec[], opts: ServiceOptions, onReady: (slot: ModelSlot) => void = () => {}, onFault?: (slot: ModelSlot, reason: string) => void) {
    if (specs.length === 0) throw new RangeError('at least one model is needed');
    this.slots = specs.map((s) => new ModelSlot(s, opts, onReady, onFault));
    this.ready = Promise.all(this.slots.map((s) => s.ready)).then(() => undefined);
  }

  /** The first model (what a request without `model` gets). */
  get primary(): ModelSlot {
    return this.slots[0]!;
  }

  state(): SlotState {
    if (this.slots.some((s) => s.state === 'failed' || (s.state === 'ready' && s.fault()))) return 'failed';
    return this.slots.every((s) => s.state === 'ready') ? 'ready' : 'loading';
  }

  /** Adds alias=target pairs once the served names are known; a target nothing answers to throws. */
  addAliases(pairs: Array<[string, string]>): void {
    for (const [alias, target] of pairs) {
      const slot = this.slots.find((s) => s.answers(target));
      if (!slot) throw new UsageError(`"${alias}=${target}" names no served model (serving ${this.names().join(', ')})`, { field: '--model-alias' });
      (slot.spec.aliases ??= []).push(alias);
    }
  }

  /** Every name a client may send, served names first. */
  names(): string[] {
    return [...new Set(this.slots.flatMap((s) => [s.name, ...s.aliases]))];
  }

  /**
   * The ready service for `name` (undefined: the first model). An unknown name is a 404 listing
   * what is served; a known model still loading or broken is a 503.
   */
  resolve(name: string | undefined): { slot: ModelSlot; service: ModelService } {
    const slot = name === undefined || name === '' ? this.primary : this.slots.find((s) => s.answers(name));
    if (!slot) {
      if (this.slots.some((s) => s.state === 'loading')) throw notReady('the models are still loading; retry shortly');
      throw new InferenceError('model_not_found', `The model '${name}' does not exist on this server; it serves ${this.names().map((n) => `'${n}'`).join(', ')}`, 'model_not_found', {
        param: 'model',
      });
    }
    if (slot.state === 'loading') throw notReady(`the model ${slot.name} is still loading; retry shortly`);
    const fault = slot.fault();
    if (slot.state === 'failed' || fault) throw new InferenceError('not_ready', `the model ${slot.name} failed: ${fault}`, 'model_not_ready', { retryAfterSeconds: 1 });
    return { slot, service: slot.service! };
  }

  drain(): Promise<void> {
    return Promise.all(this.slots.map((s) => s.drain())).then(() => undefined);
  }

  release(): Promise<void> {
    return Promise.all(this.slots.map((s) => s.release())).then(() => undefined);
  }
}

const notReady = (message: string) => new InferenceError('not_ready', message, 'model_not_ready', { retryAfterSeconds: 1 });
