import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { UsageError } from '../../common/errors.js';
import type { Encoded, LoadedModel } from './types.js';

export interface BundleTokenizer {
  /** Token ids with special tokens, cut to maxTokens keeping the special tokens at both ends. */
  encode(text: string): Encoded;
  /**
   * Token ids the client tokenised itself (OpenAI's token-array inputs): content ids, wrapped in
   * the template's special tokens and cut to maxTokens like text. Ids outside the vocabulary throw.
   */
  encodeIds(ids: number[]): Encoded;
  /** The token string of an id (TEI's /tokenize), undefined outside the vocabulary. */
  tokenText(id: number): string | undefined;
  /** The id padding uses (attention mask 0 there, so its value only has to be in range). */
  padId: number;
  vocabSize: number;
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Loads `<dir>/tokenizer.json` (and tokenizer_config.json when present, as hub bundles ship it)
 * with @huggingface/tokenizers. That library has no truncation, so it is done here: the text is
 * encoded once with special tokens and, only when too long, its content is cut and the template's
 * leading and trailing special tokens are kept ([CLS] ... [SEP]).
 */
export function loadTokenizer(dir: string, maxTokens: number): BundleTokenizer {
  const tokenizerJson = readJson(join(dir, 'tokenizer.json')) as Record<string, unknown>;
  const configPath = join(dir, 'tokenizer_config.json');
  const config = existsSync(configPath) ? (readJson(configPath) as Record<string, unknown>) : {};
  const tok = new Tokenizer(tokenizerJson, config);
  const vocab = tok.get_vocab(true);
  const unkToken = ((tokenizerJson.model as { unk_token?: string } | undefined)?.unk_token ?? '[UNK]') as string;
  const unkId = vocab.get(unkToken);
  const padId = vocab.get('[PAD]') ?? vocab.get('<pad>') ?? 0;

  const ids = (text: string, addSpecial: boolean): number[] => {
    const out = tok.encode(text, { add_special_tokens: addSpecial }).ids;
    // Some model types hand back `undefined` for out-of-vocabulary words; never let that reach a tensor.
    for (let i = 0; i < out.length; i++) {
      if (out[i] === undefined || Number.isNaN(out[i])) {
        if (unkId === undefined) throw new Error(`tokenizer in ${dir} produced an unknown token and has no unk_token`);
        out[i] = unkId;
      }
    }
    return out;
  };

  // The template's special tokens around any content ([CLS] ... [SEP]), found once.
  const probeFull = ids('a', true);
  const probeContent = ids('a', false);
  const at = findRun(probeFull, probeContent);
  const lead = at < 0 ? [] : probeFull.slice(0, at);
  const trail = at < 0 ? [] : probeFull.slice(at + probeContent.length);
  const vocabSize = vocab.size;

  return {
    padId,
    vocabSize,
    tokenText: (id: number) => tok.id_to_token(id),
    encodeIds(content: number[]): Encoded {
      for (const id of content) {
        if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw new RangeError(`token id ${id} is outside this model's vocabulary (0..${vocabSize - 1})`);
      }
      const fullLength = lead.length + content.length + trail.length;
      const room = Math.max(0, maxTokens - lead.length - trail.length);
      return { ids: [...lead, ...content.slice(0, room), ...trail], fullLength };
    },
    encode(text: string): Encoded {
      const full = ids(text, true);
      if (full.length <= maxTokens) return { ids: full, fullLength: full.length };
      const content = ids(text, false);
      const specials = full.length - content.length;
      const start = findRun(full, content);
      if (start < 0 || specials >= maxTokens) return { ids: full.slice(0, maxTokens), fullLength: full.length };
      const kept = content.slice(0, maxTokens - specials);
      return {
        ids: [...full.slice(0, start), ...kept, ...full.slice(start + content.length)],
        fullLength: full.length,
      };
    },
  };
}

/** loadTokenizer, failing as a usage error that names the bundle (a bad --model is the caller's to fix). */
export function loadBundleTokenizer(dir: string, maxTokens: number): BundleTokenizer {
  try {
    return loadTokenizer(dir, maxTokens);
  } catch (err) {
    throw new UsageError(`cannot load the tokenizer of ${dir}: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]!.trim()}`, { field: '--model' });
  }
}

/**
 * The tokenizer's side of a model, the same whether the session runs on this thread (model.ts)
 * or in a worker (model-worker.ts: tokenising stays here, so validation and token counts do not
 * depend on where the model runs), plus the tiny warm-up batch run through `embed`.
 */
export function tokenizerFacade(
  tokenizer: BundleTokenizer,
  embed: LoadedModel['embed'],
): Pick<LoadedModel, 'encode' | 'encodeIds' | 'tokenText'> & { warmup(): Promise<void> } {
  const warmupBatch = [tokenizer.encode('warm up'), tokenizer.encode('a slightly longer warm up text')];
  return {
    encode: (text: string) => tokenizer.encode(text),
    encodeIds: (ids: number[]) => tokenizer.encodeIds(ids),
    tokenText: (id: number) => tokenizer.tokenText(id),
    async warmup() {
      await embed(warmupBatch);
    },
  };
}

/** Where `needle` starts inside `hay` (the content between the template's special tokens). */
function findRun(hay: number[], needle: number[]): number {
  outer: for (let s = 0; s + needle.length <= hay.length; s++) {
    for (let i = 0; i < needle.length; i++) if (hay[s + i] !== needle[i]) continue outer;
    return s;
  }
  return -1;
}
