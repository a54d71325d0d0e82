import { Batcher, Closed, QueueFull, type BatchReport, type BatcherOptions, type BatcherStats } from './batcher.js';
import { InferenceError } from './errors.js';
import type { CancelSignal, Encoded, LoadedModel } from './types.js';

/**
 * One served model: the model, its batcher, and what turns a list of texts into vectors
 * (tokenising, the length check, admission, batching). Knows nothing of HTTP; the routes map its
 * InferenceErrors to their API's error shape.
 */

export interface ServiceOptions extends BatcherOptions {
  /**
   * Most tokens one request may put through the model (after truncation; OpenAI caps requests
   * at 300,000). Over it: request_too_large, before anything is queued.
   */
  maxRequestTokens?: number;
  log?: (event: Record<string, unknown>) => void;
  onBatch?: (r: BatchReport) => void;
}

export interface EmbedCall {
  /** Texts, or token-id arrays of this model's vocabulary (OpenAI token-array inputs). */
  texts: Array<string | number[]>;
  /** The task ("retrieval.query"...): a text prefix (e5, nomic, bge) or a LoRA adapter, as the model has it. */
  task?: string;
  /** Cut inputs over the model's max tokens (true) or refuse them (false). */
  truncate: boolean;
  /** Aborted when the client hangs up: queued inputs are dropped, tokenising stops. */
  signal?: CancelSignal;
  /** Token states per input instead of pooled vectors (Encoded.tokens). */
  tokens?: boolean;
  /**
   * When the request's headers were read (performance.now()). Under load, reading, parsing and
   * tokenising a request can take a good part of the latency budget before it reaches the queue;
   * the queue timeout counts that time too.
   */
  receivedAt?: number;
}

export interface EmbedResult {
  vectors: Float32Array[];
  /** Tokens counted for usage (before truncation). */
  tokens: number;
}

/**
 * Inputs longer than maxTokens x this many characters are cut to that before tokenising: the
 * model sees the first maxTokens tokens either way (no natural-language tokenizer averages 32
 * characters a token; WordPiece maps any word over 100 characters to one [UNK]), and a 6 MB
 * input costs what a 16 KB one does instead of stalling the event loop for everyone.
 */
export const CUT_CHARS_PER_TOKEN = 32;

/** Synchronous tokenising runs at most this long before a loop over inputs lets the event loop run. */
export const YIELD_AFTER_MS = 4;

/** Default padding cap on the CPU provider (BatcherOptions.maxPadding). */
export const CPU_MAX_PADDING = 0.3;

export const overloaded = (err: QueueFull) =>
  new InferenceError('overloaded', err.message, 'queue_full', { retryAfterSeconds: err.retryAfterSeconds, retryAfterMs: err.retryAfterMs });

export class ModelService {
  readonly batcher: Batcher;

  private readonly loraTasks: string[];
  private readonly maxRequestTokens: number;
  private readonly cutChars: number;

  private constructor(
    readonly model: LoadedModel,
    readonly warmupMs: number,
    opts: ServiceOptions,
    seed: { tokens: number; ms: number },
  ) {
    // On CPU every padded position costs (bench: MiniLM shape 64 -> 118 emb/s at 0.3); a GPU
    // is better fed big padded batches.
    const maxPadding = opts.maxPadding ?? (model.provider === 'cpu' ? CPU_MAX_PADDING : 1);
    this.batcher = new Batcher(model, { ...opts, maxPadding }, opts.onBatch);
    this.batcher.seedThroughput(seed.tokens, seed.ms);
    this.loraTasks = (model.manifest as { loraTasks?: string[] }).loraTasks ?? [];
    this.maxRequestTokens = opts.maxRequestTokens ?? Number.POSITIVE_INFINITY;
    this.cutChars = model.manifest.maxTokens * CUT_CHARS_PER_TOKEN;
  }

  /** The tasks this model knows: LoRA adapters and prefix tasks. */
  tasks(): string[] {
    return [...new Set([...this.loraTasks, ...Object.keys(this.model.manifest.taskPrefixes)])];
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
    const batch = Array.from({ length: Math.min(8, opts.maxBatchSize) }, (_, i) => model.encode(`warm up input ${i} `.repeat(i + 1)));
    const t1 = performance.now();
    await model.embed(batch);
    // The second run is the first at steady state: it seeds the throughput admission divides by.
    const seed = { tokens: batch.reduce((a, e) => a + e.ids.length, 0), ms: performance.now() - t1 };
    return new ModelService(model, Math.round(performance.now() - t0), opts, seed);
  }

