import { afterAll, describe, expect, it } from 'vitest';
import { loadModel } from '../runtime/inference/model.js';
import { loadModelInWorker, wantsModelWorker, type WorkerModel } from '../runtime/inference/model-worker.js';
import { resolveRuntimeOptions } from '../common/runtime-options.js';
import { startServer } from '../runtime/app.js';
import { ExternalError, UsageError } from '../src/errors.js';

/**
 * runtime/inference/model-worker.ts against runtime/inference/model.ts: the same bundle loaded both ways must give
 * bit-identical vectors; failures stay with their call; a dead thread is reported, not hung on.
 * The worker runs the compiled script (dist/runtime/inference/model-worker-entry.js): `npx tsc -p tsconfig.json` first.
 */

const WORDS = 'the river city music green ocean market winter garden science history light mountain coffee train paper doctor school money forest window'.split(' ');
const text = (i: number) => Array.from({ length: (i * 7) % 23 }, (_, j) => WORDS[(i * 5 + j * 3) % WORDS.length]).join(' ');

const opened: Array<{ close(): Promise<void> }> = [];
afterAll(async () => {
  for (const m of opened) await m.close().catch(() => {});
});

const exitOf = (w: WorkerModel) => new Promise<number>((resolve) => w.worker.once('exit', resolve));

describe.each(['default', 'tiny-bert'])('%s in a worker', (name) => {
  it('gives exactly the vectors loadModel gives, for padded batches of mixed lengths', async () => {
    const [direct, worker] = await Promise.all([loadModel(name), loadModelInWorker(name)]);
    opened.push(direct, worker);
    expect(worker.manifest).toEqual(direct.manifest);
    expect(worker.provider).toBe(direct.provider);
    expect(worker.dir).toBe(direct.dir);
    // Includes an empty text, a text past maxTokens (truncated) and one-token texts in one batch.
    const texts = [...Array.from({ length: 40 }, (_, i) => text(i)), '', 'word '.repeat(direct.manifest.maxTokens + 20)];
    const encoded = texts.map((t) => direct.encode(t));
    expect(texts.map((t) => worker.encode(t))).toEqual(encoded);
    for (const batch of [encoded, encoded.slice(3, 4), encoded.slice(10, 27)]) {
      const [a, b] = await Promise.all([direct.embed(batch), worker.embed(batch)]);
      expect(b).toHaveLength(batch.length);
      b.forEach((v, i) => {
        expect(v).toBeInstanceOf(Float32Array);
        expect(v.length).toBe(direct.manifest.dimensions);
        expect(Buffer.from(v.buffer, v.byteOffset, v.byteLength).equals(Buffer.from(a[i]!.buffer, a[i]!.byteOffset, a[i]!.byteLength))).toBe(true);
      });
    }
    expect(await worker.embed([])).toEqual([]);
  });
});

describe('errors and lifetime', () => {
  let w: WorkerModel;

  it('a failing batch rejects only its own call; the next calls still work', async () => {
    w = await loadModelInWorker('tiny-bert');
    opened.push(w);
    const good = [w.encode('a good text'), w.encode('another one')];
    // An id past the vocabulary: onnxruntime's Gather fails inside the worker.
    const bad = [{ ids: [101, 999_999_999, 102], fullLength: 3 }];
    const [r1, r2, r3] = await Promise.allSettled([w.embed(good), w.embed(bad), w.embed(good)]);
    expect(r1.status).toBe('fulfilled');
    expect(r3.status).toBe('fulfilled');
    expect(r2.status).toBe('rejected');
    expect(((r2 as PromiseRejectedResult).reason as Error).message).toMatch(/out of data bounds|Gather/i);
    expect(w.fault()).toBeUndefined();
    expect(await w.embed(good)).toHaveLength(2);
  });

  it('close() ends the thread and later calls reject', async () => {
    const exited = exitOf(w);
    await w.close();
    await exited; // would time out if the thread lived on
    await expect(w.embed([w.encode('x')])).rejects.toThrow(/closed/);
    await w.close(); // twice is fine
  });

  it('a load failure keeps its class (exit code) and leaves no thread behind', async () => {
    const err = await loadModelInWorker('/nonexistent/model-dir').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).field).toBe('--model');
    expect((err as Error).message).toMatch(/nonexistent/);
  });

  it('a dead thread fails pending and later calls clearly, and /health and /ready say so', async () => {
    const m = await loadModelInWorker('tiny-bert');
    opened.push(m);
    const server = await startServer({ model: m, port: 0, host: '127.0.0.1' });
    try {
      await server.ready;
      expect((await fetch(`${server.url}/health`)).status).toBe(200);
      const batch = Array.from({ length: 8 }, (_, i) => m.encode(text(i)));
      await m.embed(batch);
      // The thread dies with calls sent and unanswered. (Killed while idle: terminate() during a
      // native session.run can abort the whole process, which is why close() asks first.)
      const exited = exitOf(m);
      const terminated = m.worker.terminate();
      const calls = Array.from({ length: 5 }, () => m.embed(batch));
      await terminated;
      await exited;
      const results = await Promise.allSettled(calls);
      for (const r of results) {
        expect(r.status).toBe('rejected');
        const reason = (r as PromiseRejectedResult).reason as Error;
        expect(reason).toBeInstanceOf(ExternalError);
        expect(reason.message).toMatch(/model worker thread exited.*can no longer embed/);
      }
      expect(m.fault()).toMatch(/exited/);
      await expect(m.embed(batch)).rejects.toThrow(/can no longer embed/);

      const health = await fetch(`${server.url}/health`);
      expect(health.status).toBe(503);
      const body = (await health.json()) as { status: string; error?: string };
      expect(body.status).toBe('failed');
      expect(body.error).toMatch(/worker thread exited/);
      expect((await fetch(`${server.url}/ready`)).status).toBe(503);
      const res = await fetch(`${server.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: 'hello' }) });
      expect(res.status).toBeGreaterThanOrEqual(500);
    } finally {
      await server.close();
    }
  });
});

describe('--model-worker', () => {
  it('parses on/off/auto from flag or env and names the source of a bad value', () => {
    expect(resolveRuntimeOptions(() => undefined, {}).modelWorker).toBe('auto');
    expect(resolveRuntimeOptions(() => undefined, { EMBEDCTL_MODEL_WORKER: 'ON' }).modelWorker).toBe('on');
    expect(resolveRuntimeOptions((s) => (s.key === 'modelWorker' ? 'false' : undefined), { EMBEDCTL_MODEL_WORKER: 'on' }).modelWorker).toBe('off');
    expect(() => resolveRuntimeOptions(() => undefined, { EMBEDCTL_MODEL_WORKER: 'maybe' })).toThrow(/EMBEDCTL_MODEL_WORKER: expected on, off or auto/);
  });

  it('auto runs GPU providers in a worker and cpu alone on the main thread', () => {
    expect(wantsModelWorker('auto', ['cuda', 'cpu'])).toBe(true);
    expect(wantsModelWorker('auto', ['webgpu'])).toBe(true);
    expect(wantsModelWorker('auto', ['cpu'])).toBe(false);
    expect(wantsModelWorker('on', ['cpu'])).toBe(true);
    expect(wantsModelWorker('off', ['cuda'])).toBe(false);
  });
});

