import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bucketOf, createHybridClient, HybridClientError, routesToSelfHosted, type HybridClientOptions } from '../src/client/index.js';
import { startFakeEmbeddings, type FakeOptions } from './helpers/fake-embeddings.js';
import { pool, stopAfterEach } from './helpers/gateway.js';

type Fake = Awaited<ReturnType<typeof startFakeEmbeddings>>;
const servers = stopAfterEach<Fake>();
async function fake(o: FakeOptions = {}): Promise<Fake> {
  const s = await startFakeEmbeddings({ dim: 4, ...o });
  servers.push(s);
  return s;
}

async function pair(self: FakeOptions = {}, hosted: FakeOptions = {}) {
  const a = await fake(self);
  const b = await fake(hosted);
  const base = (o: Partial<HybridClientOptions> = {}): HybridClientOptions => ({
    selfHosted: { url: a.url, model: 'jina-embeddings-v3' },
    hosted: { url: `${b.url}/v1/embeddings`, model: 'jina-embeddings-v3', shape: 'jina', apiKey: 'jina_secret', task: 'retrieval.query' },
    retries: 2,
    backoffBaseMs: 1,
    ...o,
  });
  return { self: a, hosted: b, base };
}

describe('hybrid client routing', () => {
  it('sends ~percent of keys to self-hosted and counts which side answered', async () => {
    const { self, hosted, base } = await pair();
    const client = createHybridClient(base({ percent: 30 }));
    const n = 500;
    const results = await pool(n, 16, (i) => client.embed([`text ${i}`], { key: `user-${i}` }));
    const selfShare = results.filter((r) => r.backend === 'selfhosted').length / n;
    expect(selfShare).toBeGreaterThan(0.25);
    expect(selfShare).toBeLessThan(0.35);
    const stats = client.stats();
    expect(stats.selfhosted + stats.hosted).toBe(n);
    expect(stats.selfhosted).toBe(self.requests.length);
    expect(stats.hosted).toBe(hosted.requests.length);
    expect(stats.fallbacks).toBe(0);
    expect(results[0]!.vectors[0]).toHaveLength(4);
  });

  it('is sticky per key, and raising the share only moves keys from hosted to self-hosted', async () => {
    const { base } = await pair();
    let percent = 25;
    const client = createHybridClient(base({ percent: () => percent }));
    const keys = Array.from({ length: 300 }, (_, i) => `tenant-${i}`);
    const at25 = (await pool(keys.length, 16, (i) => client.embed(['a'], { key: keys[i]! }))).map((r) => r.backend);
    // same key, other texts, many times: same side every time
    const again = await pool(150, 16, (i) => client.embed([`other ${i}`], { key: keys[i % 50]! }));
    again.forEach((r, i) => expect(r.backend).toBe(at25[i % 50]));
    percent = 60;
    const at60 = keys.map((k) => client.route(k));
    at25.forEach((side, i) => {
      if (side === 'selfhosted') expect(at60[i]).toBe('selfhosted');
    });
    expect(at60.filter((s) => s === 'selfhosted').length).toBeGreaterThan(at25.filter((s) => s === 'selfhosted').length);
    // the bucket is the threshold: a key is self-hosted exactly while percent > its bucket
    for (const k of keys.slice(0, 40)) {
      const b = bucketOf(k);
      expect(routesToSelfHosted(k, b + 1)).toBe(true);
      expect(routesToSelfHosted(k, b)).toBe(false);
    }
    await expect(client.embed(['x'], { key: '' })).rejects.toThrow(/needs a key/);
  });

  it('sends the hosted API its own shape and key', async () => {
    const { hosted, base } = await pair();
    const client = createHybridClient(base({ percent: 0 }));
    const r = await client.embed(['q1', 'q2'], { key: 'k' });
    expect(r).toMatchObject({ backend: 'hosted', fellBack: false, percent: 0 });
    expect(r.vectors).toHaveLength(2);
    expect(hosted.requests[0]!.body).toEqual({ model: 'jina-embeddings-v3', input: ['q1', 'q2'], task: 'retrieval.query' });
    expect(hosted.requests[0]!.headers.authorization).toBe('Bearer jina_secret');
  });
});

