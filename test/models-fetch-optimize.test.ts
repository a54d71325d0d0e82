// `embedctl models fetch --optimize int8|fp16 [--pool-in-graph]` against a local hub stand-in:
// fetched and optimised in one step, the download kept as the gate's reference, the optimised
// bundle where `serve --model <repo>` looks, the gate refusing with exit 3 and nothing written.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { builtinModelsDir } from '../common/models-registry.js';
import { loadModel } from '../runtime/inference/model.js';
import { runCli } from './helpers/cli.js';
import { startFakeHub, type FakeHub } from './helpers/fake-hub.js';
import { cosine } from './helpers/reference-math.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const tiny = join(builtinModelsDir(), 'tiny-bert');
const onnx = readFileSync(join(tiny, 'model.onnx'));
const repo = { 'onnx/model.onnx': { data: onnx, lfs: true }, 'tokenizer.json': { data: readFileSync(join(tiny, 'tokenizer.json')), lfs: false } };
const adHoc = ['--dimensions', '32', '--pooling', 'mean', '--max-tokens', '64'];
const fastSleep = async () => {};

let hub: FakeHub;
let cache: string;
const env = () => ({ HF_ENDPOINT: hub.url, EMBEDCTL_MODELS_DIR: cache });
const fetchCli = (args: string[], extraEnv: Record<string, string> = {}) => runCli(['models', 'fetch', 'acme/tiny', ...adHoc, ...args], { env: { ...env(), ...extraEnv }, sleep: fastSleep });
const manifestOf = (dir: string) => JSON.parse(readFileSync(join(dir, 'embedctl-model.json'), 'utf8'));

beforeAll(async () => {
  hub = await startFakeHub({ 'acme/tiny': repo });
});
afterAll(async () => hub?.close());
beforeEach(() => {
  cache = mkdtempSync(join(tmpdir(), 'embedctl-fetch-opt-'));
  hub.seen.length = 0;
});
afterEach(() => rmSync(cache, { recursive: true, force: true }));

async function vectorsOf(ref: string, texts: string[]) {
  const m = await loadModel(ref, { env: env() });
  try {
    return { vectors: await m.embed(texts.map((t) => m.encode(t))), manifest: m.manifest };
  } finally {
    await m.close();
  }
}

