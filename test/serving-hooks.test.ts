import { createServer, type Server } from 'node:http';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddingCache, MemoryLru, parseCacheSize, renderCached, type CacheEntry, type CacheKey } from '../runtime/hooks/cache.js';
import { JwtVerifier } from '../runtime/hooks/jwt.js';
import { KeyStore, parseKeysFile } from '../runtime/hooks/keys.js';
import { ADMIT, debit, formatReset, MemoryLimiter, RedisLimiter } from '../runtime/hooks/limits.js';
import { parseRedisUrl } from '../common/serving-options.js';
import { connectRedis, type SharedRedis } from '../runtime/hooks/redis.js';
import { startRedis, type RedisHandle } from './helpers/redis-server.js';

/**
 * The serving hooks as units, against a real redis-server on loopback: cache tiers, rate-limit
 * buckets (in memory and the Lua script), the keys file, JWT verification with a real JWKS server.
 */

const vec = (...xs: number[]) => new Float32Array(xs);
const key = (text: string, model = 'default'): CacheKey => ({ model, task: undefined, text, truncate: true });
const metricValue = async (reg: Registry, name: string) => (await reg.getSingleMetric(name)!.get()).values.reduce((a, v) => a + v.value, 0);

describe('cache sizes and the in-process LRU', () => {
  it('parses entries and byte sizes, and names the fix for bad values', () => {
    expect(parseCacheSize('10000')).toEqual({ entries: 10000 });
    expect(parseCacheSize('256MB')).toEqual({ bytes: 256 * 2 ** 20 });
    expect(parseCacheSize('1.5GiB')).toEqual({ bytes: 1.5 * 2 ** 30 });
    expect(() => parseCacheSize('lots')).toThrow(/entries \(10000\) or a size \(256MB/);
    expect(() => parseCacheSize('12 parsecs')).toThrow(/entries/);
    expect(() => parseCacheSize('0')).toThrow(/at least 1 entry/);
  });

  it('evicts the least recently used entry by count and by bytes, and expires by TTL', () => {
    const e = (n: number): CacheEntry => ({ vector: new Float32Array(n), tokens: 1 });
    const lru = new MemoryLru({ entries: 2 });
    lru.set('a', e(4));
    lru.set('b', e(4));
    expect(lru.get('a')).toBeDefined(); // a is now the most recent
    lru.set('c', e(4));
    expect(lru.get('b')).toBeUndefined();
    expect([lru.get('a'), lru.get('c')].every(Boolean)).toBe(true);

    const one = 'k1'.length + 400 * 3.75 + 200;
    const byBytes = new MemoryLru({ bytes: one * 2 + 10 });
    byBytes.set('k1', e(100));
    byBytes.set('k2', e(100));
    byBytes.set('k3', e(100));
    expect(byBytes.stats()).toMatchObject({ entries: 2, bytes: one * 2 });
    expect(byBytes.get('k1')).toBeUndefined();
    byBytes.set('huge', e(10_000)); // bigger than the whole cache: not stored, nothing evicted for it
    expect(byBytes.stats().entries).toBe(2);

    let now = 1000;
    const ttl = new MemoryLru({ entries: 10 }, 5000, () => now);
    ttl.set('x', e(1));
    now += 4999;
    expect(ttl.get('x')).toBeDefined();
    now += 2;
    expect(ttl.get('x')).toBeUndefined();
    expect(ttl.stats()).toMatchObject({ entries: 0, bytes: 0 });
  });

  it('renders a vector the cache holds once per output shape, and again after eviction', () => {
    const lru = new MemoryLru({ entries: 1 });
    const held = vec(0.5, 0.5);
    let renders = 0;
    const render = (v: Float32Array) => (renders++, `[${Array.from(v).join(',')}]`);
    expect(renderCached(held, 'f', render)).toBe('[0.5,0.5]'); // not held yet: rendered every time
    expect(renderCached(held, 'f', render)).toBe('[0.5,0.5]');
    lru.set('a', { vector: held, tokens: 1 });
    renderCached(held, 'f', render);
    renderCached(held, 'f', render);
    renderCached(held, 'other shape', render);
    expect(renders).toBe(4);
    lru.set('b', { vector: vec(1), tokens: 1 }); // evicts a
    renderCached(held, 'f', render);
    expect(renders).toBe(5);
  });

  it('keys by model weights, task and truncation, so those never share an entry', async () => {
    const cache = new EmbeddingCache({ memory: { entries: 100 }, registry: new Registry(), modelId: (m) => (m === 'b' ? 'sha-b' : 'sha-a') });
    await cache.set([{ key: key('hello', 'a'), entry: { vector: vec(1, 0), tokens: 3 } }]);
    const got = await cache.get([key('hello', 'a'), key('hello', 'b'), { ...key('hello', 'a'), task: 'retrieval.query' }, { ...key('hello', 'a'), truncate: false }]);
    expect(got.map((g) => g?.tokens)).toEqual([3, undefined, undefined, undefined]);
    expect(cache.stats()).toMatchObject({ hits: 1, misses: 3 });
    expect(await cache.clear('a')).toEqual({ memory: 1, redis: null });
  });
});

describe('with a real redis-server', () => {
  let redis: RedisHandle;
  const conns: SharedRedis[] = [];
  const connect = async () => {
    const c = connectRedis(redis.url, { commandTimeoutMs: 500 });
    conns.push(c);
    expect(await c.connected(5000)).toBe(true);
    return c;
  };
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    for (const c of conns) await c.close();
    await redis?.stop();
  });

  it('shares entries between two caches (two replicas), byte-exact, and clears one model', async () => {
    const [ra, rb] = [await connect(), await connect()];
    const regB = new Registry();
    const a = new EmbeddingCache({ redis: ra, registry: new Registry(), modelId: () => 'w1' });
    const b = new EmbeddingCache({ redis: rb, registry: regB, modelId: () => 'w1' });
    const v = vec(0.1, -0.25, 1e-7, 3.5);
    await a.set([
      { key: key('shared text'), entry: { vector: v, tokens: 7 } },
      { key: key('other model', 'm2'), entry: { vector: vec(1), tokens: 1 } },
    ]);
    const [hit, miss] = await b.get([key('shared text'), key('never stored')]);
    expect(hit!.tokens).toBe(7);
    expect(Array.from(hit!.vector)).toEqual(Array.from(v));
    expect(miss).toBeUndefined();
    expect(await metricValue(regB, 'embedctl_cache_hits_total')).toBe(1);
    expect(await metricValue(regB, 'embedctl_cache_misses_total')).toBe(1);
    expect(await b.clear('default')).toEqual({ memory: null, redis: 1 });
    expect((await a.get([key('other model', 'm2')]))[0]).toBeDefined();
  });

  it('limits 5 requests a minute across two limiters sharing Redis, with OpenAI headers', async () => {
    const [x, y] = [new RedisLimiter(await connect()), new RedisLimiter(await connect())];
    const spec = { requestsPerMinute: 5 };
    const results = [];
    for (let i = 0; i < 6; i++) results.push(await (i % 2 ? y : x).take('team-a', spec, ADMIT));
    expect(results.map((r) => r.allowed)).toEqual([true, true, true, true, true, false]);
    const refused = results[5]!;
    expect(refused.limit).toBe('requests');
    expect(refused.headers['x-ratelimit-limit-requests']).toBe('5');
    expect(refused.headers['x-ratelimit-remaining-requests']).toBe('0');
    expect(refused.headers['x-ratelimit-reset-requests']).toMatch(/^(\d+m)?\d+s$/);
    // One request comes back every 12 s at 5 a minute.
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(11);
    expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(12);
    expect(results[0]!.headers['x-ratelimit-remaining-requests']).toBe('4');
    // Another caller has its own bucket.
    expect((await y.take('team-b', spec, ADMIT)).allowed).toBe(true);
  });

  it('puts a caller in token debt after a large request, refusing until it refills', async () => {
    const lim = new RedisLimiter(await connect());
    const spec = { tokensPerMinute: 600 };
    expect((await lim.take('t', spec, ADMIT)).allowed).toBe(true);
    const after = await lim.take('t', spec, debit(900));
    expect(after.headers['x-ratelimit-remaining-tokens']).toBe('0');
    const refused = await lim.take('t', spec, ADMIT);
    expect(refused).toMatchObject({ allowed: false, limit: 'tokens' });
    // 301 tokens of debt (to reach 1) at 10 tokens/s.
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(29);
    expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(31);
  });

  it('keeps answering when Redis dies: cache misses counted, limits fall back to memory', async () => {
    const own = await startRedis();
    const conn = connectRedis(own.url, { commandTimeoutMs: 200 });
    conns.push(conn);
    expect(await conn.connected(5000)).toBe(true);
    const reg = new Registry();
    const cache = new EmbeddingCache({ redis: conn, registry: reg });
    const lim = new RedisLimiter(conn);
    await cache.set([{ key: key('before'), entry: { vector: vec(1), tokens: 1 } }]);
    expect((await cache.get([key('before')]))[0]).toBeDefined();
    await own.kill();
    const t0 = Date.now();
    const got = await cache.get([key('before'), key('after')]);
    await cache.set([{ key: key('after'), entry: { vector: vec(2), tokens: 1 } }]);
    expect(got).toEqual([undefined, undefined]);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(await metricValue(reg, 'embedctl_cache_misses_total')).toBe(2);
    expect(await metricValue(reg, 'embedctl_cache_errors_total')).toBeGreaterThanOrEqual(2);
    await expect.poll(() => cache.stats().redis?.up, { timeout: 5000 }).toBe(false);
    const spec = { requestsPerMinute: 2 };
    const r = [await lim.take('k', spec, ADMIT), await lim.take('k', spec, ADMIT), await lim.take('k', spec, ADMIT)];
    expect(r.map((d) => d.allowed)).toEqual([true, true, false]);
    expect(lim.stats().redisErrors).toBe(3);
  });
});

