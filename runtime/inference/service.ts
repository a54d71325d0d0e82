import { Batcher, Closed, QueueFull, type BatchReport, type BatcherOptions, type BatcherStats } from './batcher.js';
import { InferenceError } from './errors.js';
import type { Encoded, LoadedModel } from './types.js';

/**
 * One served model: the model, its batcher, and what turns a list of texts into vectors
 * (tokenising, the length check, admission, batching). Knows nothing of HTTP; the routes map its
 * InferenceErrors to their API's error shape.
 */

export interface ServiceOptions extends BatcherOptions {
  log?: (event: Record<string, unknown>) => void;
  onBatch?: (r: BatchReport) => void;
}

export interface EmbedCall {
  texts: string[];
  /** The task ("retrieval.query"...): a text prefix (e5, nomic, bge) or a LoRA adapter, as the model has it. */
  task?: string;
  /** Cut inputs over the model's max tokens (true) or refuse them (false). */
  truncate: boolean;
  /** Aborted when the client hangs up: queued inputs are dropped, tokenising stops. */
  signal?: AbortSignal;
}

export interface EmbedResult {
  vectors: Float32Array[];
  /** Tokens counted for usage (before truncation). */
  tokens: number;
}

/** Default padding cap on the CPU provider (BatcherOptions.maxPadding). */
export const CPU_MAX_PADDING = 0.3;

export const overloaded = (err: QueueFull) =>
  new InferenceError('overloaded', err.message, 'queue_full', { retryAfterSeconds: err.retryAfterSeconds });

export class ModelService {
  readonly batcher: Batcher;

  private constructor(
    readonly model: LoadedModel,
    readonly warmupMs: number,
    opts: ServiceOptions,
  ) {
    // On CPU every padded position costs (bench: MiniLM shape 64 -> 118 emb/s at 0.3); a GPU
    // is better fed big padded batches.
    const maxPadding = opts.maxPadding ?? (model.provider === 'cpu' ? CPU_MAX_PADDING : 1);
    this.batcher = new Batcher(model, { ...opts, maxPadding }, opts.onBatch);
  }

  /**
   * Warms the model up (the first runs allocate and, on GPU, compile kernels) and starts its
   * batcher; readiness waits for this.
   */
  static async start(model: LoadedModel, opts: ServiceOptions): Promise<ModelService> {
    if (opts.maxBatchTokens < model.manifest.maxTokens) {
      // Still works (an input over the budget runs in a batch of its own), but is rarely meant.
      opts.log?.({ event: 'warning', message: `max batch tokens ${opts.maxBatchTokens} is below the model's max tokens ${model.manifest.maxTokens}; long inputs will run one at a time` });
    }
    const t0 = performance.now();
    await model.embed([model.encode('warm up the model')]);
    await model.embed(Array.from({ length: Math.min(8, opts.maxBatchSize) }, (_, i) => model.encode(`warm up input ${i} `.repeat(i + 1))));
    return new ModelService(model, Math.round(performance.now() - t0), opts);
  }

  stats(): BatcherStats {
    return this.batcher.stats();
  }

  /** Why the model can no longer embed (its worker thread died), if it cannot. */
  fault(): string | undefined {
    return (this.model as { fault?: () => string | undefined }).fault?.();
  }

  /** The refusal a call of `count` inputs would meet now (to refuse before reading and tokenising). */
  refusal(count: number): InferenceError | undefined {
    const full = this.batcher.refusal(count);
    return full ? overloaded(full) : undefined;
  }

  async embed(call: EmbedCall): Promise<EmbedResult> {
    const r = await this.embedEach(call);
    let tokens = 0;
    for (const t of r.tokens) tokens += t;
    return { vectors: r.vectors, tokens };
  }

  /** embed() with the token count of each input. */
  async embedEach(call: EmbedCall): Promise<{ vectors: Float32Array[]; tokens: number[] }> {
    const m = this.model;
    const full = this.refusal(call.texts.length);
    if (full) throw full;
    const prefix = (call.task && m.manifest.taskPrefixes[call.task]) || '';
    const encoded: Encoded[] = new Array(call.texts.length);
    const tokens: number[] = new Array(call.texts.length);
    let slice = performance.now();
    for (let i = 0; i < call.texts.length; i++) {
      const enc = m.encode(prefix + call.texts[i]!);
      if (!call.truncate && enc.fullLength > m.manifest.maxTokens) {
        throw new InferenceError(
          'input_too_long',
          `'input[${i}]' is ${enc.fullLength} tokens, over the model's limit of ${m.manifest.maxTokens}; shorten it or send "truncate": true`,
          'input_too_long',
          { param: 'input' },
        );
      }
      tokens[i] = enc.fullLength;
      encoded[i] = enc;
      // Tokenising a 2,048-input request takes a while; let other requests and probes through.
      if ((i & 15) === 15 && performance.now() - slice > 4) {
        await new Promise<void>((r) => setImmediate(r));
        if (call.signal?.aborted) throw call.signal.reason;
        slice = performance.now();
      }
    }
    try {
      return { vectors: await this.batcher.submit(encoded, call.signal), tokens };
    } catch (err) {
      if (err instanceof QueueFull) throw overloaded(err);
      if (err instanceof Closed) throw new InferenceError('shutting_down', 'the server is shutting down; retry on another replica', 'shutting_down', { retryAfterSeconds: 1 });
      throw err;
    }
  }

  close(): Promise<void> {
    return this.batcher.close();
  }
}
