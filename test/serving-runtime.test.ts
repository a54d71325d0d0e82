import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisHandle } from './helpers/redis-server.js';
import { startRuntime, type RuntimeHandle } from './helpers/runtime.js';

/**
 * Issue 17's "must show" against real processes: runtimes (node dist/runtime/main.js, default
 * model) over real HTTP, sharing a real redis-server on loopback.
 */

const TEAM_A = 'sk-team-a-0123456789abcdef';
const OPS = 'sk-ops-0123456789abcdef';
const JWT_SECRET = 'jwt-secret-for-tests-at-least-32-bytes!';
const dir = mkdtempSync(join(tmpdir(), 'embedctl-serving-'));
const keysFile = join(dir, 'keys.yaml');
writeFileSync(keysFile, `keys:\n  - name: team-a\n    key: ${TEAM_A}\n    requestsPerMinute: 5\n  - name: ops\n    key: ${OPS}\n    scopes: [admin]\n`);

interface Emb {
  data: Array<{ embedding: number[] }>;
  usage: { prompt_tokens: number };
  error?: { message: string; code: string };
}

const post = async (rt: RuntimeHandle, input: string | string[], key?: string) => {
  const res = await fetch(`${rt.url}/v1/embeddings`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify({ input }),
  });
  return { status: res.status, headers: res.headers, json: (await res.json()) as Emb };
};