describe('in-memory limiter', () => {
  it('refills continuously and honours a burst above the per-minute rate', () => {
    let now = 0;
    const lim = new MemoryLimiter(() => now);
    const spec = { requestsPerMinute: 60, requestsBurst: 3 };
    const take = () => lim.takeSync('c', spec, ADMIT).allowed;
    expect([take(), take(), take(), take()]).toEqual([true, true, true, false]);
    now += 1000; // one request per second comes back
    expect([take(), take()]).toEqual([true, false]);
    expect(formatReset(90_000)).toBe('1m30s');
    expect(formatReset(250)).toBe('250ms');
  });
});

describe('keys file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'embedctl-keys-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads names, hashed keys, scopes and limits; refuses mistakes with the field and the fix', () => {
    const f = parseKeysFile(
      `keys:\n  - name: team-a\n    key: sk-team-a-0123456789\n    requestsPerMinute: 600\n  - name: ops\n    keySha256: ${'9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'}\n    scopes: [admin]\n`,
      'keys.yaml',
    );
    expect(f.keys.map((k) => [k.name, k.scopes, k.limits])).toEqual([
      ['team-a', ['embed'], { requestsPerMinute: 600 }],
      ['ops', ['admin'], {}],
    ]);
    expect(() => parseKeysFile('keys:\n  - name: a\n    key: short\n', 'k.yaml')).toThrow('k.yaml: keys[0].key: use at least 16 characters');
    expect(() => parseKeysFile('keys:\n  - name: a\n', 'k.yaml')).toThrow('k.yaml: keys[0]: give exactly one of "key" or "keySha256"');
    expect(() => parseKeysFile('keys:\n  - name: a\n    key: sk-0123456789abcdef\n    scopes: [root]\n', 'k.yaml')).toThrow(/keys\[0\]\.scopes\[0\]/);
    expect(() => parseKeysFile('keys:\n  - {name: a, key: sk-0123456789abcdef}\n  - {name: a, key: sk-0123456789abcdeg}\n', 'k.yaml')).toThrow(/already used by keys\[0\]/);
    expect(() => parseKeysFile('keys:\n  - {name: a, key: sk-0123456789abcdef}\n  - {name: b, key: sk-0123456789abcdef}\n', 'k.yaml')).toThrow(/same key as keys\[0\]/);
    expect(() => parseKeysFile('keys: [\n', 'k.yaml')).toThrow(/k.yaml: not valid YAML/);
  });

  it('hot-reloads on change (including a rename over it) and keeps the old keys when the new file is broken', async () => {
    const path = join(dir, 'keys.yaml');
    writeFileSync(path, 'keys:\n  - {name: one, key: sk-one-0123456789ab}\n');
    const events: Array<Record<string, unknown>> = [];
    const store = new KeyStore(path, (e) => events.push(e), 50);
    try {
      expect(store.match('sk-one-0123456789ab')?.name).toBe('one');
      expect(store.match('sk-two-0123456789ab')).toBeUndefined();
      const tmp = join(dir, 'keys.yaml.tmp');
      writeFileSync(tmp, 'keys:\n  - {name: two, key: sk-two-0123456789ab}\n');
      renameSync(tmp, path);
      await expect.poll(() => store.match('sk-two-0123456789ab')?.name, { timeout: 5000 }).toBe('two');
      expect(store.match('sk-one-0123456789ab')).toBeUndefined();
      writeFileSync(path, 'keys:\n  - {name: three}\n');
      await expect.poll(() => events.some((e) => e.event === 'keys_reload_failed'), { timeout: 5000 }).toBe(true);
      expect(store.match('sk-two-0123456789ab')?.name).toBe('two');
    } finally {
      store.close();
    }
  });
});

