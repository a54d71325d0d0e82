import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../runtime/app.js';
import { loadModel, type Model } from '../runtime/inference/model.js';
import type { Encoded } from '../runtime/inference/types.js';

/**
 * The queue gauges on /metrics (embedctl_queue_depth, _queue_tokens, _expected_wait_seconds)
 * count every served model's batcher, not only the first: with tiny-bert first and idle, a
 * backlog on the second model (default) shows. The default model is the real bundle; only its
 * batches are held at a gate while the test looks, so the backlog is there for certain.
 */

let server: RunningServer;
let gate: { open: Promise<void>; release: () => void } | undefined;
const held = () => {
  let release!: () => void;
  const open = new Promise<void>((r) => (release = r));
  return { open, release };
};

async function gatedDefault(): Promise<Model> {
  const real = await loadModel('default');
  return {
    ...real,
    async embed(batch: Encoded[]) {
      if (gate) await gate.open;
      return real.embed(batch);
    },
  };
}

const gauge = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);

beforeAll(async () => {
  server = await startServer({
    models: [
      { ref: 'tiny-bert', model: loadModel('tiny-bert') },
      { ref: 'default', model: gatedDefault() },
    ],
    port: 0,
    host: '127.0.0.1',
    maxBatchSize: 4,
  });
  await server.ready;
});
afterAll(async () => {
  gate?.release();
  await server?.close();
  await server?.models.release();
});

describe('queue metrics with two models', () => {
  it('count the backlog of the second model while the first is idle', async () => {
    gate = held();
    const inputs = Array.from({ length: 20 }, (_, i) => `a queued text number ${i} about the river and the city`);
    const pending = fetch(`${server.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'default', input: inputs }) });
    // Wait until the default model's batcher holds the request (its first batch is at the gate).
    let queued = 0;
    for (let i = 0; i < 200 && queued === 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
      queued = server.models.slots[1]!.service!.stats().queued;
    }
    expect(queued).toBe(16); // 20 inputs, 4 in the batch held at the gate
    const stats = server.models.slots[1]!.service!.stats();
    expect(server.models.slots[0]!.service!.stats().queued).toBe(0);

    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(gauge(text, 'embedctl_queue_depth')).toBe(16);
    expect(gauge(text, 'embedctl_queue_tokens')).toBe(stats.queuedTokens);
    expect(gauge(text, 'embedctl_queue_tokens')).toBeGreaterThan(0);
    expect(gauge(text, 'embedctl_expected_wait_seconds')).toBeCloseTo(stats.expectedWaitMs / 1000, 1);
    expect(gauge(text, 'embedctl_expected_wait_seconds')).toBeGreaterThan(0);

    gate.release();
    gate = undefined;
    const res = await pending;
    expect(res.status).toBe(200);
    expect(((await res.json()) as { data: unknown[] }).data).toHaveLength(20);
    const after = await (await fetch(`${server.url}/metrics`)).text();
    expect(gauge(after, 'embedctl_queue_depth')).toBe(0);
  });
});