describe('hybrid client failures', () => {
  const down: FakeOptions = { script: () => ({ status: 503 }) };

  it('falls back to hosted when self-hosted fails and both serve the same model', async () => {
    const { self, hosted, base } = await pair(down);
    const client = createHybridClient(base({ percent: 100 }));
    const r = await client.embed(['hello'], { key: 'u1' });
    expect(r).toMatchObject({ backend: 'hosted', fellBack: true });
    expect(self.requests).toHaveLength(3); // first try + 2 retries
    expect(hosted.requests).toHaveLength(1);
    expect(client.stats()).toMatchObject({ selfhosted: 0, hosted: 1, fallbacks: 1, retries: 2, errors: { selfhosted: 1, hosted: 0 } });
  });

  it('never falls back across different models: the error surfaces', async () => {
    const { hosted, base } = await pair(down);
    const client = createHybridClient(base({ percent: 100, selfHosted: { url: servers[0]!.url, model: 'bge-small-en-v1.5' } }));
    const err = await client.embed(['hello'], { key: 'u1' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HybridClientError);
    expect((err as HybridClientError).backend).toBe('selfhosted');
    expect((err as Error).message).toMatch(/^selfhosted: HTTP 503/);
    expect(hosted.requests).toHaveLength(0);
    // sameModel: true is the caller vouching that the two are the same model under two names
    const vouched = createHybridClient(base({ percent: 100, selfHosted: { url: servers[0]!.url, model: 'local-name' }, sameModel: true }));
    expect((await vouched.embed(['hello'], { key: 'u1' })).fellBack).toBe(true);
  });

  it('a bad request from self-hosted is not retried and not hidden by a fallback', async () => {
    const { self, hosted, base } = await pair({ script: () => ({ status: 400, body: '{"error":{"message":"input too long"}}' }) });
    const client = createHybridClient(base({ percent: 100 }));
    await expect(client.embed(['x'], { key: 'u' })).rejects.toThrow(/selfhosted: HTTP 400: .*input too long/);
    expect(self.requests).toHaveLength(1);
    expect(hosted.requests).toHaveLength(0);
  });

  it('retries 429/5xx with exponential backoff and jitter, honouring Retry-After', async () => {
    const slept: number[] = [];
    const { self, base } = await pair({
      script: (n) => (n === 0 ? { status: 429, headers: { 'retry-after': '2' } } : n === 1 ? { status: 502 } : n === 2 ? { status: 500 } : undefined),
    });
    const client = createHybridClient(base({ percent: 100, retries: 3, backoffBaseMs: 100, sleep: async (ms) => void slept.push(ms), random: () => 0.5 }));
    const r = await client.embed(['a'], { key: 'u' });
    expect(r).toMatchObject({ backend: 'selfhosted', fellBack: false });
    expect(self.requests).toHaveLength(4);
    // Retry-After: 2 s; then full jitter 0.5 * 100 * 2^1 and 0.5 * 100 * 2^2
    expect(slept).toEqual([2000, 100, 200]);
    expect(client.stats().retries).toBe(3);
  });

  it('does not wait out a Retry-After longer than allowed: it falls back at once', async () => {
    const slept: number[] = [];
    const { self, base } = await pair({ script: () => ({ status: 429, headers: { 'retry-after': '3600' } }) });
    const client = createHybridClient(base({ percent: 100, maxRetryAfterMs: 10_000, sleep: async (ms) => void slept.push(ms) }));
    const r = await client.embed(['a'], { key: 'u' });
    expect(r).toMatchObject({ backend: 'hosted', fellBack: true });
    expect(self.requests).toHaveLength(1);
    expect(slept).toEqual([]);
  });

  it('a timeout counts as a failure and is retried', async () => {
    let calls = 0;
    const { base } = await pair();
    const client = createHybridClient(
      base({
        percent: 100,
        timeoutMs: 50,
        retries: 1,
        fetch: async (url, init) => {
          calls++;
          if (calls === 1) {
            await new Promise((_, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal!.reason)));
          }
          return fetch(url, init);
        },
      }),
    );
    expect((await client.embed(['a'], { key: 'u' })).backend).toBe('selfhosted');
    expect(calls).toBe(2);
  });
});

describe('hybrid client percentage sources', () => {
  const dir = mkdtempSync(join(tmpdir(), 'embedctl-hybrid-'));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reads env, then the env file rollout writes, then the state file; unreadable means hosted', async () => {
    const { base } = await pair();
    const envFile = join(dir, 'traffic.env');
    const stateFile = join(dir, 'rollout.json');
    writeFileSync(stateFile, JSON.stringify({ version: 1, percent: 50 }));
    const mk = (env: Record<string, string>) => createHybridClient(base({ percentFrom: { env: 'SELF_HOSTED_TRAFFIC_PERCENT', envFile, stateFile }, env, refreshMs: 0 }));
    expect(mk({}).percent()).toBe(50);
    writeFileSync(envFile, '# written by embedctl rollout --driver env\nOTHER=1\nSELF_HOSTED_TRAFFIC_PERCENT=25\n');
    const c = mk({});
    expect(c.percent()).toBe(25);
    writeFileSync(envFile, 'SELF_HOSTED_TRAFFIC_PERCENT=75\n');
    expect(c.percent()).toBe(75); // picked up without a restart
    expect(mk({ SELF_HOSTED_TRAFFIC_PERCENT: '10' }).percent()).toBe(10);
    writeFileSync(envFile, 'SELF_HOSTED_TRAFFIC_PERCENT=lots\n');
    rmSync(stateFile);
    const broken = mk({});
    expect(broken.percent()).toBe(0);
    expect((await broken.embed(['a'], { key: 'anyone' })).backend).toBe('hosted');
    // with no source configured at all, the default is the SELF_HOSTED_TRAFFIC_PERCENT variable
    expect(createHybridClient(base({ env: { SELF_HOSTED_TRAFFIC_PERCENT: '100' } })).percent()).toBe(100);
  });
});