  stats(): BatcherStats {
    return this.batcher.stats();
  }

  /** Why the model can no longer embed (its worker thread died), if it cannot. */
  fault(): string | undefined {
    return (this.model as { fault?: () => string | undefined }).fault?.();
  }

  /** Calls `listener` once if the model stops being able to embed (its worker thread dies). */
  onFault(listener: (reason: string) => void): void {
    (this.model as { onFault?: (l: (reason: string) => void) => void }).onFault?.(listener);
  }

  /** The text prefix of a task; own keys only, so "constructor" or "__proto__" is no prefix. */
  prefixFor(task: string | undefined): string {
    const prefixes = this.model.manifest.taskPrefixes;
    return task !== undefined && Object.hasOwn(prefixes, task) ? (prefixes[task] ?? '') : '';
  }

  /**
   * encode() of what the model will see of a text: cut to cutChars first (see
   * CUT_CHARS_PER_TOKEN), so the ids are the same as for the whole text and the cost is bounded.
   * fullLength is that of the cut text.
   */
  encodeVisible(text: string, prefix = ''): Encoded {
    return this.model.encode(prefix + (text.length > this.cutChars ? text.slice(0, this.cutChars) : text));
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
    const prefix = this.prefixFor(call.task);
    const loraAt = call.task === undefined ? -1 : this.loraTasks.indexOf(call.task);
    const task = loraAt >= 0 ? loraAt : undefined;
    let requestTokens = 0;
    const encoded: Encoded[] = new Array(call.texts.length);
    const tokens: number[] = new Array(call.texts.length);
    let slice = performance.now();
    for (let i = 0; i < call.texts.length; i++) {
      const text = call.texts[i]!;
      const cut = typeof text === 'string' && text.length > this.cutChars;
      const enc = typeof text === 'string' ? this.encodeVisible(text, prefix) : this.encodeIds(text, i);
      if (!call.truncate && enc.fullLength > m.manifest.maxTokens) {
        throw new InferenceError(
          'input_too_long',
          `'input[${i}]' is ${cut ? 'over ' : ''}${enc.fullLength} tokens, over the model's limit of ${m.manifest.maxTokens}; shorten it or send "truncate": true`,
          'input_too_long',
          { param: 'input' },
        );
      }
      // A cut input's full length is extrapolated from the part tokenised (usage is an estimate there).
      tokens[i] = cut ? Math.round((enc.fullLength * text.length) / this.cutChars) : enc.fullLength;
      if (task !== undefined) enc.task = task;
      if (call.tokens) enc.tokens = true;
      encoded[i] = enc;
      requestTokens += enc.ids.length;
      if (requestTokens > this.maxRequestTokens) {
        throw new InferenceError(
          'request_too_large',
          `the request is over ${this.maxRequestTokens} tokens (--max-request-tokens) by input ${i}; send fewer or shorter inputs per request`,
          'request_too_large',
          { param: 'input' },
        );
      }
      // Tokenising a 2,048-input request takes a while; let other requests and probes through.
      if ((i & 15) === 15 && performance.now() - slice > YIELD_AFTER_MS) {
        await new Promise<void>((r) => setImmediate(r));
        if (call.signal?.aborted) throw call.signal.reason;
        slice = performance.now();
      }
    }
    try {
      return { vectors: await this.batcher.submit(encoded, call.signal, call.receivedAt), tokens };
    } catch (err) {
      if (err instanceof QueueFull) throw overloaded(err);
      if (err instanceof Closed) throw new InferenceError('shutting_down', 'the server is shutting down; retry on another replica', 'shutting_down', { retryAfterSeconds: 1 });
      // The worker thread died under this call: a 503 the client may retry elsewhere, not a 500.
      const fault = this.fault();
      if (fault) throw new InferenceError('not_ready', `the model failed: ${fault}; retry on another replica`, 'model_not_ready', { retryAfterSeconds: 1 });
      throw err;
    }
  }

  private encodeIds(ids: number[], i: number): Encoded {
    try {
      return this.model.encodeIds(ids);
    } catch (err) {
      throw new InferenceError('invalid', `'input[${i}]': ${(err as Error).message}`, 'invalid_value', { param: 'input' });
    }
  }

  close(): Promise<void> {
    return this.batcher.close();
  }
}
