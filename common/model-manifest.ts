/** The model-bundle contract both `embedctl models` (src/) and the runtime read. */

/** embedctl-model.json: what a model directory says about itself. */
export interface ModelManifest {
  name: string;
  /** Output vector size before any Matryoshka truncation. */
  dimensions: number;
  /** Longest input in tokens (special tokens included); longer inputs are truncated or refused. */
  maxTokens: number;
  pooling: 'mean' | 'cls' | 'none';
  /** Whether vectors are L2-normalised (by the graph or by the runtime). */
  normalize: boolean;
  /** Dimensions a caller may truncate to (re-normalised); [] = only `dimensions`. */
  matryoshkaDimensions: number[];
  /** Jina-style task -> text prefix, e.g. {"retrieval.query": "query: "}. */
  taskPrefixes: Record<string, string>;
  license: string;
  /** ONNX graph inputs the model takes: input_ids, attention_mask, token_type_ids. */
  inputs: string[];
  /** ONNX output to read: "sentence_embedding" (already pooled) or "last_hidden_state". */
  output: string;
  /** Whether the graph already pools/normalises (output is [batch, dim]). */
  pooledByGraph: boolean;
  /** sha256 of model.onnx, recorded at build or fetch time. */
  sha256?: string;
  source?: string;
}

/**
 * The weights' number format, from the optimisation steps a bundle records (`models optimize`,
 * `models fetch --optimize`): what TEI's /info reports as model_dtype.
 */
export function weightDtype(manifest: ModelManifest): 'float32' | 'float16' | 'int8' {
  // optimization.steps: ["int8"], ["fp16", "pool-in-graph"], ... (details are in .details).
  const steps = (manifest as { optimization?: { steps?: unknown } }).optimization?.steps;
  const names = Array.isArray(steps) ? steps : [];
  return names.includes('int8') ? 'int8' : names.includes('fp16') ? 'float16' : 'float32';
}
