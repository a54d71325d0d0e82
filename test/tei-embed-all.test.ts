import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain JS script, no type declarations
import { makeTestModel, writeBundle } from '../scripts/make-test-model.js';
import { startRuntime, type RuntimeHandle } from './helpers/runtime.js';
import { cosine } from './helpers/reference-math.js';

/**
 * Issue 16: TEI's POST /embed_all (per input, one raw vector per token) on the real runtime,
 * against a direct onnxruntime session on the same file, in-process and through the model worker
 * thread; TEI's error codes where it cannot answer (413, 422, 424, 429).
 */

const TEXTS = ['the river', 'coffee at the market in the morning, before the bank opens', 'a quick note about winter'];
const LONG = 'word '.repeat(600);
const H = 256;
let dir: string;
let rt: RuntimeHandle;
let worker: RuntimeHandle;
let session: ort.InferenceSession;

const post = async (url: string, path: string, body: unknown) => {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, headers: res.headers, json: (await res.json()) as any };
};

/** The graph's last_hidden_state for one text, unpadded, straight from onnxruntime. */
async function direct(ids: number[]): Promise<number[][]> {
  const t = (v: number[]) => new ort.Tensor('int64', BigInt64Array.from(v.map(BigInt)), [1, v.length]);
  const out = await session.run({ input_ids: t(ids), attention_mask: t(ids.map(() => 1)), token_type_ids: t(ids.map(() => 0)) });
  const data = out.last_hidden_state!.data as Float32Array;
  return Array.from({ length: ids.length }, (_, i) => Array.from(data.subarray(i * H, (i + 1) * H)));
}

const maxAbsDiff = (a: number[][], b: number[][]) => Math.max(...a.map((row, i) => Math.max(...row.map((x, k) => Math.abs(x - b[i]![k]!)))));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'embedctl-embed-all-'));
  // Wide and long enough that 33 full-length inputs (33 x 512 x 256 values) pass /embed_all's cap.
  const b = makeTestModel({ layers: 1, hidden: H, heads: 4, intermediate: 256, maxPositions: 512 });
  writeBundle(join(dir, 'wide'), { ...b, manifest: b.manifestFor('wide', 'mean') });
  session = await ort.InferenceSession.create(join(dir, 'wide', 'model.onnx'));
  [rt, worker] = await Promise.all([
    startRuntime({ model: join(dir, 'wide'), args: ['--model', 'default-q', '--max-queue', '4'] }),
    startRuntime({ model: join(dir, 'wide'), args: ['--model-worker', 'on'] }),
  ]);
}, 60_000);
afterAll(async () => {
  await Promise.all([rt?.stop(), worker?.stop()]);
  await session?.release();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('TEI POST /embed_all', () => {
  it('answers one raw vector per token (specials included) equal to the graph run directly, in-process and in the model worker', async () => {
    const r = await post(rt.url, '/embed_all', { inputs: TEXTS });
    expect(r.status).toBe(200);
    const states = r.json as number[][][];
    expect(states).toHaveLength(TEXTS.length);
    const tokenized = (await post(rt.url, '/tokenize', { inputs: TEXTS })).json as Array<Array<{ id: number }>>;
    for (const [i, rows] of states.entries()) {
      const ids = tokenized[i]!.map((t) => t.id);
      expect(rows).toHaveLength(ids.length);
      for (const row of rows) expect(row).toHaveLength(H);
      // Batched with longer inputs (padded) yet equal to the text run alone.
      expect(maxAbsDiff(rows, await direct(ids))).toBeLessThan(1e-4);
    }
    // Mean of the token states, normalised, is what /embed answers for the same input.
    const pooled = (await post(rt.url, '/embed', { inputs: TEXTS })).json as number[][];
    for (const [i, rows] of states.entries()) {
      const mean = rows[0]!.map((_, k) => rows.reduce((a, row) => a + row[k]!, 0) / rows.length);
      expect(cosine(mean, pooled[i]!)).toBeGreaterThanOrEqual(0.99999);
    }
    // Token states are raw: not unit length (pooled vectors are).
    expect(Math.hypot(...states[0]![0]!)).toBeGreaterThan(1.5);
    const viaWorker = await post(worker.url, '/embed_all', { inputs: TEXTS });
    expect(viaWorker.status).toBe(200);
    for (const [i, rows] of (viaWorker.json as number[][][]).entries()) expect(maxAbsDiff(rows, states[i]!)).toBeLessThan(1e-5);
    // A single string is one input, as TEI takes it.
    const one = await post(rt.url, '/embed_all', { inputs: TEXTS[0] });
    expect(one.json).toHaveLength(1);
    expect(maxAbsDiff(one.json[0], states[0]!)).toBeLessThan(1e-5);
  });

  it("refuses in TEI's codes: 422 validation, 413 an answer over the cap, 424 a graph that pools, 429 overloaded", async () => {
    const missing = await post(rt.url, '/embed_all', {});
    expect(missing.status).toBe(422);
    expect(missing.json).toMatchObject({ error_type: 'validation' });
    expect(missing.json.error).toMatch(/'input' is required/);
    // TEI's truncate defaults to false: an over-long input is a validation error, not cut silently.
    const long = await post(rt.url, '/embed_all', { inputs: LONG });
    expect(long.status).toBe(422);
    expect(long.json.error).toMatch(/over the model's limit of 512/);
    const cut = await post(rt.url, '/embed_all', { inputs: LONG, truncate: true });
    expect(cut.status).toBe(200);
    expect(cut.json[0]).toHaveLength(512);
    const tooBig = await post(rt.url, '/embed_all', { inputs: Array.from({ length: 33 }, () => LONG), truncate: true });
    expect(tooBig.status).toBe(413);
    expect(tooBig.json).toMatchObject({ error_type: 'payload_too_large' });
    expect(tooBig.json.error).toMatch(/16896 token vectors of 256 values, over the 4194304 values .*send fewer or shorter inputs/);
    const pooledGraph = await post(rt.url, '/embed_all', { model: 'default-q', inputs: TEXTS });
    expect(pooledGraph.status).toBe(424);
    expect(pooledGraph.json).toMatchObject({ error_type: 'backend' });
    expect(pooledGraph.json.error).toMatch(/default-q pools inside its graph.*use \/embed/);
    expect((await post(rt.url, '/embed_all', { model: 'no-such-model', inputs: TEXTS })).status).toBe(422);
    // --max-queue 4: concurrent requests of 2 inputs each overflow it while earlier ones are queued.
    const burst = await Promise.all(Array.from({ length: 10 }, () => post(rt.url, '/embed_all', { inputs: [LONG, LONG], truncate: true })));
    const refused = burst.filter((r) => r.status === 429);
    expect(burst.every((r) => r.status === 200 || r.status === 429)).toBe(true);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused[0]!.json).toMatchObject({ error_type: 'overloaded' });
    expect(Number(refused[0]!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(burst.some((r) => r.status === 200)).toBe(true);
  });
});
