import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type Model } from '../runtime/inference/model.js';
import { startRuntime, type RuntimeHandle } from './helpers/runtime.js';
import { cosine } from './helpers/reference-math.js';

/**
 * The real runtime process (node dist/runtime/main.js, default model) over real HTTP, compared
 * against the same model bundle loaded directly in this process.
 */

const WORDS = 'the river city music green ocean market winter garden science history light mountain coffee train paper doctor school money forest window summer bread engine island'.split(' ');
/** Deterministic, distinct texts of varied length. */
const text = (i: number) => Array.from({ length: 2 + (i % 9) }, (_, j) => WORDS[(i * 7 + j * 3 + Math.floor(i / 5)) % WORDS.length]).join(' ') + ` ${i}`;

const norm = (a: ArrayLike<number>) => Math.sqrt(Array.from(a).reduce((s, x) => s + x * x, 0));

interface EmbResponse {
  object: string;
  data: Array<{ object: string; index: number; embedding: number[] | string }>;
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
}
interface ErrResponse {
  error: { message: string; type: string; param: string | null; code: string | null };
}

let rt: RuntimeHandle;
let direct: Model;

const post = async (body: unknown, headers: Record<string, string> = {}, path = '/v1/embeddings') => {
  const res = await fetch(rt.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, json: (await res.json()) as EmbResponse & ErrResponse };
};
const directEmbed = async (t: string) => (await direct.embed([direct.encode(t)]))[0]!;

beforeAll(async () => {
  [rt, direct] = await Promise.all([startRuntime({ model: 'default', args: ['--model-alias', 'text-embedding-3-small', '--model-alias', 'jina-embeddings-v3'] }), loadModel('default')]);
});
afterAll(async () => {
  await rt?.stop();
  await direct?.close();
});

