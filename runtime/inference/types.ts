/**
 * The contract between the model layer (model.ts, tokenizer.ts) and the server/batcher.
 * Everything that runs a model goes through LoadedModel.
 */

import type { ModelManifest } from '../../common/model-manifest.js';

export type { ModelManifest };

/**
 * What the inference layer needs of a cancellation signal. AbortSignal has it; so does the
 * runtime's Cancellation below, which the HTTP routes make per request: an AbortController costs
 * ~10 us to create (it is an EventTarget), 3 % of the event loop under a 1,024-client load.
 */
export interface CancelSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
}

/** A one-shot cancellation: listeners run once, on the first abort(); none added after it runs. */
export class Cancellation implements CancelSignal {
  aborted = false;
  reason: unknown = undefined;
  private listeners: Array<() => void> | undefined;

  addEventListener(_type: 'abort', listener: () => void): void {
    if (!this.aborted) (this.listeners ??= []).push(listener);
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const ls = this.listeners;
    this.listeners = undefined;
    for (const l of ls ?? []) l();
  }
}

export interface Encoded {
  ids: number[];
  /** Tokens before truncation (what usage counts and `truncate:false` checks). */
  fullLength: number;
  /** LoRA adapter index (manifest.loraTasks) this input runs under; undefined = the model's default. */
  task?: number;
  /** Answer this input's token states (unpooled, [tokens x dim] flattened) instead of one vector: TEI's /embed_all. */
  tokens?: boolean;
}

export interface LoadedModel {
  manifest: ModelManifest;
  /** Execution provider actually in use: "cuda" | "webgpu" | "cpu". */
  provider: string;
  /** Tokenise one text (with the task prefix already applied by the caller). */
  encode(text: string): Encoded;
  /** Wrap client-tokenised content ids (OpenAI token arrays) as encode() would; throws RangeError on ids outside the vocabulary. */
  encodeIds(ids: number[]): Encoded;
  /** The token string of an id (for TEI's /tokenize). */
  tokenText(id: number): string | undefined;
  /**
   * Run one padded batch; returns one vector per input, pooled and (if manifest.normalize)
   * L2-normalised, length manifest.dimensions.
   */
  embed(batch: Encoded[]): Promise<Float32Array[]>;
  close(): Promise<void>;
}
