// Issue 20: the instance fetches and optimises its hub model in one step at first boot, with the
// hardware's recipe (fp16 + pooling in the graph with GPUs, int8 on CPU, `render --optimize`
// overriding), and the GPU image defaults `models fetch` to fp16. The rendered fetch command line
// is run for real: bash expands it, node runs the embedded script against the built CLI and a
// local hub stand-in.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultDeployConfig } from '../src/core/deploy-config.js';
import { renderUserData } from '../src/core/render.js';
// @ts-expect-error plain JS script, no type declarations
import { makeTestModel } from '../scripts/make-test-model.js';
import { runCli } from './helpers/cli.js';
import { startFakeHub, type FakeHub } from './helpers/fake-hub.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const MODEL = 'sentence-transformers/all-MiniLM-L6-v2';
let hub: FakeHub;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'embedctl-user-data-'));
  // The preset's shape (384 wide, 256 tokens, mean pooling) in one small layer.
  const m = makeTestModel({ layers: 1, hidden: 384, heads: 12, intermediate: 384, maxPositions: 256 });
  hub = await startFakeHub({ [MODEL]: { 'onnx/model.onnx': { data: Buffer.from(m.onnxBytes), lfs: true }, 'tokenizer.json': { data: Buffer.from(JSON.stringify(m.tokenizer)), lfs: false } } });
});
afterAll(async () => {
  await hub?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const optimizeLine = (script: string) => /^FETCH_OPTIMIZE=(.*)$/m.exec(script)?.[1];
const userData = (o: Parameters<typeof defaultDeployConfig>[0]) => renderUserData(defaultDeployConfig({ model: MODEL, ...o }));

describe('user data: models fetch --optimize on the instance', () => {
  it('auto picks fp16 (pooling in the graph) with GPUs, int8 on CPU; --optimize overrides; bad values exit 2', async () => {
    expect(optimizeLine(userData({ gpusPerReplica: 1 }))).toBe('fp16');
    expect(optimizeLine(userData({ gpusPerReplica: 0 }))).toBe('int8');
    expect(optimizeLine(userData({ gpusPerReplica: 1, optimize: 'none' }))).toBe('none');
    expect(optimizeLine(userData({ gpusPerReplica: 0, optimize: 'fp16' }))).toBe('fp16');
    const script = userData({ gpusPerReplica: 1 });
    expect(script).toContain('"${MODEL}" --optimize "${FETCH_OPTIMIZE}"');
    expect(Buffer.byteLength(script)).toBeLessThanOrEqual(16_384);

    const out = join(dir, 'render');
    const r = await runCli(['render', '--model', MODEL, '--gpus-per-replica', '0', '--out', out], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(optimizeLine(readFileSync(join(out, 'user-data.sh'), 'utf8'))).toBe('int8');
    const env = await runCli(['render', '--model', MODEL, '--out', out], { cwd: dir, env: { EMBEDCTL_OPTIMIZE: 'none' } });
    expect(env.code, env.stderr).toBe(0);
    expect(optimizeLine(readFileSync(join(out, 'user-data.sh'), 'utf8'))).toBe('none');
    const bad = await runCli(['render', '--model', MODEL, '--optimize', 'int4', '--out', join(dir, 'bad')], { cwd: dir });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--optimize: .*auto.*none.*int8.*fp16/);
    expect(existsSync(join(dir, 'bad'))).toBe(false);
  });

  it('the rendered fetch command, run as written, fetches the preset and optimises it (fp16 + pool on GPU, int8 on CPU)', async () => {
    const models = join(dir, 'models');
    const run = (script: string) => {
      // The `retry docker run ...` command with its continuation line, as user data has it.
      const lines = script.split('\n');
      const at = lines.findIndex((l) => l.includes('retry docker run --rm --user 0 --entrypoint node'));
      const command = `${lines[at]}\n${lines[at + 1]}`;
      // docker stands in for the container: what follows the image is node's argv, /app is the build here.
      const harness = [
        `MODELS_DIR=/models IMAGE=example/runtime:1 ${/^MODEL=.*$/m.exec(script)![0]} ${/^FETCH_OPTIMIZE=.*$/m.exec(script)![0]}`,
        'retry() { "$@"; }',
        `docker() { while [ "$1" != "$IMAGE" ]; do shift; done; shift; node "\${@//\\/app\\/dist\\/src\\/cli.js/${join(root, 'dist', 'src', 'cli.js')}}"; }`,
        command,
      ].join('\n');
      // Asynchronously: the hub stand-in answers from this process's event loop.
      return promisify(execFile)('bash', ['-c', harness], { env: { ...process.env, CI: 'true', HF_ENDPOINT: hub.url, EMBEDCTL_MODELS_DIR: models }, encoding: 'utf8', timeout: 60_000 }).then((r) => r.stdout);
    };
    const manifest = () => JSON.parse(readFileSync(join(models, 'sentence-transformers--all-MiniLM-L6-v2', 'embedctl-model.json'), 'utf8'));

    expect(await run(userData({ gpusPerReplica: 1 }))).toMatch(/gate: pass/);
    expect(manifest()).toMatchObject({ pooledByGraph: true, optimization: { steps: ['fp16', 'pool-in-graph'] } });
    expect(existsSync(join(models, '.sources', 'sentence-transformers--all-MiniLM-L6-v2', 'model.onnx'))).toBe(true);
    expect(await run(userData({ gpusPerReplica: 0 }))).toMatch(/gate: pass/);
    expect(manifest()).toMatchObject({ pooledByGraph: false, optimization: { steps: ['int8'] } });
  }, 90_000);

  it('the GPU image defaults models fetch to fp16 (EMBEDCTL_FETCH_OPTIMIZE)', () => {
    const dockerfile = readFileSync(join(root, 'runtime', 'Dockerfile'), 'utf8');
    const env = /^ENV [\s\S]*?(?=\n\S)/m.exec(dockerfile.slice(dockerfile.lastIndexOf('\nFROM ')))![0];
    expect(env).toMatch(/EMBEDCTL_FETCH_OPTIMIZE=fp16\b/);
  });
});