describe('runtime over HTTP (default model)', () => {
  it('answers the OpenAI shape with the same vector as a direct run of the model', async () => {
    const inputs = ['the river runs through the city', 'green tea'];
    const r = await post({ input: inputs, model: 'text-embedding-3-small' });
    expect(r.status).toBe(200);
    expect(r.json.object).toBe('list');
    expect(r.json.model).toBe('default');
    expect(r.json.data.map((d) => [d.object, d.index])).toEqual([
      ['embedding', 0],
      ['embedding', 1],
    ]);
    const tokens = inputs.reduce((a, t) => a + direct.encode(t).fullLength, 0);
    expect(r.json.usage).toEqual({ prompt_tokens: tokens, total_tokens: tokens });
    for (let i = 0; i < inputs.length; i++) {
      const v = r.json.data[i]!.embedding as number[];
      expect(v).toHaveLength(100);
      expect(cosine(v, await directEmbed(inputs[i]!))).toBeGreaterThan(0.99999);
    }
    // A plain string input is one embedding, on /embeddings too.
    const one = await post({ input: 'green tea' }, {}, '/embeddings');
    expect(one.json.data).toHaveLength(1);
    expect(cosine(one.json.data[0]!.embedding as number[], r.json.data[1]!.embedding as number[])).toBeGreaterThan(0.999999);
  });

  it('gives 64 concurrent clients each their own vectors, in their order, while batching across them', async () => {
    const before = await fetch(`${rt.url}/metrics`).then((r) => r.text());
    const batchesBefore = Number(/^embedctl_batch_size_count (\d+)/m.exec(before)?.[1] ?? 0);
    const clients = Array.from({ length: 64 }, (_, c) => [text(c * 3), text(c * 3 + 1), text(c * 3 + 2)]);
    const results = await Promise.all(clients.map((inputs) => post({ input: inputs })));
    for (let c = 0; c < clients.length; c++) {
      const r = results[c]!;
      expect(r.status).toBe(200);
      expect(r.json.data.map((d) => d.index)).toEqual([0, 1, 2]);
      for (let i = 0; i < 3; i++) {
        expect(cosine(r.json.data[i]!.embedding as number[], await directEmbed(clients[c]![i]!))).toBeGreaterThan(0.99999);
      }
    }
    const after = await fetch(`${rt.url}/metrics`).then((r) => r.text());
    const batches = Number(/^embedctl_batch_size_count (\d+)/m.exec(after)![1]) - batchesBefore;
    // 192 inputs from 64 requests: far fewer batches than requests means requests were merged.
    expect(batches).toBeGreaterThan(0);
    expect(batches).toBeLessThan(64);
    expect(Number(/^embedctl_batch_size_bucket\{le="1"\} (\d+)/m.exec(after)![1])).toBeLessThan(Number(/^embedctl_batch_size_count (\d+)/m.exec(after)![1]));
  });

  it('accepts the Jina request shape (task, normalized, truncate, {text} inputs)', async () => {
    const r = await post({ model: 'jina-embeddings-v3', task: 'retrieval.passage', normalized: true, truncate: true, embedding_type: 'float', late_chunking: false, input: [{ text: 'green tea' }, 'winter garden'] });
    expect(r.status).toBe(200);
    expect(r.json.model).toBe('default');
    // The default bundle has no task prefixes: the text is embedded as is.
    expect(cosine(r.json.data[0]!.embedding as number[], await directEmbed('green tea'))).toBeGreaterThan(0.99999);
    expect(cosine(r.json.data[1]!.embedding as number[], await directEmbed('winter garden'))).toBeGreaterThan(0.99999);
  });

  it('encodes base64 as little-endian float32 that decodes to the float result', async () => {
    const input = ['science history light', 'winter garden'];
    const [f, b] = await Promise.all([post({ input }), post({ input, encoding_format: 'base64' })]);
    for (let i = 0; i < input.length; i++) {
      const buf = Buffer.from(b.json.data[i]!.embedding as string, 'base64');
      expect(buf.length).toBe(400);
      const decoded = Array.from({ length: 100 }, (_, k) => buf.readFloatLE(k * 4));
      expect(decoded).toEqual((f.json.data[i]!.embedding as number[]).map((x) => Math.fround(x)));
    }
    // Jina's spelling of the same thing.
    const j = await post({ input, embedding_type: 'base64' });
    expect(j.json.data[0]!.embedding).toBe(b.json.data[0]!.embedding);
  });

  it('truncates to Matryoshka dimensions as the re-normalised prefix of the full vector', async () => {
    const input = 'mountain coffee train';
    const full = (await post({ input })).json.data[0]!.embedding as number[];
    for (const d of [64, 32]) {
      const v = (await post({ input, dimensions: d })).json.data[0]!.embedding as number[];
      expect(v).toHaveLength(d);
      expect(Math.abs(norm(v) - 1)).toBeLessThan(1e-5);
      const prefix = full.slice(0, d);
      const pn = norm(prefix);
      prefix.forEach((x, k) => expect(v[k]).toBeCloseTo(x / pn, 6));
    }
    // normalized:false keeps the raw prefix (Jina semantics).
    const raw = (await post({ input, dimensions: 32, normalized: false })).json.data[0]!.embedding as number[];
    raw.forEach((x, k) => expect(x).toBeCloseTo(full[k]!, 6));
  });

  it('packs binary/ubinary embeddings as sign bits', async () => {
    const input = 'paper doctor school';
    const full = (await post({ input })).json.data[0]!.embedding as number[];
    const ub = (await post({ input, embedding_type: 'ubinary' })).json.data[0]!.embedding as number[];
    const b = (await post({ input, embedding_type: 'binary' })).json.data[0]!.embedding as number[];
    expect(ub).toHaveLength(Math.ceil(100 / 8));
    for (let k = 0; k < 100; k++) expect((ub[k >> 3]! >> (7 - (k & 7))) & 1).toBe(full[k]! > 0 ? 1 : 0);
    expect(b).toEqual(ub.map((x) => x - 128));
  });

  const badInputs: Array<[string, unknown, number, string | null, RegExp]> = [
    ['invalid JSON', '{"input": [', 400, null, /not valid JSON/],
    ['a body that is not an object', '[1,2]', 400, null, /JSON object/],
    ['no input', { model: 'default' }, 400, 'input', /'input' is required/],
    ['an empty string', { input: '' }, 400, 'input', /empty string/],
    ['an empty array', { input: [] }, 400, 'input', /empty array/],
    ['an empty string in the array', { input: ['ok', ''] }, 400, 'input', /input\[1\].*empty/],
    ['a number', { input: 42 }, 400, 'input', /string or an array of strings/],
    ['a non-string item', { input: ['ok', { a: 1 }] }, 400, 'input', /input\[1\]' must be a string/],
    ['token ids outside the vocabulary', { input: [[1, 2, 99_999_999]] }, 400, 'input', /outside this model's vocabulary/],
    ['mixed token ids and text', { input: [1, 'x'] }, 400, 'input', /mixes token ids/],
    ['too many inputs', { input: Array.from({ length: 2049 }, () => 'x') }, 400, 'input', /2049 items.*at most 2048/],
    ['an unknown task', { input: 'x', task: 'summarize' }, 400, 'task', /task.*not known/],
    ['dimensions not whole', { input: 'x', dimensions: 50.5 }, 400, 'dimensions', /any whole number from 1 to 100 \(listed sizes: 32, 64, 100\)/],
    ['dimensions over the size', { input: 'x', dimensions: 101 }, 400, 'dimensions', /101/],
    ['dimensions below 1', { input: 'x', dimensions: 0 }, 400, 'dimensions', /0 is not supported/],
    ['dimensions not a number', { input: 'x', dimensions: '32' }, 400, 'dimensions', /whole number/],
    ['a bad encoding_format', { input: 'x', encoding_format: 'int4' }, 400, 'encoding_format', /float, base64, binary, ubinary, int8, uint8/],
    ['a bad embedding_type', { input: 'x', embedding_type: 'int4' }, 400, 'embedding_type', /float, base64, binary, ubinary, int8, uint8/],
    ['normalized not a boolean', { input: 'x', normalized: 'yes' }, 400, 'normalized', /true or false/],
    ['late chunking', { input: 'x', late_chunking: true }, 400, 'late_chunking', /not supported/],
  ];
  it.each(badInputs)('refuses %s with an OpenAI-style error', async (_name, body, status, param, message) => {
    const r = await post(body);
    expect(r.status).toBe(status);
    expect(r.json.error.type).toBe('invalid_request_error');
    expect(r.json.error.param).toBe(param);
    expect(r.json.error.message).toMatch(message);
    expect(typeof r.json.error.code).toBe('string');
  });

  it('refuses an over-long text with truncate:false, naming the index, and truncates it otherwise', async () => {
    const long = Array.from({ length: 600 }, (_, i) => WORDS[i % WORDS.length]).join(' ');
    const r = await post({ input: ['short', long], truncate: false });
    expect(r.status).toBe(400);
    expect(r.json.error).toMatchObject({ param: 'input', code: 'input_too_long' });
    expect(r.json.error.message).toMatch(/input\[1\]' is \d+ tokens, over the model's limit of 512/);
    const ok = await post({ input: ['short', long] });
    expect(ok.status).toBe(200);
    // usage counts the tokens sent, before truncation.
    expect(ok.json.usage.prompt_tokens).toBe(direct.encode('short').fullLength + direct.encode(long).fullLength);
  });

  it('answers 413 for a body over the limit, 404 and 405 with the same error shape', async () => {
    const big = await post({ input: ['x'.repeat(9 * 1024 * 1024)] });
    expect(big.status).toBe(413);
    expect(big.json.error.code).toBe('request_too_large');
    const nf = await fetch(`${rt.url}/v2/nothing`);
    expect(nf.status).toBe(404);
    expect(((await nf.json()) as ErrResponse).error.message).toMatch(/POST \/v1\/embeddings/);
    const na = await fetch(`${rt.url}/v1/embeddings`);
    expect(na.status).toBe(405);
    expect(na.headers.get('allow')).toBe('POST');
    // Still serving after all that.
    expect((await post({ input: 'x' })).status).toBe(200);
  });

  it('reports health, readiness and the model list', async () => {
    const h = (await fetch(`${rt.url}/health`).then((r) => r.json())) as Record<string, unknown>;
    expect(h).toMatchObject({ status: 'ready', model: 'default', provider: 'cpu', dimensions: 100 });
    expect(typeof h.uptimeSeconds).toBe('number');
    expect(h.queue).toEqual({ queued: 0, running: 0, maxQueue: 8192 });
    expect((await fetch(`${rt.url}/ready`)).status).toBe(200);
    const m = (await fetch(`${rt.url}/v1/models`).then((r) => r.json())) as { object: string; data: Array<{ id: string; object: string }> };
    expect(m.object).toBe('list');
    expect(m.data[0]).toMatchObject({ id: 'default', object: 'model' });
    // Aliases are listed too, so OpenAI clients that check the model list find the name they use.
    expect(m.data.map((d) => d.id)).toEqual(['default', 'text-embedding-3-small', 'jina-embeddings-v3']);
  });

  it('answers an unknown model with 404 model_not_found listing what it serves (OpenAI error shape)', async () => {
    const r = await post({ input: 'green tea', model: 'text-embedding-3-large' });
    expect(r.status).toBe(404);
    expect(r.json.error).toMatchObject({ code: 'model_not_found', param: 'model', type: 'invalid_request_error' });
    expect(r.json.error.message).toContain("'text-embedding-3-large'");
    for (const name of ['default', 'text-embedding-3-small', 'jina-embeddings-v3']) expect(r.json.error.message).toContain(`'${name}'`);
    // An alias answers with the served name, so the client sees which vector space it got.
    const viaAlias = await post({ input: 'green tea', model: 'text-embedding-3-small' });
    expect(viaAlias.status).toBe(200);
    expect(viaAlias.json.model).toBe('default');
  });

  it('echoes X-Request-Id and writes one JSON access-log line per request', async () => {
    const r = await post({ input: ['a b c', 'd e'] }, { 'x-request-id': 'req-abc-123' });
    expect(r.headers.get('x-request-id')).toBe('req-abc-123');
    const generated = await post({ input: 'x' });
    expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    await new Promise((res) => setTimeout(res, 50));
    const line = rt.events().find((e) => e.event === 'request' && e.id === 'req-abc-123');
    expect(line).toMatchObject({ method: 'POST', path: '/v1/embeddings', status: 200, inputs: 2 });
    expect(typeof line!.ms).toBe('number');
    expect(line!.tokens).toBeGreaterThan(0);
  });

  it('exports Prometheus metrics by route and status, with tokens, inputs and queue depth', async () => {
    await post({ input: '' });
    const text = await fetch(`${rt.url}/metrics`).then((r) => r.text());
    expect(text).toMatch(/^embedctl_requests_total\{route="\/v1\/embeddings",status="200"\} [1-9]\d*$/m);
    expect(text).toMatch(/^embedctl_requests_total\{route="\/v1\/embeddings",status="400"\} [1-9]\d*$/m);
    expect(text).toMatch(/^embedctl_request_duration_seconds_bucket\{le="0\.1",route="\/v1\/embeddings"\} \d+$/m);
    expect(text).toMatch(/^embedctl_tokens_total [1-9]\d*$/m);
    expect(text).toMatch(/^embedctl_inputs_total [1-9]\d*$/m);
    expect(text).toMatch(/^embedctl_queue_depth 0$/m);
    // Unknown paths share one label, so a scanner cannot blow up the series count.
    await fetch(`${rt.url}/wp-login.php`);
    expect(await fetch(`${rt.url}/metrics`).then((r) => r.text())).toMatch(/route="other",status="404"/);
  });
});
