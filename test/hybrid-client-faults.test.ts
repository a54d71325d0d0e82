import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { createHybridClient } from '../src/client/index.js';
import { startFakeEmbeddings, type FakeOptions } from './helpers/fake-embeddings.js';
import { stopAfterEach } from './helpers/gateway.js';

type Fake = Awaited<ReturnType<typeof startFakeEmbeddings>>;
const servers = stopAfterEach<Fake>();
async function fake(o: FakeOptions = {}): Promise<Fake> {
  const s = await startFakeEmbeddings({ dim: 4, ...o });
  servers.push(s);
  return s;
}

/** A self-hosted server that takes the request and never answers (a wedged runtime). */
const hung: Array<{ server: Server; sockets: Set<Socket> }> = [];
async function startHung(): Promise<{ url: string }> {
  const sockets = new Set<Socket>();
  const server = createServer((req) => void req.resume());
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  hung.push({ server, sockets });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}
afterEach(async () => {
  for (const h of hung.splice(0)) {
    for (const s of h.sockets) s.destroy();
    await new Promise((r) => h.server.close(r));
  }
});

/** Settles with 'still waiting' if the promise has not settled by then: a hang, not a slow call. */
function orHang<T>(p: Promise<T>, ms = 15_000): Promise<T | 'still waiting'> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<'still waiting'>((r) => (t = setTimeout(() => r('still waiting'), ms)))]).finally(() => clearTimeout(t));
}

describe('hybrid client timeouts', () => {
  it('a hung self-hosted server times out even when the caller passes its own signal and the GC runs', async () => {
    // In production the GC runs all the time; here it is forced, so the per-attempt timer must not
    // hang off a weakly held signal (AbortSignal.any over AbortSignal.timeout loses it in Node 20).
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const self = await startHung();
    const hosted = await fake();
    const client = createHybridClient({
      selfHosted: { url: self.url, model: 'm' },
      hosted: { url: hosted.url, model: 'm' },
      percent: 100,
      retries: 0,
      // generous: it also bounds the hosted fallback, answered on a machine busy with forced GCs
      timeoutMs: 1_500,
      breaker: { failureThreshold: 1, openMs: 60_000 },
    });
    const request = new AbortController(); // e.g. the app's per-request or shutdown signal, never aborted here
    const gcTimer = setInterval(gc, 50);
    try {
      const r = await orHang(client.embed(['hello'], { key: 'k', signal: request.signal }));
      expect(r).toMatchObject({ backend: 'hosted', fellBack: true });
    } finally {
      clearInterval(gcTimer);
    }
    expect(hosted.requests).toHaveLength(1);
    expect(client.stats().breakers[0]).toMatchObject({ state: 'open' });
  });

  it("the caller's abort is honoured while the client waits out a Retry-After", async () => {
    const request = new AbortController();
    const self = await fake({
      script: () => {
        setTimeout(() => request.abort(new Error('client went away')), 50);
        return { status: 503, headers: { 'retry-after': '20' } };
      },
    });
    const hosted = await fake();
    const client = createHybridClient({ selfHosted: { url: self.url, model: 'm' }, hosted: { url: hosted.url, model: 'm' }, percent: 100, retries: 1 });
    const r = await orHang(client.embed(['a'], { key: 'k', signal: request.signal }).catch((e: unknown) => e));
    expect(r).toBeInstanceOf(Error);
    expect((r as Error).message).toBe('client went away');
    expect(self.requests).toHaveLength(1);
    expect(hosted.requests).toHaveLength(0);
    // an abort is no verdict on the replica
    expect(client.stats().breakers[0]).toMatchObject({ state: 'closed', consecutiveFailures: 0 });
  });
});

describe('hybrid client request shape', () => {
  it('sends a configured task to an OpenAI-shaped endpoint too (the runtime takes it there)', async () => {
    const self = await fake();
    const hosted = await fake();
    const client = createHybridClient({
      selfHosted: { url: self.url, model: 'jina-embeddings-v3', task: 'retrieval.passage' },
      hosted: { url: hosted.url, model: 'jina-embeddings-v3', shape: 'jina', task: 'retrieval.passage' },
      percent: 100,
    });
    expect((await client.embed(['doc'], { key: 'k' })).backend).toBe('selfhosted');
    expect(self.requests[0]!.body).toEqual({ model: 'jina-embeddings-v3', input: ['doc'], encoding_format: 'float', task: 'retrieval.passage' });
  });
});
