import { describe, expect, it } from 'vitest';
import { CircuitBreaker, createHybridClient, HybridClientError } from '../src/client/index.js';
import { startFakeEmbeddings, type FakeOptions } from './helpers/fake-embeddings.js';
import { pool, stopAfterEach } from './helpers/gateway.js';

type Fake = Awaited<ReturnType<typeof startFakeEmbeddings>>;
const servers = stopAfterEach<Fake>();
async function fake(o: FakeOptions = {}): Promise<Fake> {
  const s = await startFakeEmbeddings({ dim: 4, ...o });
  servers.push(s);
  return s;
}

describe('circuit breaker', () => {
  it('opens after the threshold, lets one probe through after openMs, closes on success and re-opens on failure', () => {
    let now = 1000;
    const b = new CircuitBreaker({ failureThreshold: 2, openMs: 500 }, () => now);
    expect(b.tryAcquire()).toBe(true);
    b.failure();
    expect(b.state()).toBe('closed');
    b.failure();
    expect(b.state()).toBe('open');
    expect(b.tryAcquire()).toBe(false);
    now += 500;
    expect(b.state()).toBe('half-open');
    expect(b.tryAcquire()).toBe(true);
    // One probe at a time.
    expect(b.tryAcquire()).toBe(false);
    b.failure();
    expect(b.snapshot()).toMatchObject({ state: 'open', probeAt: 2000, opened: 1 });
    now += 500;
    expect(b.tryAcquire()).toBe(true);
    b.success();
    expect(b.snapshot()).toMatchObject({ state: 'closed', consecutiveFailures: 0, opened: 1 });
  });
});

describe('hybrid client with replicas and breakers', () => {
  it('one of two replicas answering 500: 0 failed calls, its breaker opens, then closes after it recovers', async () => {
    let failing = true;
    const bad = await fake({ script: () => (failing ? { status: 500 } : undefined) });
    const good = await fake();
    const hosted = await fake();
    const client = createHybridClient({
      selfHosted: [{ url: bad.url, model: 'm' }, { url: good.url, model: 'm' }],
      hosted: { url: hosted.url, model: 'm' },
      percent: 100,
      breaker: { failureThreshold: 2, openMs: 1000 },
      backoffBaseMs: 1,
    });
    const results = await pool(200, 8, (i) => client.embed([`t${i}`], { key: `k${i}` }));
    expect(results.every((r) => r.backend === 'selfhosted' && !r.fellBack)).toBe(true);
    expect(hosted.requests).toHaveLength(0);
    // The faulty replica was tried until its breaker opened, then only by probes.
    expect(bad.requests.length).toBeLessThan(20);
    expect(client.stats().breakers[0]).toMatchObject({ url: bad.url, state: 'open' });
    expect(client.stats().breakers[1]).toMatchObject({ state: 'closed' });
    failing = false;
    await new Promise((r) => setTimeout(r, 1100));
    await pool(20, 2, (i) => client.embed([`u${i}`], { key: `u${i}` }));
    expect(client.stats().breakers[0]).toMatchObject({ state: 'closed', opened: 1 });
    expect(bad.requests.length).toBeGreaterThan(0);
  });

  it('every breaker open: same model goes straight to hosted; a different model fails at once with a clear error', async () => {
    const bad = await fake({ script: () => ({ status: 503 }) });
    const hosted = await fake();
    const same = createHybridClient({ selfHosted: { url: bad.url, model: 'm' }, hosted: { url: hosted.url, model: 'm' }, percent: 100, retries: 0, breaker: { failureThreshold: 1, openMs: 60_000 } });
    const r = await pool(10, 1, (i) => same.embed([`x${i}`], { key: `k${i}` }));
    expect(r.every((x) => x.backend === 'hosted' && x.fellBack)).toBe(true);
    // Only the first call reached the failing replica; the open breaker skipped it after that.
    expect(bad.requests).toHaveLength(1);

    const other = createHybridClient({ selfHosted: { url: bad.url, model: 'a' }, hosted: { url: hosted.url, model: 'b' }, percent: 100, retries: 0, breaker: { failureThreshold: 1, openMs: 60_000 } });
    await expect(other.embed(['x'], { key: 'k' })).rejects.toThrow(/HTTP 503/);
    const err = (await other.embed(['x'], { key: 'k' }).catch((e: unknown) => e)) as HybridClientError;
    expect(err).toBeInstanceOf(HybridClientError);
    expect(err.message).toMatch(/circuit breaker is open/);
    expect(hosted.requests).toHaveLength(10);
  });
});
