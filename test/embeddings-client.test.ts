import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createEmbeddingsClient,
  estimateCost,
  parseHeaders,
  parseRetryAfter,
  resolveEndpoint,
} from '../src/adapters/embeddings-client.js';
import { createEmbeddingCache } from '../src/adapters/embedding-cache.js';
import { ExternalError, UsageError } from '../src/errors.js';
import { hashVector, redirectFetch, startFakeEmbeddings } from './helpers/fake-embeddings.js';

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (stops.length) await stops.pop()!();
});

async function fake(o: Parameters<typeof startFakeEmbeddings>[0] = {}) {
  const s = await startFakeEmbeddings(o);
  stops.push(s.stop);
  return s;
}

const sleeps: number[] = [];
const recordSleep = async (ms: number) => void sleeps.push(ms);

describe('resolveEndpoint', () => {
  it('maps base URLs and full endpoints to the URL and shape we POST', () => {
    expect(resolveEndpoint('http://127.0.0.1:8080')).toMatchObject({ endpoint: 'http://127.0.0.1:8080/v1/embeddings', shape: 'embedctl' });
    expect(resolveEndpoint('http://h:1/v1')).toMatchObject({ endpoint: 'http://h:1/v1/embeddings' });
    expect(resolveEndpoint('https://api.jina.ai/v1/embeddings')).toMatchObject({ endpoint: 'https://api.jina.ai/v1/embeddings', shape: 'jina' });
    expect(resolveEndpoint('https://api.jina.ai')).toMatchObject({ endpoint: 'https://api.jina.ai/v1/embeddings', shape: 'jina' });
    expect(resolveEndpoint('https://api.openai.com/v1/embeddings')).toMatchObject({ shape: 'openai' });
    expect(resolveEndpoint('http://tei:80/embed')).toMatchObject({ endpoint: 'http://tei/embed', shape: 'tei' });
    expect(resolveEndpoint('http://tei:3000', 'tei')).toMatchObject({ endpoint: 'http://tei:3000/embed', shape: 'tei' });
    expect(() => resolveEndpoint('nope', 'auto', '--reference')).toThrow(/--reference: not a URL/);
    expect(() => resolveEndpoint('ftp://x/', 'auto', '--candidate')).toThrow(UsageError);
  });

  it('parses headers and Retry-After in both forms', () => {
    expect(parseHeaders(['Authorization: Bearer a:b', 'X-Team:  search'])).toEqual({ Authorization: 'Bearer a:b', 'X-Team': 'search' });
    expect(() => parseHeaders(['no colon'], '--reference-header')).toThrow(/--reference-header: expected "Name: value"/);
    expect(parseRetryAfter('3')).toBe(3000);
    expect(parseRetryAfter('0.5')).toBe(500);
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:07 GMT', now)).toBe(7000);
    expect(parseRetryAfter('garbage')).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });
});

