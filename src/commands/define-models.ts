import { opt, types } from './define.js';
import { FETCH_OPTIMIZE } from './models-fetch-optimize.js';

/**
 * `models fetch`'s option table (./define.ts). Values stay as typed: fetchAction checks them with
 * the preset in hand (sizes and pooling depend on the repo). No embedctl.yaml keys, so the config
 * check (src/config-schema.ts) need not load this module.
 */
export const MODELS_FETCH_OPTIONS = {
  revision: opt({ flag: '--revision <rev>', help: 'branch, tag or commit', type: types.string, default: 'main' }),
  file: opt({ flag: '--file <path>', help: "ONNX file inside the repo (default: the preset's, usually onnx/model.onnx)", type: types.string }),
  out: opt({ flag: '--out <dir>', help: 'bundle directory (default: $EMBEDCTL_MODELS_DIR or ~/.cache/embedctl/models/<org>--<name>)', type: types.string }),
  sha256: opt({ flag: '--sha256 <hex>', help: 'expected sha256 of the ONNX file', type: types.string }),
  dimensions: opt({ flag: '--dimensions <n>', help: 'output size (needed for repos without a preset)', type: types.string }),
  pooling: opt({ flag: '--pooling <mean|cls>', help: 'pooling (needed for repos without a preset)', type: types.string }),
  maxTokens: opt({ flag: '--max-tokens <n>', help: 'max input tokens (repos without a preset)', type: types.string, default: '512' }),
  yes: opt({ flag: '--yes', help: 'accept licence terms without asking (needed for CC BY-NC models when there is no terminal)', type: types.boolean, default: false }),
  // The GPU image sets EMBEDCTL_FETCH_OPTIMIZE=fp16 (runtime/Dockerfile): fetch there optimises for the GPU.
  optimize: opt({ flag: '--optimize <kind>', env: 'EMBEDCTL_FETCH_OPTIMIZE', help: `then optimise it for its hardware, gated on cosine vs the download (as \`models optimize\`): ${FETCH_OPTIMIZE.join(', ')}`, type: types.oneOf(FETCH_OPTIMIZE), default: 'none' }),
  poolInGraph: opt({ flag: '--pool-in-graph [bool]', help: 'append pooling + L2 to the graph, only pooled vectors leave the device (default: true with --optimize fp16; false keeps token states for TEI /embed_all)', type: types.boolean }),
  minCosine: opt({ flag: '--min-cosine <x>', help: 'with --optimize: quality gate (default 0.99 int8, 0.999 fp16)', type: types.string }),
  force: opt({ flag: '--force', help: 'download again even when the bundle is complete', type: types.boolean, default: false }),
  dryRun: opt({ flag: '--dry-run', help: 'print what would be downloaded and where, download nothing', type: types.boolean, default: false }),
};

