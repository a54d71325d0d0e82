// The default bundle's tokenizer.json is spelled for speed (regex normaliser, one-regex
// pre-tokeniser, WordLevel); these tests prove it gives the same ids as the BERT-style reference
// it replaced (BertNormalizer + BertPreTokenizer + whole-word WordPiece over the same vocabulary),
// through the runtime's own loader, on every bundled text and on inputs chosen to hit each rule.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureBuiltin } from '../common/models-registry.js';
import { loadTokenizer } from '../runtime/inference/tokenizer.js';

const root = join(import.meta.dirname, '..');
const jsonl = (path: string) =>
  readFileSync(join(root, path), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => (JSON.parse(l) as { text: string }).text);

/** The configuration the default bundle shipped before (scripts/build-models.js, recipe 1). */
function referenceJson(vocab: Record<string, number>) {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: ['[PAD]', '[UNK]'].map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: false, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: null,
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
}

// One or more inputs per rule of BertNormalizer / BertPreTokenizer / WordPiece.
const TRICKY = [
  'Hello\u0000World\u0007 foo\u000bbar\u000cbaz', // NUL and control characters dropped, \v \f too
  'tab\there\nnew\rline', // \t \n \r become spaces
  'nb\u00a0sp\u2003em\u3000ideo\u2028ls\u2029ps\u202fnn\u205fmm\u1680og', // Unicode spaces
  'zw\u200bj\u200dx\ufeffbom\u00adsoft', // format characters (Cf) dropped
  'repl\ufffdchar x\u0085y', // U+FFFD and NEL dropped
  'lone \ud800 surrogate \udc00 x', // lone surrogates dropped
  'emoji 😀 ok \u{E0001}tag \u{F0000}pua', // astral symbol kept, astral Cf/Co dropped
  'private \ue000 use',
  '中文混合text测试 㐀x 豈y', // CJK isolated (each BMP block)
  '𠀀 astral cjk𠀁x', // astral CJK is not split (the reference tests UTF-16 units)
  'ÉCOLE Straße İstanbul ǅ Café naïve ﬁ', // lower-cased, accents kept
  "don't stop-believing, (really)! 3.14 $5 #tag @me a_b ~x `y` {z} «q» ¿que?", // punctuation
  'a[UNK]b [PAD] c [unk]', // added tokens matched before normalisation
  '  leading and trailing  ',
  `${'x'.repeat(101)} ${'the'.repeat(40)}`, // over 100 characters: [UNK]
  '',
  ' \t\n ',
];

describe('default tokenizer.json', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'embedctl-tok-eq-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('gives the reference ids on every bundled text and every normalisation rule', async () => {
    const dir = await ensureBuiltin('default', () => {});
    const shipped = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as { model: { type: string; vocab: Record<string, number> } };
    expect(shipped.model.type).toBe('WordLevel');
    const refDir = join(tmp, 'reference');
    mkdirSync(refDir);
    writeFileSync(join(refDir, 'tokenizer.json'), JSON.stringify(referenceJson(shipped.model.vocab)));

    // Both through the runtime's loader (its truncation and [UNK] handling), and the reference
    // also straight through the library, so a loader bug cannot hide on both sides.
    const fast = loadTokenizer(dir, 512);
    const ref = loadTokenizer(refDir, 512);
    const lib = new Tokenizer(referenceJson(shipped.model.vocab), {});
    const texts = [...jsonl('data/sample-texts.jsonl'), ...jsonl('data/rag/corpus.jsonl'), ...jsonl('data/rag/queries.jsonl'), ...TRICKY];
    expect(texts.length).toBeGreaterThan(2000);
    let unknown = 0;
    let tokens = 0;
    const mismatches: string[] = [];
    for (const t of texts) {
      const a = fast.encode(t);
      const b = ref.encode(t);
      const c = lib.encode(t).ids;
      if (a.ids.join() !== b.ids.join() || a.fullLength !== b.fullLength || (t.length < 400 && a.ids.join() !== c.join())) mismatches.push(JSON.stringify(t).slice(0, 80));
      tokens += a.ids.length;
      unknown += a.ids.filter((id) => id === 1).length;
      expect(a.ids.every((id) => Number.isInteger(id) && id >= 0)).toBe(true);
    }
    expect(mismatches).toEqual([]);
    // The corpus exercises both known words and [UNK] (where the two models differ most).
    expect(unknown).toBeGreaterThan(100);
    expect(tokens - unknown).toBeGreaterThan(50_000);
  }, 60_000);
});