/** Sum of a metric's samples (all label sets) in Prometheus text. */
const metric = async (rt: RuntimeHandle, name: string, key?: string): Promise<number> => {
  const text = await fetch(`${rt.url}/metrics`, { headers: key ? { authorization: `Bearer ${key}` } : {} }).then((r) => r.text());
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'gm'))) sum += Number(m[1]);
  return sum;
};

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('response cache in one runtime (in-process tier)', () => {
  let rt: RuntimeHandle;
  beforeAll(async () => {
    rt = await startRuntime({ args: ['--cache-size', '10000'] });
  });
  afterAll(() => rt?.stop());

  it('answers the same request twice, the second from cache: hit +1, no model batch, identical vectors', async () => {
    const first = await post(rt, 'the river runs through the old city');
    const hits0 = await metric(rt, 'embedctl_cache_hits_total');
    const batches0 = await metric(rt, 'embedctl_batch_size_count');
    const second = await post(rt, 'the river runs through the old city');
    expect(second.status).toBe(200);
    expect(await metric(rt, 'embedctl_cache_hits_total')).toBe(hits0 + 1);
    expect(await metric(rt, 'embedctl_batch_size_count')).toBe(batches0);
    expect(second.json.data[0]!.embedding).toEqual(first.json.data[0]!.embedding);
    expect(second.json.usage).toEqual(first.json.usage);
  });

  it('runs the model for the 10 misses of a 100-input request with 90 cached', async () => {
    const texts = Array.from({ length: 100 }, (_, i) => `market report number ${i} on winter coffee prices`);
    await post(rt, texts.slice(0, 90));
    const [misses0, embedded0] = [await metric(rt, 'embedctl_cache_misses_total'), await metric(rt, 'embedctl_batch_size_sum')];
    const r = await post(rt, texts);
    expect(r.status).toBe(200);
    expect(r.json.data).toHaveLength(100);
    expect(await metric(rt, 'embedctl_cache_misses_total')).toBe(misses0 + 10);
    // embedctl_batch_size_sum counts inputs through the model.
    expect(await metric(rt, 'embedctl_batch_size_sum')).toBe(embedded0 + 10);
  });

  it('reports the cache in /health and empties it with DELETE /admin/cache (loopback, no auth configured)', async () => {
    const health = (await fetch(`${rt.url}/health`).then((r) => r.json())) as { cache: { hits: number; memory: { entries: number } } };
    expect(health.cache.memory.entries).toBeGreaterThanOrEqual(101);
    const del = await fetch(`${rt.url}/admin/cache?model=default`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    expect(((await del.json()) as { cleared: { memory: number } }).cleared.memory).toBeGreaterThanOrEqual(101);
    const misses0 = await metric(rt, 'embedctl_cache_misses_total');
    await post(rt, 'the river runs through the old city');
    expect(await metric(rt, 'embedctl_cache_misses_total')).toBe(misses0 + 1);
  });
});

describe('two runtimes sharing one real Redis, with a keys file', () => {
  let redis: RedisHandle;
  let a: RuntimeHandle;
  let b: RuntimeHandle;
  let probe: Redis;
  beforeAll(async () => {
    redis = await startRedis();
    const args = ['--cache-redis', redis.url, '--keys-file', keysFile, '--metrics-port', '0'];
    [a, b] = await Promise.all([startRuntime({ args, env: { EMBEDCTL_JWT_SECRET: JWT_SECRET } }), startRuntime({ args, env: { EMBEDCTL_JWT_SECRET: JWT_SECRET } })]);
    probe = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    await probe.connect();
  });
  afterAll(async () => {
    probe?.disconnect();
    await Promise.all([a?.stop(), b?.stop()]);
    await redis?.stop();
  });

  const cacheKeys = () => probe.keys('embedctl:cache:*');

  it('refuses a wrong key (401), an embed key on /admin/stats (403), and a bad or expired JWT (401 with the reason)', async () => {
    const wrong = await post(a, 'hello', 'sk-not-a-key-0000000000');
    expect(wrong.status).toBe(401);
    expect(wrong.json.error!.code).toBe('invalid_api_key');
    expect((await fetch(`${a.url}/admin/stats`, { headers: { authorization: `Bearer ${TEAM_A}` } })).status).toBe(403);
    const stats = await fetch(`${a.url}/admin/stats`, { headers: { authorization: `Bearer ${OPS}` } });
    expect(stats.status).toBe(200);
    expect(await stats.json()).toMatchObject({ schema: 'embedctl.admin-stats/v1' });
    // The admin key is not an embedding key.
    expect((await post(a, 'hello', OPS)).status).toBe(403);

    const sign = (secret: string, exp: number | string) =>
      new SignJWT({ sub: 'jwt-user' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(exp).sign(new TextEncoder().encode(secret));
    const good = await post(a, 'jwt text', await sign(JWT_SECRET, '5m'));
    expect(good.status).toBe(200);
    const forged = await post(a, 'jwt text', await sign('some-other-secret-that-is-32-bytes-long', '5m'));
    expect(forged.status).toBe(401);
    expect(forged.json.error).toMatchObject({ code: 'jwt_bad_signature', message: expect.stringMatching(/signature/) });
    const expired = await post(a, 'jwt text', await sign(JWT_SECRET, Math.floor(Date.now() / 1000) - 120));
    expect(expired.status).toBe(401);
    expect(expired.json.error).toMatchObject({ code: 'jwt_expired', message: expect.stringMatching(/expired/) });

    // /metrics needs a key once callers have names; the --metrics-port listener does not.
    expect((await fetch(`${a.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${a.url}/metrics`, { headers: { authorization: `Bearer ${TEAM_A}` } })).status).toBe(403);
    expect((await fetch(`${a.url}/metrics`, { headers: { authorization: `Bearer ${OPS}` } })).status).toBe(200);
    const scrapeUrl = a.events().find((e) => e.event === 'metrics_listening')?.url as string;
    const scraped = await fetch(scrapeUrl).then((r) => r.text());
    expect(scraped).toMatch(/^embedctl_caller_requests_total\{caller="jwt-user",status="200"\} 1$/m);
  });

  it('serves a text cached by one runtime as a hit on the other', async () => {
    const text = 'shared between replicas: green ocean island';
    const before = (await cacheKeys()).length;
    const first = await post(a, text, TEAM_A);
    expect(first.status).toBe(200);
    // The store is not awaited by the response; wait until Redis has it.
    await expect.poll(async () => (await cacheKeys()).length, { timeout: 5000 }).toBe(before + 1);
    const hits0 = await metric(b, 'embedctl_cache_hits_total', OPS);
    const batches0 = await metric(b, 'embedctl_batch_size_count', OPS);
    const second = await post(b, text, TEAM_A);
    expect(second.status).toBe(200);
    expect(await metric(b, 'embedctl_cache_hits_total', OPS)).toBe(hits0 + 1);
    expect(await metric(b, 'embedctl_batch_size_count', OPS)).toBe(batches0);
    expect(second.json.data[0]!.embedding).toEqual(first.json.data[0]!.embedding);
  });

  it('holds a 5 requests/min limit across both runtimes: the 6th gets 429 with the OpenAI headers', async () => {
    await probe.del('embedctl:ratelimit:v1:team-a');
    const results = [];
    for (let i = 0; i < 6; i++) results.push(await post(i % 2 ? b : a, `limit test ${i}`, TEAM_A));
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 429]);
    expect(results[0]!.headers.get('x-ratelimit-limit-requests')).toBe('5');
    expect(results[0]!.headers.get('x-ratelimit-remaining-requests')).toBe('4');
    const refused = results[5]!;
    expect(refused.json.error!.code).toBe('rate_limit_exceeded');
    expect(refused.headers.get('x-ratelimit-limit-requests')).toBe('5');
    expect(refused.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(refused.headers.get('x-ratelimit-reset-requests')).toMatch(/^(\d+m)?\d+s$/);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // Access log: the caller's name, never its key.
    await expect.poll(() => a.events().filter((e) => e.event === 'request' && e.caller === 'team-a').length).toBeGreaterThanOrEqual(3);
    expect(a.stderrLines().some((l) => l.includes(TEAM_A))).toBe(false);
    const stats = (await fetch(`${b.url}/admin/stats`, { headers: { authorization: `Bearer ${OPS}` } }).then((r) => r.json())) as { callers: Record<string, { rateLimited: number }> };
    expect(stats.callers['team-a']!.rateLimited).toBe(1);
  });

  it('keeps answering when Redis is killed mid-run, counting the misses', async () => {
    await probe.del('embedctl:ratelimit:v1:team-a');
    const misses0 = await metric(a, 'embedctl_cache_misses_total', OPS);
    probe.disconnect();
    await redis.kill();
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await post(a, `after the outage ${i}`, TEAM_A));
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(answers.every((r) => r.json.data[0]!.embedding.length === 100)).toBe(true);
    expect(await metric(a, 'embedctl_cache_misses_total', OPS)).toBe(misses0 + 3);
    expect(await metric(a, 'embedctl_cache_errors_total', OPS)).toBeGreaterThanOrEqual(3);
  });
});
