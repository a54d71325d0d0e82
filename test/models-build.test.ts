// The bundle builds are byte-for-byte deterministic and cached. Compares a fresh build in a temp
// dir (this process) with the models/ build (an earlier process) and the committed sha256 record.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel } from '../runtime/inference/model.js';
import { builtinModelsDir, readManifest } from '../common/models-registry.js';
import { packageRoot } from '../src/util/paths.js';

const root = packageRoot();
const script = join(root, 'scripts', 'build-models.js');
const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const recorded = JSON.parse(readFileSync(join(root, 'scripts', 'models.sha256.json'), 'utf8')) as Record<string, string>;
const tmp = mkdtempSync(join(tmpdir(), 'embedctl-models-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('build-models.js', () => {
  it('builds the same bytes twice and matches the recorded sha256', async () => {
    const out = join(tmp, 'a');
    const run = await execa(process.execPath, [script, '--only', 'default,default-q,tiny-bert,tiny-bert-cls', '--out', out]);
    // One line per model on stderr, nothing on stdout.
    expect(run.stdout).toBe('');
    for (const name of ['default', 'default-q', 'tiny-bert', 'tiny-bert-cls']) {
      expect(run.stderr).toContain(`built ${name} in`);
      const fresh = sha(join(out, name, 'model.onnx'));
      expect(fresh).toBe(recorded[name]);
      expect(fresh).toBe(sha(join(builtinModelsDir(), name, 'model.onnx')));
      expect(sha(join(out, name, 'tokenizer.json'))).toBe(sha(join(builtinModelsDir(), name, 'tokenizer.json')));
      expect(readManifest(join(out, name)).sha256).toBe(fresh);
    }
    expect(recorded['default']).not.toBe(recorded['default-q']);
    // Reading the 340k-word wink table takes ~8 s alone; a loaded 2-core machine took over 60 s.
  }, 240_000);

  it('is cached: a second run rebuilds nothing, --force rebuilds', async () => {
    const out = join(tmp, 'b');
    await execa(process.execPath, [script, '--only', 'tiny-bert', '--out', out]);
    const before = statSync(join(out, 'tiny-bert', 'model.onnx')).mtimeMs;
    const again = await execa(process.execPath, [script, '--only', 'tiny-bert', '--out', out]);
    expect(again.stderr).toMatch(/tiny-bert up to date/);
    expect(statSync(join(out, 'tiny-bert', 'model.onnx')).mtimeMs).toBe(before);
    const forced = await execa(process.execPath, [script, '--only', 'tiny-bert', '--out', out, '--force']);
    expect(forced.stderr).toMatch(/built tiny-bert in/);
    expect(sha(join(out, 'tiny-bert', 'model.onnx'))).toBe(recorded['tiny-bert']);
  });

  it('rejects an unknown model name with exit 2', async () => {
    const r = await execa(process.execPath, [script, '--only', 'nope', '--out', join(tmp, 'c')], { reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--only: unknown model "nope"/);
  });

  it('make-test-model.js emits other shapes and seeds deterministically', async () => {
    const mk = join(root, 'scripts', 'make-test-model.js');
    const args = ['--layers', '1', '--hidden', '48', '--heads', '4', '--intermediate', '96', '--seed', '7'];
    await execa(process.execPath, [mk, ...args, '--out', join(tmp, 'm1')]);
    await execa(process.execPath, [mk, ...args, '--out', join(tmp, 'm2'), '--pooling', 'cls']);
    await execa(process.execPath, [mk, ...args.slice(0, -1), '8', '--out', join(tmp, 'm3')]);
    const m1 = readManifest(join(tmp, 'm1'));
    expect(m1).toMatchObject({ dimensions: 48, pooling: 'mean', output: 'last_hidden_state' });
    expect(readManifest(join(tmp, 'm2')).pooling).toBe('cls');
    expect(sha(join(tmp, 'm1', 'model.onnx'))).toBe(sha(join(tmp, 'm2', 'model.onnx')));
    expect(sha(join(tmp, 'm1', 'model.onnx'))).not.toBe(sha(join(tmp, 'm3', 'model.onnx')));
    // --fp16 halves the weights on disk; outputs stay close to the float32 model's.
    await execa(process.execPath, [mk, ...args, '--fp16', '--out', join(tmp, 'm5')]);
    expect(statSync(join(tmp, 'm5', 'model.onnx')).size).toBeLessThan(statSync(join(tmp, 'm1', 'model.onnx')).size * 0.6);
    const [full, half] = await Promise.all([loadModel(join(tmp, 'm1')), loadModel(join(tmp, 'm5'))]);
    try {
      const [a] = await full.embed([full.encode('half precision weights')]);
      const [b] = await half.embed([half.encode('half precision weights')]);
      let dot = 0;
      for (let i = 0; i < a!.length; i++) dot += a![i]! * b![i]!;
      expect(dot).toBeGreaterThan(0.999);
      expect(dot).toBeLessThan(1 - 1e-9);
    } finally {
      await full.close();
      await half.close();
    }
    const bad = await execa(process.execPath, [mk, '--hidden', 'x', '--out', join(tmp, 'm4')], { reject: false });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/--hidden needs a whole number/);
  });
});
