import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain JS script, no type declarations
import { makeTestModel, writeBundle } from '../scripts/make-test-model.js';
import { startRuntime, type RuntimeHandle } from './helpers/runtime.js';

/**
 * TEI routes on the real runtime: a multi-megabyte input to /tokenize or /embed_all is cut by
 * characters before tokenising (as /v1/embeddings does), so /health keeps answering while it is
 * served; prompt_name must name one of the model's prompts (422 otherwise, as TEI answers).
 * Models: "wide" (a test BERT with token states and prompts; wide enough that /embed_all counts
 * tokens for 600 inputs) and the default model (a fast tokenizer, no special tokens).
 */

let dir: string;
let rt: RuntimeHandle;
const WIDE_MAX_TOKENS = 128;

const post = async (path: string, body: unknown) => {
  const res = await fetch(`${rt.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as any };
};

/**
 * Runs `work` while probing /health one request after another; the slowest probe's time. A
 * probe that waits on a blocked event loop takes as long as the block (seconds before the fix).
 */
async function slowestHealthDuring<T>(work: () => Promise<T>): Promise<{ result: T; slowestMs: number; probes: number }> {
  let done = false;
  let slowestMs = 0;
  let probes = 0;
  const prober = (async () => {
    while (!done) {
      const t0 = performance.now();
      const r = await fetch(`${rt.url}/health`);
      expect(r.status).toBe(200);
      await r.arrayBuffer();
      slowestMs = Math.max(slowestMs, performance.now() - t0);
      probes++;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  let result: T;
  try {
    result = await work();
  } finally {
    done = true;
    // The probe in flight counts: it may be the one that waited on a blocked loop.
    await prober;
  }
  return { result, slowestMs, probes };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'embedctl-tei-guards-'));
  const b = makeTestModel({ layers: 1, hidden: 64, heads: 2, intermediate: 64, maxPositions: WIDE_MAX_TOKENS });
  writeBundle(join(dir, 'wide'), { ...b, manifest: b.manifestFor('wide', 'mean') });
  rt = await startRuntime({ model: join(dir, 'wide'), args: ['--model', 'default'] });
}, 60_000);
afterAll(async () => {
  await rt?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('TEI routes and multi-megabyte inputs', () => {
  it('/tokenize of a 3 MB input answers the tokens the model sees, and /health answers throughout', async () => {
    const big = 'hello world, the river runs through the city '.repeat(Math.ceil(3e6 / 46));
    const { result, slowestMs, probes } = await slowestHealthDuring(() => post('/tokenize', { model: 'default', inputs: [big, 'green tea'] }));
    expect(result.status).toBe(200);
    const [tokens, short] = result.json as Array<Array<{ id: number; text: string; special: boolean }>>;
    // Cut to the model's max tokens, the same tokens as the start of the text gives.
    expect(tokens).toHaveLength(512);
    const head = await post('/tokenize', { model: 'default', inputs: big.slice(0, 4000) });
    expect(tokens!.slice(0, 100)).toEqual(head.json[0].slice(0, 100));
    expect(short!.map((t) => t.text)).toEqual(['green', 'tea']);
    expect(probes).toBeGreaterThan(0);
    // Generous: a probe queued behind the whole-text tokenisation waited seconds.
    expect(slowestMs).toBeLessThan(1000);
  });

  it('/tokenize keeps the special tokens at both ends when it cuts', async () => {
    const big = 'coffee at the market '.repeat(100_000);
    const r = await post('/tokenize', { inputs: big });
    expect(r.status).toBe(200);
    const toks = r.json[0] as Array<{ text: string; special: boolean }>;
    expect(toks).toHaveLength(WIDE_MAX_TOKENS);
    expect([toks[0], toks.at(-1)]).toMatchObject([{ text: '[CLS]', special: true }, { text: '[SEP]', special: true }]);
  });

  it('/embed_all counting a 1 MB input among 600 answers its refusal promptly and /health answers throughout', async () => {
    const big = 'coffee at the market before the bank opens '.repeat(Math.ceil(1e6 / 44));
    const inputs = [big, ...Array.from({ length: 599 }, (_, i) => `note ${i}`)];
    const { result, slowestMs } = await slowestHealthDuring(() => post('/embed_all', { inputs }));
    // truncate defaults to false in TEI: the long input is a validation error, after the count.
    expect(result.status).toBe(422);
    expect(result.json).toMatchObject({ error_type: 'validation' });
    expect(result.json.error).toMatch(new RegExp(`'input\\[0\\]' is over \\d+ tokens, over the model's limit of ${WIDE_MAX_TOKENS}`));
    expect(slowestMs).toBeLessThan(1000);
    // The count still refuses what is over the cap: 600 inputs at max tokens x 64 values.
    const over = await post('/embed_all', { inputs: Array.from({ length: 600 }, () => 'word '.repeat(2 * WIDE_MAX_TOKENS)), truncate: true });
    expect(over.status).toBe(413);
    expect(over.json.error).toMatch(new RegExp(`${600 * WIDE_MAX_TOKENS} token vectors of 64 values`));
  });
});

describe('TEI prompt_name', () => {
  it('applies a prompt of the model: the same vector as its prefix written out', async () => {
    const text = 'green tea at the market';
    const named = await post('/embed', { inputs: text, prompt_name: 'retrieval.query' });
    const spelled = await post('/embed', { inputs: `query: ${text}` });
    const plain = await post('/embed', { inputs: text });
    expect(named.status).toBe(200);
    expect(named.json).toEqual(spelled.json);
    expect(named.json).not.toEqual(plain.json);
    const tok = await post('/tokenize', { inputs: text, prompt_name: 'retrieval.query' });
    expect(tok.json).toEqual((await post('/tokenize', { inputs: `query: ${text}` })).json);
  });

  it('refuses a name that is not a prompt of the model with 422, prototype names included, on every TEI route', async () => {
    for (const name of ['constructor', 'toString', '__proto__', 'no-such-prompt', 42]) {
      for (const path of ['/embed', '/embed_all', '/tokenize']) {
        const r = await post(path, { inputs: 'green tea', prompt_name: name });
        expect(r.status, `${path} ${String(name)}`).toBe(422);
        expect(r.json).toMatchObject({ error_type: 'validation' });
        expect(r.json.error).toMatch(/'prompt_name' .* is not a prompt of wide; use one of retrieval\.query, retrieval\.passage/);
      }
    }
    // A model without prompts takes none.
    const none = await post('/embed', { model: 'default', inputs: 'green tea', prompt_name: 'retrieval.query' });
    expect(none.status).toBe(422);
    expect(none.json.error).toMatch(/is not a prompt of default; it has no prompts/);
    expect((await post('/embed', { inputs: 'green tea', prompt_name: null })).status).toBe(200);
  });
});
