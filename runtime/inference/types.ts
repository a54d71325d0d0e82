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
}

export interface LoadedModel {
  manifest: ModelManifest;
  /** Execution provider actually in use: "cuda" | "webgpu" | "cpu". */
  provider: string;
  /** Tokenise one text (with the task prefix already applied by the caller). */
  encode(text: string): Encoded;
  /**
   * Run one padded batch; returns one vector per input, pooled and (if manifest.normalize)
   * L2-normalised, length manifest.dimensions.
   */
  embed(batch: Encoded[]): Promise<Float32Array[]>;
  close(): Promise<void>;
}
