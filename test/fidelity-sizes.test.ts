import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain JS script, no type declarations
import { makeTestModel, writeBundle } from '../scripts/make-test-model.js';
import { startRuntime, type RuntimeHandle } from './helpers/runtime.js';
import { cosine } from './helpers/reference-math.js';

/**
 * Issue 16, "dimensions: 200 on a Matryoshka model -> 200 values, unit norm": a 256-wide
 * Matryoshka-flagged bundle (one small layer, so it loads in well under a second) next to a
 * 256-wide plain one in the same runtime, asked through every API shape that takes `dimensions`.
 */

const TEXT = 'a passage about the old market by the river';
let dir: string;
let rt: RuntimeHandle;

const post = async (path: string, body: unknown) => {
  const res = await fetch(`${rt.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as any };
};
const norm = (v: number[]) => Math.sqrt(v.reduce((a, x) => a + x * x, 0));
/** The first n values of v, scaled back to unit length: what truncation must give. */
const truncated = (v: number[], n: number) => {
  const head = v.slice(0, n);
  const s = norm(head);
  return head.map((x) => x / s);
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'embedctl-sizes-'));
  const shape = { layers: 1, hidden: 256, heads: 4, intermediate: 256, maxPositions: 32 };
  const mrl = makeTestModel({ ...shape, matryoshka: [256, 128, 64] });
  writeBundle(join(dir, 'mrl'), { ...mrl, manifest: mrl.manifestFor('mrl-256', 'mean') });
  const plain = makeTestModel({ ...shape, seed: 7 });
  writeBundle(join(dir, 'plain'), { ...plain, manifest: plain.manifestFor('plain-256', 'mean') });
  rt = await startRuntime({ model: join(dir, 'mrl'), args: ['--model', join(dir, 'plain')] });
});
afterAll(async () => {
  await rt?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('dimensions on a 256-wide Matryoshka bundle', () => {
  it('dimensions: 200 (not a listed size) gives 200 values of unit norm, equal to the first 200 of the full vector re-normalised', async () => {
    const full = await post('/v1/embeddings', { model: 'mrl-256', input: [TEXT, 'second input'] });
    expect(full.status).toBe(200);
    const fullVec = full.json.data[0].embedding as number[];
    expect(fullVec).toHaveLength(256);
    const r = await post('/v1/embeddings', { model: 'mrl-256', input: [TEXT, 'second input'], dimensions: 200 });
    expect(r.status).toBe(200);
    for (const [i, d] of (r.json.data as Array<{ embedding: number[] }>).entries()) {
      expect(d.embedding).toHaveLength(200);
      expect(norm(d.embedding)).toBeCloseTo(1, 6);
      const want = truncated(full.json.data[i].embedding, 200);
      d.embedding.forEach((x, k) => expect(x).toBeCloseTo(want[k]!, 6));
    }
    // A real truncation: the tail carried part of the vector, so the head alone is not unit length.
    expect(norm(fullVec.slice(0, 200))).toBeLessThan(0.999);
    // The same through Jina's field names and the base64 wire format.
    const b64 = await post('/v1/embeddings', { model: 'mrl-256', input: [TEXT], dimensions: 200, embedding_type: 'base64' });
    const bytes = Buffer.from(b64.json.data[0].embedding as string, 'base64');
    expect(bytes.length).toBe(200 * 4);
    expect(cosine(Array.from({ length: 200 }, (_, k) => bytes.readFloatLE(k * 4)), truncated(fullVec, 200))).toBeGreaterThanOrEqual(0.99999);
  });

  it('Ollama /api/embed and TEI /embed truncate the same way', async () => {
    const full = (await post('/v1/embeddings', { input: [TEXT] })).json.data[0].embedding as number[];
    const want = truncated(full, 200);
    const ollama = await post('/api/embed', { model: 'mrl-256', input: [TEXT], dimensions: 200 });
    expect(ollama.status).toBe(200);
    expect(ollama.json.embeddings[0]).toHaveLength(200);
    expect(cosine(ollama.json.embeddings[0], want)).toBeGreaterThanOrEqual(0.99999);
    const tei = await post('/embed', { inputs: [TEXT], dimensions: 200 });
    expect(tei.status).toBe(200);
    expect(tei.json[0]).toHaveLength(200);
    expect(norm(tei.json[0])).toBeCloseTo(1, 6);
    expect(cosine(tei.json[0], want)).toBeGreaterThanOrEqual(0.99999);
  });

  it('refuses sizes above native, and any size but its own on a non-Matryoshka model, naming the sizes', async () => {
    const over = await post('/v1/embeddings', { model: 'mrl-256', input: [TEXT], dimensions: 257 });
    expect(over.status).toBe(400);
    expect(over.json.error).toMatchObject({ param: 'dimensions' });
    expect(over.json.error.message).toContain('any whole number from 1 to 256 (listed sizes: 64, 128, 256)');
    const plain = await post('/v1/embeddings', { model: 'plain-256', input: [TEXT], dimensions: 200 });
    expect(plain.status).toBe(400);
    expect(plain.json.error).toMatchObject({ param: 'dimensions', type: 'invalid_request_error' });
    expect(plain.json.error.message).toBe("'dimensions' 200 is not supported by plain-256; use 256, its only size (not a Matryoshka model)");
    const ollama = await post('/api/embed', { model: 'plain-256', input: [TEXT], dimensions: 200 });
    expect(ollama.status).toBe(400);
    expect(ollama.json.error).toMatch(/256, its only size/);
    const tei = await post('/embed', { model: 'plain-256', inputs: [TEXT], dimensions: 200 });
    expect(tei.status).toBe(422);
    expect(tei.json).toMatchObject({ error_type: 'validation' });
    expect((await post('/v1/embeddings', { model: 'plain-256', input: [TEXT], dimensions: 256 })).status).toBe(200);
  });
});
