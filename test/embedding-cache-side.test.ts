// The cache namespace knows the side and the route: one gateway URL answers from hosted or from
// self-hosted depending on X-Embedctl-Route, so the URL alone does not say whose vectors these are.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createEmbeddingCache, routingHash } from '../src/adapters/embedding-cache.js';
import { createEmbeddingsClient } from '../src/adapters/embeddings-client.js';
import { hashVector, startFakeEmbeddings } from './helpers/fake-embeddings.js';

const root = mkdtempSync(join(tmpdir(), 'embedctl-cache-side-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (stops.length) await stops.pop()!();
});

describe('cache namespace', () => {
  it('routingHash: a route header changes it, credentials and header-name case do not', () => {
    const hosted = routingHash({ Authorization: 'Bearer a', 'X-Embedctl-Route': 'hosted' });
    expect(hosted).not.toBe(routingHash({ Authorization: 'Bearer a', 'X-Embedctl-Route': 'self-hosted' }));
    expect(hosted).toBe(routingHash({ authorization: 'Bearer rotated', 'x-embedctl-route': 'hosted', 'content-type': 'application/json' }));
    expect(routingHash({ Authorization: 'Bearer a' })).toBe('');
  });

  it('the side and the routing hash each give another namespace', () => {
    const cache = createEmbeddingCache(join(root, 'ns'));
    const key = { endpoint: 'http://gw/v1/embeddings', shape: 'openai', model: 'm' };
    const dirs = new Set([
      cache.namespace(key).dir,
      cache.namespace({ ...key, side: 'reference' }).dir,
      cache.namespace({ ...key, side: 'candidate' }).dir,
      cache.namespace({ ...key, side: 'reference', routing: routingHash({ 'X-Embedctl-Route': 'hosted' }) }).dir,
      cache.namespace({ ...key, side: 'reference', routing: routingHash({ 'X-Embedctl-Route': 'self-hosted' }) }).dir,
    ]);
    expect(dirs.size).toBe(5);
  });
});

describe('client side', () => {
  it('a candidate client neither reads nor fills the cache it is given; a reference one does both', async () => {
    const server = await startFakeEmbeddings({ vectorOf: (t) => hashVector(t, 8) });
    stops.push(server.stop);
    const cache = createEmbeddingCache(join(root, 'client'));
    const texts = ['a', 'b', 'c'];
    const make = (side: 'reference' | 'candidate') => createEmbeddingsClient({ url: server.url, shape: 'openai', side, cache, env: {} });

    expect((await make('candidate').embed(texts)).cached).toBe(0);
    expect((await make('candidate').embed(texts)).cached).toBe(0);
    expect(server.requests).toHaveLength(2);
    // Nothing the candidate answered was kept for the reference either.
    expect((await make('reference').embed(texts)).cached).toBe(0);
    expect((await make('reference').embed(texts)).cached).toBe(3);
    expect((await make('candidate').embed(texts)).cached).toBe(0);
    expect(server.requests).toHaveLength(4);
  });
});
