// `models fetch` as a provisioning step meets it on a real instance: an ONNX export whose weights
// live in external data (model.onnx_data, as jina-embeddings-v3 ships), a `.part` left by a run
// against another revision, and two fetches of the same model at once (user data + a manual run).
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadModel } from '../runtime/inference/model.js';
import { builtinModelsDir } from '../common/models-registry.js';
import { runCli } from './helpers/cli.js';
import { startFakeHub, type FakeHub } from './helpers/fake-hub.js';

const require = createRequire(import.meta.url);
const { onnx: proto } = require('onnx-proto');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const tiny = join(builtinModelsDir(), 'tiny-bert');
const onnx = readFileSync(join(tiny, 'model.onnx'));
const tokenizer = readFileSync(join(tiny, 'tokenizer.json'));

/** tiny-bert re-saved the way big exports are: every initializer's bytes in model.onnx_data. */
function withExternalData(bytes: Buffer): { graph: Buffer; data: Buffer } {
  const m = proto.ModelProto.decode(bytes);
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const t of m.graph.initializer) {
    const raw = Buffer.from(t.rawData ?? []);
    if (raw.length < 64) continue;
    t.rawData = new Uint8Array(0);
    t.dataLocation = proto.TensorProto.DataLocation.EXTERNAL;
    t.externalData = [
      { key: 'location', value: 'model.onnx_data' },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(raw.length) },
    ];
    chunks.push(raw);
    offset += raw.length;
  }
  expect(offset).toBeGreaterThan(0);
  return { graph: Buffer.from(proto.ModelProto.encode(m).finish()), data: Buffer.concat(chunks) };
}

const ext = withExternalData(onnx);
let hub: FakeHub;
let cache: string;
const env = () => ({ HF_ENDPOINT: hub.url, EMBEDCTL_MODELS_DIR: cache });
const adHoc = ['--dimensions', '32', '--pooling', 'mean', '--max-tokens', '64'];
const fastSleep = async () => {};

beforeAll(async () => {
  hub = await startFakeHub({
    'acme/tiny': { 'onnx/model.onnx': { data: onnx, lfs: true }, 'tokenizer.json': { data: tokenizer, lfs: false } },
    'acme/big': {
      'onnx/model.onnx': { data: ext.graph, lfs: true },
      'onnx/model.onnx_data': { data: ext.data, lfs: true },
      'tokenizer.json': { data: tokenizer, lfs: false },
    },
  });
});
afterAll(async () => hub?.close());
beforeEach(() => {
  cache = mkdtempSync(join(tmpdir(), 'embedctl-hub-prov-'));
  hub.seen.length = 0;
});
afterEach(() => rmSync(cache, { recursive: true, force: true }));

describe('models fetch on a provisioning instance', () => {
  it('fetches the external data (model.onnx_data) beside model.onnx, so the bundle loads', async () => {
    const r = await runCli(['--json', 'models', 'fetch', 'acme/big', ...adHoc], { env: env(), sleep: fastSleep });
    expect(r.code, r.stderr).toBe(0);
    const dir = join(cache, 'acme--big');
    expect(readFileSync(join(dir, 'model.onnx_data')).equals(ext.data)).toBe(true);
    expect(r.json<{ files: Array<{ file: string; verifiedAgainst: string }> }>().files.map((f) => [f.file, f.verifiedAgainst])).toContainEqual(['onnx/model.onnx_data', 'sha256']);
    const fetched = await loadModel('acme/big', { env: env() });
    const original = await loadModel('tiny-bert');
    try {
      const [a] = await fetched.embed([fetched.encode('hello river')]);
      const [b] = await original.embed([original.encode('hello river')]);
      expect(Array.from(a!)).toEqual(Array.from(b!));
    } finally {
      await fetched.close();
      await original.close();
    }
    // A bundle whose external data went missing is not "already fetched".
    rmSync(join(dir, 'model.onnx_data'));
    const again = await runCli(['models', 'fetch', 'acme/big', ...adHoc], { env: env(), sleep: fastSleep });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).not.toMatch(/already fetched/);
    expect(existsSync(join(dir, 'model.onnx_data'))).toBe(true);
  });

  it('a model without external data asks for it once and tolerates the 404', async () => {
    const r = await runCli(['--json', 'models', 'fetch', 'acme/tiny', ...adHoc], { env: env(), sleep: fastSleep });
    expect(r.code, r.stderr).toBe(0);
    expect(hub.seen.filter((s) => s.path.endsWith('/onnx/model.onnx_data'))).toHaveLength(1);
    expect(existsSync(join(cache, 'acme--tiny', 'model.onnx_data'))).toBe(false);
  });

  it('resumes nothing from a .part of another revision: starts over and succeeds', async () => {
    const dir = join(cache, 'acme--tiny');
    mkdirSync(dir, { recursive: true });
    // What an interrupted fetch of an older revision leaves: a prefix of different bytes.
    writeFileSync(join(dir, 'model.onnx.part'), Buffer.alloc(1000, 7));
    const r = await runCli(['--json', 'models', 'fetch', 'acme/tiny', ...adHoc], { env: env(), sleep: fastSleep });
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(dir, 'model.onnx')).equals(onnx)).toBe(true);
    expect(r.stderr).toMatch(/downloading it again from the start/);
  });

  it('two fetches of the same model at once both end with one good bundle', async () => {
    const [a, b] = await Promise.all([
      runCli(['--json', 'models', 'fetch', 'acme/tiny', ...adHoc], { env: env(), sleep: fastSleep }),
      runCli(['--json', 'models', 'fetch', 'acme/tiny', ...adHoc], { env: env(), sleep: fastSleep }),
    ]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const dir = join(cache, 'acme--tiny');
    expect(readFileSync(join(dir, 'model.onnx')).equals(onnx)).toBe(true);
    expect(readdirSync(dir).filter((f) => f.endsWith('.part'))).toEqual([]);
    expect(readdirSync(cache).filter((f) => f.includes('.lock'))).toEqual([]);
    // One downloaded, the other waited for it and found the bundle present.
    expect([a.json<{ alreadyPresent?: boolean }>().alreadyPresent, b.json<{ alreadyPresent?: boolean }>().alreadyPresent].sort()).toEqual([true, undefined]);
    expect(`${a.stderr}${b.stderr}`).toMatch(/another embedctl command holds the models fetch acme\/tiny lock .*; waiting for it to finish/);
  });
});
