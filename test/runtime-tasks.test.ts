import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type Model } from '../runtime/inference/model.js';
// @ts-expect-error plain JS script, no type declarations
import { makeTestModel, writeBundle } from '../scripts/make-test-model.js';
import { startRuntime, type RuntimeHandle } from './helpers/runtime.js';
import { cosine } from './helpers/reference-math.js';

/**
 * Issue 16: per-request LoRA tasks on a jina-v3-shaped bundle (task_id input, per-task low-rank
 * adapters inside the graph, output text_embeds), checked against an independent computation of
 * each task (the same weights with that task's adapter folded into W in JS, no task_id); sizes
 * (Matryoshka any size up to native; others 400), encodings, token-array inputs.
 */

const TASKS = ['retrieval.query', 'retrieval.passage', 'separation', 'classification', 'text-matching'];
const TEXT = 'the river runs through the old city';
let dir: string;
let rt: RuntimeHandle;
const merged = new Map<string, Model>();

interface EmbResponse {
  data: Array<{ embedding: number[] | string; index: number }>;
  model: string;
  usage: { prompt_tokens: number };
  error?: { message: string; code: string; param: string | null };
}
const post = async (body: unknown) => {
  const res = await fetch(`${rt.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as EmbResponse };
};
const vec = (r: { json: EmbResponse }, i = 0) => r.json.data[i]!.embedding as number[];
const norm = (v: number[]) => Math.sqrt(v.reduce((a, x) => a + x * x, 0));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'embedctl-lora-'));
  // --matryoshka so the same bundle also shows truncate + re-normalise for any size up to 32.
  writeBundle(join(dir, 'lora'), rebuild(makeTestModel({ loraTasks: TASKS, matryoshka: [32, 16, 8] }), 'test-lora'));
  for (const t of TASKS) writeBundle(join(dir, t), rebuild(makeTestModel({ loraTasks: TASKS, mergeTask: t }), `merged-${t}`));
  writeBundle(join(dir, 'plain'), rebuild(makeTestModel({}), 'plain-bert'));
  rt = await startRuntime({ model: join(dir, 'lora'), args: ['--model', join(dir, 'plain'), '--model-alias', 'jina-embeddings-v3', '--model-alias', 'bert=plain-bert'] });
  for (const t of TASKS) merged.set(t, await loadModel(join(dir, t)));
});
afterAll(async () => {
  await rt?.stop();
  for (const m of merged.values()) await m.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function rebuild(b: { manifestFor(name: string, pooling: string): unknown }, name: string) {
  return { ...b, manifest: b.manifestFor(name, 'mean') };
}

describe('per-request LoRA tasks (jina-v3-shaped bundle)', () => {
  it("gives each task's vector as an independent computation of that adapter does, and different tasks different vectors", async () => {
    const byTask = new Map<string, number[]>();
    for (const t of TASKS) {
      const r = await post({ model: 'jina-embeddings-v3', input: [TEXT], task: t });
      expect(r.status).toBe(200);
      const m = merged.get(t)!;
      const [ref] = await m.embed([m.encode(TEXT)]);
      expect(cosine(vec(r), ref!)).toBeGreaterThanOrEqual(0.99999);
      byTask.set(t, vec(r));
    }
    expect(cosine(byTask.get('retrieval.query')!, byTask.get('retrieval.passage')!)).toBeLessThan(0.99);
    // No task: the manifest's default task (retrieval.passage), as Jina's API does.
    const none = await post({ model: 'test-lora', input: [TEXT] });
    expect(cosine(vec(none), byTask.get('retrieval.passage')!)).toBeGreaterThanOrEqual(0.99999);
  });

  it('16 concurrent requests with alternating tasks each equal their single-request vectors', async () => {
    const texts = Array.from({ length: 16 }, (_, i) => `${TEXT} ${['music', 'coffee', 'winter', 'market'][i % 4]} ${i}`);
    const task = (i: number) => (i % 2 ? 'retrieval.passage' : 'retrieval.query');
    const single: number[][] = [];
    for (let i = 0; i < 16; i++) single.push(vec(await post({ input: [texts[i]], task: task(i) })));
    const together = await Promise.all(texts.map((t, i) => post({ input: [t, 'a second input'], task: task(i) })));
    let min = 1;
    together.forEach((r, i) => {
      expect(r.status).toBe(200);
      min = Math.min(min, cosine(vec(r), single[i]!));
    });
    expect(min).toBeGreaterThanOrEqual(0.99999);
  });

  it('refuses a task the model has no adapter for, naming the ones it has', async () => {
    const r = await post({ input: [TEXT], task: 'summarisation' });
    expect(r.status).toBe(400);
    expect(r.json.error!.param).toBe('task');
    for (const t of TASKS) expect(r.json.error!.message).toContain(t);
  });
});

describe('sizes and encodings', () => {
  it('takes any dimensions up to native on a Matryoshka model (truncate + re-normalise); others only their size, with a 400 naming it', async () => {
    const full = vec(await post({ input: [TEXT] }));
    const r = await post({ input: [TEXT], dimensions: 20 });
    expect(r.status).toBe(200);
    expect(vec(r)).toHaveLength(20);
    expect(norm(vec(r))).toBeCloseTo(1, 5);
    expect(cosine(vec(r), full.slice(0, 20))).toBeGreaterThanOrEqual(0.99999);
    expect((await post({ input: [TEXT], dimensions: 33 })).status).toBe(400);
    const plain = await post({ model: 'bert', input: [TEXT], dimensions: 20 });
    expect(plain.status).toBe(400);
    expect(plain.json.error!.message).toMatch(/32, its only size/);
    expect((await post({ model: 'bert', input: [TEXT], dimensions: 32 })).status).toBe(200);
  });

  it('encodes float, base64, binary, ubinary, int8 and uint8 from the same vector', async () => {
    const f = vec(await post({ input: [TEXT] }));
    const get = async (t: string) => (await post({ input: [TEXT], embedding_type: t })).json.data[0]!.embedding;
    const b64 = Buffer.from((await get('base64')) as string, 'base64');
    expect(Array.from({ length: f.length }, (_, i) => b64.readFloatLE(i * 4))).toEqual(f.map(Math.fround));
    const bits = f.map((x) => (x > 0 ? 1 : 0));
    const ub = (await get('ubinary')) as number[];
    expect(ub).toHaveLength(f.length / 8);
    expect(ub.flatMap((byte) => Array.from({ length: 8 }, (_, k) => (byte >> (7 - k)) & 1))).toEqual(bits);
    expect((await get('binary')) as number[]).toEqual(ub.map((x) => x - 128));
    const i8 = (await get('int8')) as number[];
    expect(i8).toEqual(f.map((x) => Math.max(-128, Math.min(127, Math.round(x * 127))) || 0));
    expect((await get('uint8')) as number[]).toEqual(i8.map((x) => x + 128));
    // OpenAI's name for the field takes the same values.
    expect((await post({ input: [TEXT], encoding_format: 'int8' })).json.data[0]!.embedding).toEqual(i8);
  });

  it("takes OpenAI token-array inputs in the model's vocabulary, equal to the text they tokenise", async () => {
    const m = merged.get('retrieval.passage')!;
    const full = m.encode(TEXT).ids;
    const content = full.slice(1, -1); // without [CLS] ... [SEP]
    const asText = vec(await post({ input: [TEXT] }));
    const one = await post({ input: content });
    const many = await post({ input: [content, content] });
    expect(one.status).toBe(200);
    expect(cosine(vec(one), asText)).toBeGreaterThanOrEqual(0.99999);
    expect(cosine(vec(many, 1), asText)).toBeGreaterThanOrEqual(0.99999);
    const bad = await post({ input: [[1, 2, 999999]] });
    expect(bad.status).toBe(400);
    expect(bad.json.error!.message).toMatch(/outside this model's vocabulary/);
  });
});

describe('several models in one runtime', () => {
  it('answers each by name or alias with its own vectors, lists both with load time and memory, and 404s an unknown name', async () => {
    const lora = await post({ model: 'test-lora', input: [TEXT] });
    const plain = await post({ model: 'plain-bert', input: [TEXT] });
    expect(lora.json.model).toBe('test-lora');
    expect(plain.json.model).toBe('plain-bert');
    expect(cosine(vec(lora), vec(plain))).toBeLessThan(0.99);
    expect(vec(await post({ model: 'bert', input: [TEXT] }))).toEqual(vec(plain));
    const models = (await fetch(`${rt.url}/v1/models`).then((r) => r.json())) as { data: Array<{ id: string; embedctl: { loadMs?: number; weightsMiB?: number; aliasOf?: string } }> };
    expect(models.data.map((d) => d.id)).toEqual(['test-lora', 'jina-embeddings-v3', 'plain-bert', 'bert']);
    expect(models.data[0]!.embedctl.loadMs).toBeGreaterThan(0);
    expect(models.data[0]!.embedctl.weightsMiB).toBeGreaterThan(0);
    const health = (await fetch(`${rt.url}/health`).then((r) => r.json())) as { models: Array<{ name: string; loadMs: number; status: string }>; memory: { rssMiB: number } };
    expect(health.models.map((m) => [m.name, m.status])).toEqual([
      ['test-lora', 'ready'],
      ['plain-bert', 'ready'],
    ]);
    expect(health.memory.rssMiB).toBeGreaterThan(0);
    const unknown = await post({ model: 'text-embedding-3-large', input: [TEXT] });
    expect(unknown.status).toBe(404);
    expect(unknown.json.error!.code).toBe('model_not_found');
    expect(unknown.json.error!.message).toContain("'plain-bert'");
  });
});
