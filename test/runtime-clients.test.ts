import { PassThrough } from 'node:stream';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type Model } from '../runtime/inference/model.js';
import { main } from '../src/cli.js';
import { sleep, type Context } from '../src/context.js';
import { cosine } from './helpers/reference-math.js';

/**
 * The real client of each API shape against `embedctl serve` (in-process, tiny-bert): the
 * `openai` SDK, the official `ollama` JS client's embed(), and TEI's POST /embed, /tokenize,
 * /info with its error codes; every vector equal to a direct run of the same bundle.
 */

let url: string;
let stop: () => Promise<number>;
let direct: Model;
const TEXTS = ['the river runs through the city', 'green tea and coffee'];

beforeAll(async () => {
  const ac = new AbortController();
  const stdout = new PassThrough();
  let out = '';
  stdout.on('data', (d) => (out += d));
  const ctx: Context = {
    stdout,
    stderr: new PassThrough().resume(),
    env: { PATH: process.env.PATH, HOME: process.env.HOME, CI: 'true' },
    cwd: process.cwd(),
    now: () => new Date(),
    sleep,
    isTTY: false,
    signal: ac.signal,
    adapters: {},
  } as Context;
  const running = main(['node', 'embedctl', 'serve', '--model', 'tiny-bert', '--model-alias', 'nomic-embed-text', '--port', '0', '--json'], ctx);
  const deadline = Date.now() + 30_000;
  while (!out.includes('"url"')) {
    if (Date.now() > deadline) throw new Error(`serve did not start: ${out}`);
    await sleep(20);
  }
  url = (JSON.parse(out) as { url: string }).url;
  stop = async () => {
    ac.abort();
    return running;
  };
  direct = await loadModel('tiny-bert');
});
afterAll(async () => {
  await stop?.();
  await direct?.close();
});

const ref = async (t: string) => (await direct.embed([direct.encode(t)]))[0]!;

describe('real clients against embedctl serve', () => {
  it('the openai SDK: embeddings.create (float and its default base64), models.list, and a 404 for an unknown model', async () => {
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const r = await client.embeddings.create({ model: 'tiny-bert', input: TEXTS, encoding_format: 'float' });
    expect(r.data).toHaveLength(2);
    for (let i = 0; i < 2; i++) expect(cosine(r.data[i]!.embedding, await ref(TEXTS[i]!))).toBeGreaterThanOrEqual(0.99999);
    // Without encoding_format the SDK asks for base64 and decodes it itself.
    const b = await client.embeddings.create({ model: 'nomic-embed-text', input: TEXTS[0]! });
    expect(cosine(b.data[0]!.embedding, await ref(TEXTS[0]!))).toBeGreaterThanOrEqual(0.99999);
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['tiny-bert', 'nomic-embed-text']);
    const err = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'x' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.NotFoundError);
    expect((err as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
  });

  it("the ollama client's embed() (and the older /api/embeddings, /api/tags)", async () => {
    const ollama = new Ollama({ host: url });
    const r = await ollama.embed({ model: 'nomic-embed-text', input: TEXTS });
    expect(r.model).toBe('tiny-bert');
    expect(r.embeddings).toHaveLength(2);
    for (let i = 0; i < 2; i++) expect(cosine(r.embeddings[i]!, await ref(TEXTS[i]!))).toBeGreaterThanOrEqual(0.99999);
    expect(r.prompt_eval_count).toBeGreaterThan(0);
    const old = await ollama.embeddings({ model: 'tiny-bert', prompt: TEXTS[1]! });
    expect(cosine(old.embedding, await ref(TEXTS[1]!))).toBeGreaterThanOrEqual(0.99999);
    const tags = await ollama.list();
    expect(tags.models.map((m) => m.name)).toEqual(['tiny-bert', 'nomic-embed-text']);
    const missing = await ollama.embed({ model: 'llama3', input: 'x' }).catch((e: unknown) => e);
    expect((missing as { status_code?: number }).status_code).toBe(404);
    expect((missing as Error).message).toMatch(/'llama3' does not exist/);
  });

  it('TEI: POST /embed, /tokenize and GET /info, with TEI error codes 422 and 413', async () => {
    const post = (path: string, body: unknown) => fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const r = await post('/embed', { inputs: TEXTS });
    expect(r.status).toBe(200);
    const vectors = (await r.json()) as number[][];
    for (let i = 0; i < 2; i++) expect(cosine(vectors[i]!, await ref(TEXTS[i]!))).toBeGreaterThanOrEqual(0.99999);
    const one = (await post('/embed', { inputs: TEXTS[0] }).then((x) => x.json())) as number[][];
    expect(one).toHaveLength(1);
    const tok = (await post('/tokenize', { inputs: 'green tea' }).then((x) => x.json())) as Array<Array<{ id: number; text: string; special: boolean }>>;
    expect(tok[0]!.map((t) => t.text)).toEqual(['[CLS]', 'green', 'tea', '[SEP]']);
    expect(tok[0]!.map((t) => t.special)).toEqual([true, false, false, true]);
    const info = (await fetch(`${url}/info`).then((x) => x.json())) as { model_id: string; max_input_length: number };
    expect(info).toMatchObject({ model_id: 'tiny-bert', max_input_length: 64 });
    // TEI refuses over-long input unless truncate is set: 422 validation, in TEI's error shape.
    const long = await post('/embed', { inputs: 'word '.repeat(200) });
    expect(long.status).toBe(422);
    expect(await long.json()).toMatchObject({ error_type: 'validation' });
    expect((await post('/embed', { inputs: 'word '.repeat(200), truncate: true })).status).toBe(200);
    const big = await fetch(`${url}/embed`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: 'x'.repeat(6 * 2 ** 20) }) });
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ error_type: 'payload_too_large' });
  });
});