describe('embeddings client against a local server', () => {
  it('batches, bounds concurrency and keeps input order even when the server answers out of order', async () => {
    const s = await fake({ dim: 8, reverse: true });
    const texts = Array.from({ length: 23 }, (_, i) => `text number ${i}`);
    const progress: number[] = [];
    const c = createEmbeddingsClient({ url: s.url, batchSize: 5, concurrency: 2, onProgress: (d) => progress.push(d) });
    const r = await c.embed(texts);
    expect(s.requests).toHaveLength(5);
    expect(s.requests.map((q) => (q.body.input as string[]).length).sort()).toEqual([3, 5, 5, 5, 5]);
    texts.forEach((t, i) => expect(Array.from(r.vectors[i]!)).toEqual(Array.from(Float32Array.from(hashVector(t, 8)))));
    expect(r.usage.tokens).toBe(23 * 3);
    expect(progress.at(-1)).toBe(23);
    expect(r.requests).toBe(5);
  });

  it('retries 429 honouring Retry-After, then 503 with jittered backoff, then succeeds', async () => {
    sleeps.length = 0;
    const s = await fake({
      script: (n) =>
        n === 0 ? { status: 429, headers: { 'retry-after': '2' } } : n === 1 ? { status: 503, body: 'upstream busy' } : undefined,
    });
    const retries: string[] = [];
    const c = createEmbeddingsClient({ url: s.url, sleep: recordSleep, random: () => 0.5, backoffBaseMs: 100, onRetry: (i) => retries.push(i.reason) });
    const r = await c.embed(['a', 'b']);
    expect(s.requests).toHaveLength(3);
    expect(r.vectors).toHaveLength(2);
    // Retry-After: 2 s exactly; then full jitter 0.5 * 100 * 2^1.
    expect(sleeps).toEqual([2000, 100]);
    expect(retries[0]).toMatch(/HTTP 429/);
    expect(retries[1]).toMatch(/HTTP 503: upstream busy/);
  });

  it('a 400 is not retried: exactly one request, an ExternalError naming endpoint, status and message', async () => {
    const s = await fake({ script: () => ({ status: 400, body: JSON.stringify({ error: { message: 'input too long' } }) }) });
    const c = createEmbeddingsClient({ url: s.url, sleep: recordSleep });
    const err = await c.embed(['x']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExternalError);
    expect((err as Error).message).toBe(`${s.url}/v1/embeddings: HTTP 400: input too long`);
    expect(s.requests).toHaveLength(1);
  });

  it('gives up after the retry budget with the last status', async () => {
    const s = await fake({ script: () => ({ status: 502, body: 'bad gateway' }) });
    const c = createEmbeddingsClient({ url: s.url, sleep: recordSleep, retries: 2 });
    await expect(c.embed(['x'])).rejects.toThrow(/HTTP 502: bad gateway \(gave up after 3 attempts\)/);
    expect(s.requests).toHaveLength(3);
  });

  it('retries a connection refused, and a timeout, as network errors', async () => {
    const s = await fake();
    const dead = `http://127.0.0.1:${s.port}`;
    await s.stop();
    stops.pop();
    const c = createEmbeddingsClient({ url: dead, sleep: recordSleep, retries: 1 });
    await expect(c.embed(['x'])).rejects.toThrow(/network error: ECONNREFUSED.*gave up after 2 attempts/);

    const slow = await fake({ script: () => undefined });
    let calls = 0;
    const hanging: typeof fetch = (input, init) => {
      calls++;
      // First attempt never answers until aborted by the timeout; the second goes through.
      if (calls === 1) return new Promise((_, reject) => init!.signal!.addEventListener('abort', () => reject(init!.signal!.reason)));
      return fetch(input, init);
    };
    const c2 = createEmbeddingsClient({ url: slow.url, fetch: hanging, timeoutMs: 50, sleep: recordSleep });
    const r = await c2.embed(['y']);
    expect(calls).toBe(2);
    expect(r.vectors[0]!.length).toBe(16);
  });

  it('refuses NaN, empty and ragged vectors naming the text index', async () => {
    const nan = await fake({ vectorOf: (t) => (t === 'bad' ? [1, Number.NaN] : [1, 0]) });
    // JSON has no NaN: the server sends null, which must not turn into a 0.
    await expect(createEmbeddingsClient({ url: nan.url }).embed(['ok', 'bad'])).rejects.toThrow(/text #1: NaN at dimension 1/);
    const empty = await fake({ vectorOf: () => [] });
    await expect(createEmbeddingsClient({ url: empty.url }).embed(['a'])).rejects.toThrow(/text #0: empty vector/);
    const ragged = await fake({ vectorOf: (t) => (t === 'b' ? [1, 2, 3] : [1, 2]) });
    await expect(createEmbeddingsClient({ url: ragged.url, batchSize: 1, concurrency: 1 }).embed(['a', 'b'])).rejects.toThrow(
      /text #1 came back with 3 dimensions, earlier ones with 2/,
    );
  });

  it('speaks the Jina shape with JINA_API_KEY, and a --header Authorization overrides it', async () => {
    const s = await fake();
    const c = createEmbeddingsClient({
      url: 'https://api.jina.ai/v1/embeddings',
      fetch: redirectFetch(s.url),
      env: { JINA_API_KEY: 'jina_secret' },
      task: 'retrieval.passage',
      dimensions: 16,
    });
    expect(c.paid).toBe(true);
    const r = await c.embed(['hello']);
    expect(r.model).toBe('jina-embeddings-v3');
    expect(s.requests[0]!.headers.authorization).toBe('Bearer jina_secret');
    expect(s.requests[0]!.body).toEqual({
      model: 'jina-embeddings-v3',
      input: ['hello'],
      task: 'retrieval.passage',
      dimensions: 16,
      normalized: true,
      late_chunking: false,
      embedding_type: 'float',
    });
    const o = createEmbeddingsClient({
      url: 'https://api.openai.com/v1/embeddings',
      fetch: redirectFetch(s.url),
      env: { OPENAI_API_KEY: 'sk-1' },
      headers: { Authorization: 'Bearer override' },
    });
    await o.embed(['x']);
    expect(s.requests[1]!.headers.authorization).toBe('Bearer override');
    expect(s.requests[1]!.body).toEqual({ model: 'text-embedding-3-small', input: ['x'], encoding_format: 'float' });
  });

  it('speaks TEI on /embed', async () => {
    const s = await fake({ dim: 4 });
    const r = await createEmbeddingsClient({ url: `${s.url}/embed` }).embed(['p', 'q']);
    expect(s.requests[0]!.body).toEqual({ inputs: ['p', 'q'], normalize: true, truncate: true });
    expect(Array.from(r.vectors[1]!)).toEqual(Array.from(Float32Array.from(hashVector('q', 4))));
  });

  it('the on-disk cache makes a second run send zero requests, and a different task misses', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'embedctl-cache-'));
    try {
      const s = await fake({ dim: 8, model: 'served-model' });
      const cache = createEmbeddingCache(dir);
      const texts = ['alpha', 'beta', 'alpha', 'gamma'];
      const first = await createEmbeddingsClient({ url: s.url, cache }).embed(texts);
      expect(s.requests).toHaveLength(1);
      // Duplicates are sent once.
      expect(s.requests[0]!.body.input).toEqual(['alpha', 'beta', 'gamma']);
      const second = await createEmbeddingsClient({ url: s.url, cache: createEmbeddingCache(dir) }).embed(texts);
      expect(s.requests).toHaveLength(1);
      expect(second.cached).toBe(4);
      expect(second.model).toBe('served-model');
      second.vectors.forEach((v, i) => expect(Array.from(v)).toEqual(Array.from(first.vectors[i]!)));
      await createEmbeddingsClient({ url: s.url, cache, task: 'retrieval.query' }).embed(texts);
      expect(s.requests).toHaveLength(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('estimates cost only for paid endpoints or a given price', () => {
    const free = createEmbeddingsClient({ url: 'http://127.0.0.1:9' });
    expect(estimateCost(free, ['abcd'])).toBeUndefined();
    const est = estimateCost(free, ['a'.repeat(4000)], 1000);
    expect(est!.tokens).toBe(1001);
    expect(est!.usd).toBeCloseTo(1.001, 6);
    const jina = createEmbeddingsClient({ url: 'https://api.jina.ai' });
    expect(estimateCost(jina, ['x'.repeat(400)])!.pricePerMillion).toBeGreaterThan(0);
  });
});
