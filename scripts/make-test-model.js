#!/usr/bin/env node
// Generates a BERT-style ONNX encoder with seeded random weights plus a WordPiece tokenizer.json,
// in Node alone (no Python in CI). The defaults give `tiny-bert` (2 layers, hidden 32), which
// exercises what real transformer bundles need: token_type_ids, attention masks, mean and CLS
// pooling, truncation at max tokens. Bigger shapes (MiniLM-L6: --layers 6 --hidden 384 --heads 12
// --intermediate 1536; BERT-base: 12/768/12/3072 --vocab 30522 --max-positions 512) give models
// with real-world cost for GPU benchmarks; their outputs mean nothing.
//
//   node scripts/make-test-model.js --out /tmp/minilm-shape --layers 6 --hidden 384 --heads 12 --intermediate 1536
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DT, GraphBuilder, toHalf } from './lib/onnx-build.js';

export const TINY_DEFAULTS = {
  layers: 2,
  hidden: 32,
  heads: 2,
  intermediate: 64,
  vocab: 0, // 0 = just the built-in word list
  maxPositions: 64,
  seed: 42,
  fp16: false,
};

const SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
const PUNCT = [...'!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'];
const LETTERS = [...'abcdefghijklmnopqrstuvwxyz'];
const DIGITS = [...'0123456789'];
const SUFFIXES = ['s', 'es', 'ed', 'ing', 'er', 'ers', 'est', 'ly', 'ion', 'ions', 'ment', 'ness', 'able', 'al', 'y', 'en'];
// Common English words, so ordinary sentences tokenise mostly into whole words and the rest into
// ##pieces (every lowercase ASCII word is covered by letters + ##letters, so only other scripts
// hit [UNK]).
const WORDS = `the of and to in is was for on that with as by at from it an be this which or are
have has had not but were they their his her she he we you your our its all one two three four
five six seven eight nine ten first new more most other some such no only also than then when
what where who how why can will would could should may might must do does did done make made
get got go went going come came take took see saw know knew think thought say said tell told
give gave find found use used work worked call called try tried ask asked need needed feel felt
become became leave left put keep kept let begin began seem seemed help helped show showed
hear heard play played run ran move moved live lived believe hold held bring brought happen
write wrote provide sit stand lose lost pay paid meet met include continue set learn change
lead understand watch follow stop create speak read allow add spend grow open walk win offer
remember love consider appear buy wait serve die send expect build stay fall cut reach kill
remain suggest raise pass sell require report decide pull time year people way day man men
woman women child children world life hand part place case week company system program
question government number night point home water room mother area money story fact month lot
right study book eye job word business issue side kind head house service friend father power
hour game line end member law car city community name president team minute idea kid body
information back parent face others level office door health person art war history party
result morning reason research girl guy moment air teacher force education cat dog bird fish
tree river mountain sea sky sun moon star rain snow wind food bread milk coffee tea apple
search query passage document embedding vector model server cloud gpu data text network
computer phone market price cost store shop bank school student class paper letter music film
good great small large big long little old high low young early late important public bad
same able red blue green white black happy sad quick slow fast easy hard hot cold warm cool
very really just still even well back there here now today tomorrow yesterday always never
often sometimes again about into over after before under between through during without
against among around across behind beyond above below near far up down out off`
  .split(/\s+/)
  .filter(Boolean);

/** mulberry32: a small seeded PRNG on integer arithmetic only, so weights are identical everywhere. */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function buildVocab(size) {
  // Deduplicated as a whole: a token listed twice (a suffix that is also a letter) would give
  // the tokenizer an id one past the embedding table.
  const tokens = [];
  const seen = new Set();
  const candidates = [...SPECIALS, ...PUNCT, ...DIGITS, ...LETTERS, ...LETTERS.map((l) => `##${l}`), ...DIGITS.map((d) => `##${d}`), ...SUFFIXES.map((s) => `##${s}`), ...WORDS];
  for (const t of candidates) if (!seen.has(t)) (seen.add(t), tokens.push(t));
  for (let i = 0; tokens.length < size; i++) tokens.push(`[unused${i}]`);
  return Object.fromEntries(tokens.map((t, i) => [t, i]));
}