describe('JWT', () => {
  const secret = 'a-test-secret-that-is-at-least-32-bytes-long';
  const hs = new JwtVerifier({ secret, issuer: 'https://idp.test', audience: 'embedctl' });
  const sign = (claims: Record<string, unknown>, s = secret, exp: string | number = '5m') =>
    new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuer('https://idp.test').setAudience('embedctl').setExpirationTime(exp).sign(new TextEncoder().encode(s));

  it('accepts a good HS256 token and names the caller from "sub" with its scopes', async () => {
    expect(await hs.verify(await sign({ sub: 'alice', scope: 'embed admin' }))).toEqual({ name: 'alice', scopes: ['embed', 'admin'] });
    expect(await hs.verify(await sign({ sub: 'bob' }))).toEqual({ name: 'bob', scopes: ['embed'] });
  });

  it('refuses bad signatures, expired tokens, other issuers, with a reason', async () => {
    await expect(hs.verify(await sign({ sub: 'eve' }, 'another-secret-that-is-32-bytes-or-longer'))).rejects.toMatchObject({ code: 'jwt_bad_signature' });
    await expect(hs.verify(await sign({ sub: 'old' }, secret, Math.floor(Date.now() / 1000) - 60))).rejects.toMatchObject({ code: 'jwt_expired', reason: expect.stringMatching(/expired/) });
    const other = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'HS256' }).setIssuer('https://evil').setAudience('embedctl').setExpirationTime('5m').sign(new TextEncoder().encode(secret));
    await expect(hs.verify(other)).rejects.toMatchObject({ code: 'jwt_claim_rejected', reason: expect.stringMatching(/"iss"/) });
    expect(() => new JwtVerifier({ secret: 'short' })).toThrow(/at least 32 bytes/);
  });

  it('verifies ES256 against a JWKS served over HTTP', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    const server: Server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const v = new JwtVerifier({ jwksUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`, nameClaim: 'email' });
      const token = await new SignJWT({ email: 'carol@example.com' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setExpirationTime('5m').sign(privateKey);
      expect((await v.verify(token)).name).toBe('carol@example.com');
      const { privateKey: other } = await generateKeyPair('ES256');
      const forged = await new SignJWT({ email: 'mallory@example.com' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setExpirationTime('5m').sign(other);
      await expect(v.verify(forged)).rejects.toMatchObject({ code: 'jwt_bad_signature' });
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

describe('redis URL', () => {
  it('accepts redis:// and rediss:// only', () => {
    expect(parseRedisUrl('redis://127.0.0.1:6379/0')).toBe('redis://127.0.0.1:6379/0');
    expect(() => parseRedisUrl('http://x')).toThrow(/redis:\/\/ or rediss:\/\//);
    expect(() => parseRedisUrl('localhost')).toThrow(/like redis:\/\/127.0.0.1:6379/);
  });
});