describe('models fetch --optimize', () => {
  it('int8: fetches into .sources, optimises into the served place behind the gate, records both hashes; a second run is a no-op', async () => {
    const r = await fetchCli(['--optimize', 'int8', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const doc = r.json<Record<string, any>>();
    const dir = join(cache, 'acme--tiny');
    const source = join(cache, '.sources', 'acme--tiny');
    expect(doc).toMatchObject({ schema: 'embedctl.models/v1', action: 'fetch', dir, source });
    expect(doc.optimize).toMatchObject({ written: true, out: dir, gate: { pass: true, minCosine: 0.99, basis: 'default for --int8' } });
    expect(doc.optimize.retrieval.skipped).toMatch(/models fetch --optimize/);
    // The download, byte for byte, is kept as the reference; the served bundle is the int8 one.
    expect(readFileSync(join(source, 'model.onnx')).equals(onnx)).toBe(true);
    const m = manifestOf(dir);
    expect(m.optimization).toMatchObject({ steps: ['int8'], source: { sha256: sha256(onnx), dir: source } });
    expect(m.sha256).toBe(sha256(readFileSync(join(dir, 'model.onnx'))));
    expect(m.sha256).not.toBe(sha256(onnx));
    expect(doc.manifest.sha256).toBe(m.sha256);
    // `serve --model acme/tiny` resolves to it, and its vectors stay within the int8 gate of the source's.
    const texts = ['hello river', 'the market opens early in the morning'];
    const served = await vectorsOf('acme/tiny', texts);
    const original = await vectorsOf(tiny, texts);
    expect((served.manifest as { optimization?: unknown }).optimization).toBeDefined();
    served.vectors.forEach((v, i) => expect(cosine(v, original.vectors[i]!)).toBeGreaterThanOrEqual(0.99));
    // models list shows the bundle once (the download under .sources is not a model of its own).
    const list = (await runCli(['models', 'list', '--json'], { env: env() })).json<{ models: Array<{ name: string; kind: string; sha256: string }> }>();
    expect(list.models.filter((x) => x.kind === 'hub')).toEqual([expect.objectContaining({ name: 'acme/tiny', sha256: m.sha256 })]);

    hub.seen.length = 0;
    const again = await fetchCli(['--optimize', 'int8']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/already fetched and optimised \(int8\)/);
    expect(hub.seen).toEqual([]);
  });

  it('fp16 + pool-in-graph after a plain fetch: steps recorded, a pooled graph; a new recipe re-optimises from the kept download without the hub', async () => {
    expect((await fetchCli([])).code).toBe(0);
    const plainSha = manifestOf(join(cache, 'acme--tiny')).sha256;
    expect(plainSha).toBe(sha256(onnx));
    // A plain bundle is not what --optimize asked for: downloaded again into .sources, then optimised.
    hub.seen.length = 0;
    const r = await fetchCli(['--optimize', 'fp16', '--pool-in-graph', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(hub.seen.some((s) => s.path.endsWith('/onnx/model.onnx'))).toBe(true);
    const m = manifestOf(join(cache, 'acme--tiny'));
    expect(m.optimization.steps).toEqual(['fp16', 'pool-in-graph']);
    expect(m).toMatchObject({ pooledByGraph: true, output: 'sentence_embedding' });
    expect(r.json<Record<string, any>>().optimize.gate).toMatchObject({ pass: true, minCosine: 0.999 });
    // Changing the recipe later re-optimises from the kept download, without the hub.
    hub.seen.length = 0;
    const int8 = await fetchCli(['--optimize', 'int8']);
    expect(int8.code, int8.stderr).toBe(0);
    expect(int8.stderr).toMatch(/using the download already in .*\.sources/);
    expect(hub.seen).toEqual([]);
    expect(manifestOf(join(cache, 'acme--tiny')).optimization.steps).toEqual(['int8']);
  });

  it("EMBEDCTL_FETCH_OPTIMIZE (the GPU image's default) gives fp16 with pooling in the graph; flags override it", async () => {
    const image = { EMBEDCTL_FETCH_OPTIMIZE: 'fp16' };
    expect((await fetchCli([], image)).code).toBe(0);
    expect(manifestOf(join(cache, 'acme--tiny')).optimization.steps).toEqual(['fp16', 'pool-in-graph']);
    expect((await fetchCli(['--pool-in-graph', 'false'], image)).code).toBe(0);
    expect(manifestOf(join(cache, 'acme--tiny'))).toMatchObject({ pooledByGraph: false, optimization: { steps: ['fp16'] } });
    expect((await fetchCli(['--optimize', 'int8'], image)).code).toBe(0);
    expect(manifestOf(join(cache, 'acme--tiny')).optimization.steps).toEqual(['int8']);
    const bad = await fetchCli([], { EMBEDCTL_FETCH_OPTIMIZE: 'fp8' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/EMBEDCTL_FETCH_OPTIMIZE: expected one of none, int8, fp16, got "fp8"/);
  });

  it('a gate set above what int8 reaches: exit 3, the distribution printed, no bundle written (the download kept)', async () => {
    const r = await fetchCli(['--optimize', 'int8', '--min-cosine', '0.999999']);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/cosine vs the source over \d+ sample texts \(gate: min >= 0.999999, --min-cosine\)/);
    expect(r.stdout).toMatch(/gate: FAILED/);
    expect(r.stderr).toMatch(/min cosine 0\.\d+ vs the source is below 0\.999999 .*no bundle written to .*acme--tiny/);
    expect(r.stdout).not.toMatch(/serve it with/);
    expect(existsSync(join(cache, 'acme--tiny'))).toBe(false);
    expect(existsSync(join(cache, '.sources', 'acme--tiny', 'model.onnx'))).toBe(true);
  });

  it('refuses bad flags with the field named (exit 2), and --dry-run shows both steps', async () => {
    const bad = await fetchCli(['--optimize', 'int4']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--optimize: expected one of none, int8, fp16, got "int4"/);
    const stray = await fetchCli(['--min-cosine', '0.9']);
    expect(stray.code).toBe(2);
    expect(stray.stderr).toMatch(/--min-cosine: only applies with --optimize/);
    const dry = await fetchCli(['--optimize', 'fp16', '--pool-in-graph', '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`-> ${join(cache, '.sources', 'acme--tiny', 'model.onnx')}`);
    expect(dry.stdout).toContain(`then optimise it (fp16 + pool-in-graph, gated on cosine vs the download) into ${join(cache, 'acme--tiny')}`);
    expect(hub.seen).toEqual([]);
  });
});