export function bertTokenizerJson(vocab) {
  const id = (t) => vocab[t];
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.map((t) => ({
      id: id(t),
      content: t,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [id('[CLS]')], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [id('[SEP]')], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
}

/**
 * The ONNX bytes of a BERT-style encoder; output last_hidden_state [batch, seq, hidden].
 * With `lora` ({tasks, rank}) it is jina-embeddings-v3-shaped instead: inputs input_ids,
 * attention_mask and a scalar int64 task_id that selects, inside the graph (Gather), one low-rank
 * adapter per task added to every dense layer (x W + b + (x A_t) B_t); output text_embeds
 * [batch, seq, hidden]. With `lora.merge` = t, the same weights with task t's adapter folded
 * into W in JS (W + A_t B_t) and no task_id input: an independent computation of that task.
 * Base weights come from `seed` in the same order either way; adapters from their own stream.
 */
export function bertOnnx(o) {
  const { layers, hidden: H, heads, intermediate: I, maxPositions, seed, fp16, lora } = o;
  const V = o.vocabSize;
  if (H % heads !== 0) throw new Error(`--hidden (${H}) must be divisible by --heads (${heads})`);
  const hd = H / heads;
  const rnd = prng(seed);
  const g = new GraphBuilder('embedctl_test_bert');
  const uniform = (n, scale) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = (rnd() * 2 - 1) * scale;
    return a;
  };
  const around = (n, center, scale) => {
    const a = uniform(n, scale);
    for (let i = 0; i < n; i++) a[i] = Math.fround(a[i] + center);
    return a;
  };
  let wid = 0;
  // fp16 keeps the weights small on disk and Casts them to float32 once at load (constant folding).
  const weight = (dims, values) => {
    const name = `w${wid++}`;
    if (!fp16) return g.init(name, DT.FLOAT, dims, values);
    g.init(`${name}_h`, DT.FLOAT16, dims, Uint16Array.from(values, toHalf));
    return g.op('Cast', [`${name}_h`], { to: DT.FLOAT });
  };
  const layerNorm = (x) => g.op('LayerNormalization', [x, weight([H], around(H, 1, 0.1)), weight([H], uniform(H, 0.1))], { axis: -1, epsilon: { f: 1e-12 } });
  const loraRnd = prng((seed ^ 0x10ea) >>> 0);
  const loraUniform = (n, scale) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = (loraRnd() * 2 - 1) * scale;
    return a;
  };
  let taskId;
  const dense = (x, nIn, nOut) => {
    const w = uniform(nIn * nOut, 1 / Math.sqrt(nIn));
    const b = uniform(nOut, 0.05);
    if (!lora) return g.op('Add', [g.op('MatMul', [x, weight([nIn, nOut], w)]), weight([nOut], b)]);
    const T = lora.tasks.length;
    const r = lora.rank;
    // Adapters strong enough that tasks differ clearly (random weights: the size is arbitrary).
    const A = loraUniform(T * nIn * r, 1 / Math.sqrt(nIn));
    const B = loraUniform(T * r * nOut, 1 / Math.sqrt(r));
    if (lora.merge !== undefined) {
      const t = lora.merge;
      const merged = new Float32Array(nIn * nOut);
      for (let i = 0; i < nIn; i++) {
        for (let j = 0; j < nOut; j++) {
          let acc = w[i * nOut + j];
          for (let k = 0; k < r; k++) acc += A[t * nIn * r + i * r + k] * B[t * r * nOut + k * nOut + j];
          merged[i * nOut + j] = Math.fround(acc);
        }
      }
      return g.op('Add', [g.op('MatMul', [x, weight([nIn, nOut], merged)]), weight([nOut], b)]);
    }
    const At = g.op('Gather', [weight([T, nIn, r], A), taskId], { axis: 0 });
    const Bt = g.op('Gather', [weight([T, r, nOut], B), taskId], { axis: 0 });
    const base = g.op('Add', [g.op('MatMul', [x, weight([nIn, nOut], w)]), weight([nOut], b)]);
    return g.op('Add', [base, g.op('MatMul', [g.op('MatMul', [x, At]), Bt])]);
  };

  const ids = g.input('input_ids', DT.INT64, ['batch', 'sequence']);
  const mask = g.input('attention_mask', DT.INT64, ['batch', 'sequence']);
  // jina-embeddings-v3 (XLM-RoBERTa) takes no token types: its graphs add type row 0 to every token.
  const types = lora ? g.op('Mul', [ids, g.i64([0], [])]) : g.input('token_type_ids', DT.INT64, ['batch', 'sequence']);
  if (lora && lora.merge === undefined) taskId = g.input('task_id', DT.INT64, []);

  const words = g.op('Gather', [weight([V, H], uniform(V * H, 0.5)), ids], { axis: 0 });
  const seqLen = g.op('Gather', [g.op('Shape', [ids]), g.i64([1], [])], { axis: 0 });
  const positions = g.op('Range', [g.i64([0], []), seqLen, g.i64([1], [])]);
  const pos = g.op('Gather', [weight([maxPositions, H], uniform(maxPositions * H, 0.5)), positions], { axis: 0 });
  const typ = g.op('Gather', [weight([2, H], uniform(2 * H, 0.5)), types], { axis: 0 });
  let x = layerNorm(g.op('Add', [g.op('Add', [words, pos]), typ]));

  // Padding must not leak into real tokens: masked keys get -10000 before softmax (exp underflows to 0).
  const maskF = g.op('Cast', [mask], { to: DT.FLOAT });
  const bias = g.op('Unsqueeze', [g.op('Mul', [g.op('Sub', [g.f32([1], []), maskF]), g.f32([-10000], [])]), g.i64([1, 2])]);
  const splitHeads = g.i64([0, 0, heads, hd]);
  const mergeHeads = g.i64([0, 0, H]);
  const scale = g.f32([1 / Math.sqrt(hd)], []);
  const sqrt2 = g.f32([Math.SQRT2], []);

  for (let l = 0; l < layers; l++) {
    const q = g.op('Transpose', [g.op('Reshape', [dense(x, H, H), splitHeads])], { perm: [0, 2, 1, 3] });
    const k = g.op('Transpose', [g.op('Reshape', [dense(x, H, H), splitHeads])], { perm: [0, 2, 3, 1] });
    const v = g.op('Transpose', [g.op('Reshape', [dense(x, H, H), splitHeads])], { perm: [0, 2, 1, 3] });
    const scores = g.op('Add', [g.op('Mul', [g.op('MatMul', [q, k]), scale]), bias]);
    const probs = g.op('Softmax', [scores], { axis: -1 });
    const ctx = g.op('Reshape', [g.op('Transpose', [g.op('MatMul', [probs, v])], { perm: [0, 2, 1, 3] }), mergeHeads]);
    x = layerNorm(g.op('Add', [x, dense(ctx, H, H)]));
    const h = dense(x, H, I);
    const gelu = g.op('Mul', [g.op('Mul', [h, g.f32([0.5], [])]), g.op('Add', [g.op('Erf', [g.op('Div', [h, sqrt2])]), g.f32([1], [])])]);
    x = layerNorm(g.op('Add', [x, dense(gelu, I, H)]));
  }
  const outName = lora ? 'text_embeds' : 'last_hidden_state';
  g.op('Identity', [x], {}, { out: outName });
  g.output(outName, DT.FLOAT, ['batch', 'sequence', H]);
  return g.toBytes({ docString: `embedctl test BERT: layers=${layers} hidden=${H} heads=${heads} intermediate=${I} vocab=${V} seed=${seed}` });
}

/** Everything a tiny-bert bundle is made of; build-models.js writes it, the CLI below too. */
export function makeTestModel(opts = {}) {
  const o = { ...TINY_DEFAULTS, ...opts };
  const vocab = buildVocab(o.vocab);
  const vocabSize = Object.keys(vocab).length;
  const lora = o.loraTasks ? { tasks: o.loraTasks, rank: o.loraRank ?? 4, merge: o.mergeTask === undefined ? undefined : o.loraTasks.indexOf(o.mergeTask) } : undefined;
  if (lora && lora.merge === -1) throw new Error(`--merge-task ${o.mergeTask} is not one of --lora-tasks ${o.loraTasks.join(',')}`);
  const onnxBytes = bertOnnx({ ...o, vocabSize, lora });
  const sha256 = createHash('sha256').update(onnxBytes).digest('hex');
  const loraFields = lora
    ? {
        inputs: lora.merge === undefined ? ['input_ids', 'attention_mask', 'task_id'] : ['input_ids', 'attention_mask'],
        output: 'text_embeds',
        taskPrefixes: {},
        ...(lora.merge === undefined ? { loraTasks: o.loraTasks, defaultTask: o.loraTasks.includes('retrieval.passage') ? 'retrieval.passage' : o.loraTasks[0] } : {}),
      }
    : {};
  const manifestFor = (name, pooling) => ({
    name,
    dimensions: o.hidden,
    maxTokens: o.maxPositions,
    pooling,
    normalize: true,
    matryoshkaDimensions: [],
    taskPrefixes: { 'retrieval.query': 'query: ', 'retrieval.passage': 'passage: ' },
    license: 'MIT (embedctl test model, random weights)',
    inputs: ['input_ids', 'attention_mask', 'token_type_ids'],
    output: 'last_hidden_state',
    pooledByGraph: false,
    sha256,
    source: `scripts/make-test-model.js layers=${o.layers} hidden=${o.hidden} heads=${o.heads} intermediate=${o.intermediate} vocab=${vocabSize} maxPositions=${o.maxPositions} seed=${o.seed}${o.fp16 ? ' fp16' : ''}${lora ? ` lora-tasks=${o.loraTasks.join(',')} rank=${lora.rank}${lora.merge === undefined ? '' : ` merged=${o.mergeTask}`}` : ''}`,
    ...(o.matryoshka ? { matryoshkaDimensions: o.matryoshka } : {}),
    ...loraFields,
  });
  return { onnxBytes, tokenizer: bertTokenizerJson(vocab), manifest: manifestFor('tiny-bert', 'mean'), manifestFor, sha256 };
}

export function writeBundle(dir, { onnxBytes, tokenizer, manifest }) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(resolve(dir, 'model.onnx'), onnxBytes);
  writeFileSync(resolve(dir, 'tokenizer.json'), `${JSON.stringify(tokenizer)}\n`);
  writeFileSync(resolve(dir, 'embedctl-model.json'), `${JSON.stringify(manifest, null, 2)}\n`);
}

