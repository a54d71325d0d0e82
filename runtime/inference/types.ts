/**
 * The contract between the model layer (model.ts, tokenizer.ts) and the server/batcher.
 * Everything that runs a model goes through LoadedModel.
 */

import type { ModelManifest } from '../../common/model-manifest.js';

export type { ModelManifest };

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
