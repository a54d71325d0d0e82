import type { ModelManifest } from '../../common/model-manifest.js';

/**
 * What `embedctl models fetch` knows about well-known hub models: the ONNX file to take and the
 * manifest fields a bare ONNX export does not say (pooling, prefixes, licence, Matryoshka sizes).
 */
export interface ModelPreset {
  repoId: string;
  file: string;
  dimensions: number;
  maxTokens: number;
  pooling: 'mean' | 'cls';
  matryoshkaDimensions: number[];
  taskPrefixes: Record<string, string>;
  license: string;
  /** Shown before download; licences that restrict use need an explicit --yes. */
  licenseWarning?: string;
  output: string;
  inputs: ModelManifest['inputs'];
  notes?: string;
  /** LoRA task adapters selected by a `task_id` input (jina-embeddings-v3), in id order. */
  loraTasks?: string[];
  /**
   * The weights live in `<file>_data` (ONNX external data: exports over 2 GB, jina-embeddings-v3),
   * so that file is required. Without this flag it is still fetched when the repo has it.
   */
  externalData?: boolean;
}

const BERT_INPUTS = ['input_ids', 'attention_mask', 'token_type_ids'];
const E5_PREFIXES = { 'retrieval.query': 'query: ', 'retrieval.passage': 'passage: ', 'text-matching': 'query: ', classification: 'query: ', separation: 'query: ' };
const BGE_QUERY = { 'retrieval.query': 'Represent this sentence for searching relevant passages: ' };

export const MODEL_PRESETS: ModelPreset[] = [
  {
    repoId: 'sentence-transformers/all-MiniLM-L6-v2',
    file: 'onnx/model.onnx',
    dimensions: 384,
    maxTokens: 256,
    pooling: 'mean',
    matryoshkaDimensions: [],
    taskPrefixes: {},
    license: 'Apache-2.0',
    output: 'last_hidden_state',
    inputs: BERT_INPUTS,
  },
  {
    repoId: 'BAAI/bge-small-en-v1.5',
    file: 'onnx/model.onnx',
    dimensions: 384,
    maxTokens: 512,
    pooling: 'cls',
    matryoshkaDimensions: [],
    taskPrefixes: BGE_QUERY,
    license: 'MIT',
    output: 'last_hidden_state',
    inputs: BERT_INPUTS,
  },
  {
    repoId: 'BAAI/bge-base-en-v1.5',
    file: 'onnx/model.onnx',
    dimensions: 768,
    maxTokens: 512,
    pooling: 'cls',
    matryoshkaDimensions: [],
    taskPrefixes: BGE_QUERY,
    license: 'MIT',
    output: 'last_hidden_state',
    inputs: BERT_INPUTS,
  },
  {
    repoId: 'intfloat/e5-base-v2',
    file: 'onnx/model.onnx',
    dimensions: 768,
    maxTokens: 512,
    pooling: 'mean',
    matryoshkaDimensions: [],
    taskPrefixes: E5_PREFIXES,
    license: 'MIT',
    output: 'last_hidden_state',
    inputs: BERT_INPUTS,
    notes: 'e5 expects "query: " / "passage: " prefixes; they are applied per task',
  },
  {
    repoId: 'thenlper/gte-base',
    file: 'onnx/model.onnx',
    dimensions: 768,
    maxTokens: 512,
    pooling: 'mean',
    matryoshkaDimensions: [],
    taskPrefixes: {},
    license: 'MIT',
    output: 'last_hidden_state',
    inputs: BERT_INPUTS,
  },
  {
    repoId: 'nomic-ai/nomic-embed-text-v1.5',
    file: 'onnx/model.onnx',
    dimensions: 768,
    maxTokens: 8192,
    pooling: 'mean',
    matryoshkaDimensions: [768, 512, 256, 128, 64],
    taskPrefixes: {
      'retrieval.query': 'search_query: ',
      'retrieval.passage': 'search_document: ',
      'text-matching': 'search_query: ',
      classification: 'classification: ',
      separation: 'clustering: ',
    },
    license: 'Apache-2.0',
    output: 'last_hidden_state',
    inputs: BERT_INPUTS,
    notes: 'Matryoshka: truncate then re-normalise; nomic applies a layer norm before truncating, so very small sizes lose a little more',
  },
  {
    repoId: 'jinaai/jina-embeddings-v3',
    file: 'onnx/model.onnx',
    dimensions: 1024,
    maxTokens: 8192,
    pooling: 'mean',
    matryoshkaDimensions: [1024, 768, 512, 256, 128, 64, 32],
    taskPrefixes: {},
    license: 'CC-BY-NC-4.0',
    licenseWarning:
      'jinaai/jina-embeddings-v3 weights are licensed CC BY-NC 4.0: non-commercial use only. Commercial self-hosting needs a licence from Jina AI.',
    output: 'text_embeds',
    inputs: ['input_ids', 'attention_mask', 'task_id'],
    loraTasks: ['retrieval.query', 'retrieval.passage', 'separation', 'classification', 'text-matching'],
    externalData: true,
    notes: 'tasks select LoRA adapters through the task_id input, per request (the batcher groups by task; default retrieval.passage); any dimensions up to 1024 (Matryoshka)',
  },
];

export function findPreset(repoId: string): ModelPreset | undefined {
  return MODEL_PRESETS.find((p) => p.repoId.toLowerCase() === repoId.toLowerCase());
}

/** The embedctl-model.json a fetched bundle gets. */
export function manifestFromPreset(
  p: ModelPreset,
  extra: { sha256: string; source: string; externalData?: Array<{ file: string; bytes: number; sha256: string }> },
): ModelManifest & Record<string, unknown> {
  return {
    name: p.repoId,
    dimensions: p.dimensions,
    maxTokens: p.maxTokens,
    pooling: p.pooling,
    normalize: true,
    matryoshkaDimensions: p.matryoshkaDimensions,
    taskPrefixes: p.taskPrefixes,
    license: p.license,
    inputs: p.inputs,
    output: p.output,
    pooledByGraph: false,
    sha256: extra.sha256,
    source: extra.source,
    ...(p.loraTasks ? { loraTasks: p.loraTasks, defaultTask: 'retrieval.passage' } : {}),
    ...(extra.externalData?.length ? { externalData: extra.externalData } : {}),
  };
}