const FLAGS = {
  '--layers': 'layers',
  '--hidden': 'hidden',
  '--heads': 'heads',
  '--intermediate': 'intermediate',
  '--vocab': 'vocab',
  '--max-positions': 'maxPositions',
  '--seed': 'seed',
};

function usage(msg) {
  process.stderr.write(
    `make-test-model: ${msg}\nusage: node scripts/make-test-model.js --out DIR [--layers N] [--hidden N] [--heads N] [--intermediate N] [--vocab N] [--max-positions N] [--seed N] [--pooling mean|cls] [--name NAME] [--fp16]\n` +
      `       [--lora-tasks a,b,c [--lora-rank N] [--merge-task a]]   jina-v3-shaped: task_id input, per-task LoRA adapters, output text_embeds\n` +
      `       [--matryoshka 256,128,64]                                 Matryoshka sizes in the manifest\n`,
  );
  process.exit(2);
}

function cli(argv) {
  const o = {};
  let out;
  let pooling = 'mean';
  let name;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--fp16') o.fp16 = true;
    else if (a === '--out') out = argv[++i];
    else if (a === '--pooling') pooling = argv[++i];
    else if (a === '--name') name = argv[++i];
    else if (a === '--lora-tasks') o.loraTasks = String(argv[++i] ?? '').split(',').map((t) => t.trim()).filter(Boolean);
    else if (a === '--merge-task') o.mergeTask = argv[++i];
    else if (a === '--lora-rank') o.loraRank = Number(argv[++i]);
    else if (a === '--matryoshka') o.matryoshka = String(argv[++i] ?? '').split(',').map(Number);
    else if (a === '--help' || a === '-h') usage('generates a seeded random BERT-style ONNX model');
    else if (FLAGS[a]) {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 0) usage(`${a} needs a whole number, got ${argv[i]}`);
      o[FLAGS[a]] = v;
    } else usage(`unknown flag ${a}`);
  }
  if (!out) usage('--out DIR is required');
  if (pooling !== 'mean' && pooling !== 'cls') usage(`--pooling must be mean or cls, got ${pooling}`);
  if (o.loraTasks && o.loraTasks.length === 0) usage('--lora-tasks needs a comma-separated list of task names');
  if (o.mergeTask !== undefined && !o.loraTasks?.includes(o.mergeTask)) usage(`--merge-task must be one of --lora-tasks`);
  if (o.loraRank !== undefined && !(Number.isInteger(o.loraRank) && o.loraRank >= 1)) usage('--lora-rank needs a whole number >= 1');
  if (o.matryoshka && o.matryoshka.some((d) => !Number.isInteger(d) || d < 1)) usage('--matryoshka needs comma-separated whole numbers');
  const t0 = Date.now();
  const built = makeTestModel(o);
  const defaultName = o.loraTasks ? `test-lora${o.mergeTask ? `-${o.mergeTask}` : ''}` : `test-bert-${built.manifest.dimensions}`;
  built.manifest = built.manifestFor(name ?? defaultName, pooling);
  writeBundle(resolve(out), built);
  process.stderr.write(`make-test-model: wrote ${resolve(out)} (${(built.onnxBytes.length / 1e6).toFixed(1)} MB, sha256 ${built.sha256.slice(0, 12)}, ${Date.now() - t0} ms)\n`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) cli(process.argv.slice(2));
