/** The batcher's contract (runtime/inference/batcher.ts): options, reports, refusals. */
import { AnswerError } from './errors.js';
import type { Encoded } from './types.js';

export interface BatchRunner {
  /** Every input of a batch has the same `task` (the batcher never mixes LoRA tasks). */
  embed(batch: Encoded[]): Promise<Float32Array[]>;
}

export interface BatcherOptions {
  /** Sum of padded tokens (longest input x count) one batch may hold. */
  maxBatchTokens: number;
  /** Most inputs in one batch. */
  maxBatchSize: number;
  /**
   * How long the oldest input may wait for company before a partial batch runs. 0 = run as soon
   * as the model is free (inputs still pile up into the next batch while one runs, which is what
   * batches them under load, as in text-embeddings-inference); > 0 trades latency at low load for
   * fuller batches.
   */
  maxWaitMs: number;
  /** Most inputs admitted and not yet answered (queued + running); more -> QueueFull. */
  maxQueue: number;
  /**
   * Latency budget: a request is refused (QueueFull) when its expected wait, the tokens ahead of
   * it and its own divided by the measured throughput, is over this many ms. 0 = count only
   * (maxQueue). An idle batcher always admits. It is also the queue timeout: a request still
   * waiting for its first batch this long after it arrived is refused (QueueFull) rather than
   * run late.
   */
  maxQueueMs?: number;
  /**
   * Largest share of a batch's padded tokens that may be padding (0..1; default 1 = no limit).
   * On CPU a transformer pays for every padded position (attention grows with the square of the
   * longest input), so mixing a 10-token query with a 400-token passage costs more than running
   * them apart; on a GPU big padded batches are usually still the better deal.
   */
  maxPadding?: number;
}

export interface BatchReport {
  size: number;
  /** Real tokens in the batch. */
  tokens: number;
  /** Longest input x count: what the model actually computes. */
  paddedTokens: number;
  /** Requests that had inputs in this batch. */
  requests: number;
  ms: number;
}

export interface BatcherStats {
  /** Inputs waiting for a batch. */
  queued: number;
  queuedTokens: number;
  /** Inputs in the batch the worker is running now. */
  running: number;
  /** Measured model throughput, tokens/s (recent batches); 0 before the first. */
  tokensPerSecond: number;
  /** What a request arriving now would wait, by queued tokens / throughput. */
  expectedWaitMs: number;
  batches: number;
  inputs: number;
  /** Requests refused after waiting past maxQueueMs in the queue (queue timeout). */
  shed: number;
  draining: boolean;
}

/** The queue cannot take this request now; the caller should answer 429 with Retry-After. */
export class QueueFull extends AnswerError {
  /** Retry-After in whole seconds (rounded up, at least 1). */
  readonly retryAfterSeconds: number;

  constructor(
    /** When this client's turn comes (runtime/inference/admission.ts), ms from now. */
    readonly retryAfterMs: number,
    readonly pending: number,
    /** Set when refused by the latency budget (maxQueueMs). */
    readonly expectedWaitMs?: number,
  ) {
    const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
    super(
      expectedWaitMs === undefined
        ? `the server is at capacity (${pending} inputs pending); retry in ${seconds}s`
        : `the server is at capacity (expected wait ${Math.round(expectedWaitMs)} ms, over its budget; ${pending} inputs pending); retry in ${seconds}s`,
    );
    this.retryAfterSeconds = seconds;
    this.name = 'QueueFull';
  }
}

/** submit() after close(). */
export class Closed extends Error {
  constructor() {
    super('the batcher is closed');
    this.name = 'Closed';
  }
}
