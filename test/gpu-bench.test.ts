// The GPU benchmark harness of issue 10, exercised on CPU: CI has no GPU, so this proves the harness
// runs end to end and reports honestly (provider cpu, a zero diff against a second CPU session);
// the GPU numbers themselves come only from a run on the GPU machine (docs/gpu.md).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const bench = join(root, 'dist', 'scripts', 'bench', 'gpu', 'bench.js');
const gpuDir = join(root, 'scripts', 'bench', 'gpu');
const work = mkdtempSync(join(tmpdir(), 'embedctl-gpu-bench-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function runBench(args: string[]) {
  return spawnSync(process.execPath, [bench, ...args], { encoding: 'utf8', timeout: 60_000 });
}

describe('bench:gpu --quick on the CPU provider', () => {
  it('measures every batch x seq cell, the runtime over HTTP, and a zero diff against a second CPU session', () => {
    const out = join(work, 'quick.json');
    const r = runBench(['--quick', '--ep', 'cpu', '--out', out, '--models-dir', join(work, 'models'), '--min-ms', '20', '--http-ms', '300']);
    expect(r.status, r.stderr).toBe(0);
    const doc = JSON.parse(readFileSync(out, 'utf8'));
    expect(doc.schema).toBe('embedctl.bench.gpu/v1');
    expect(doc.complete).toBe(true);
    expect(doc.errors).toEqual([]);
    expect(doc.provider).toBe('cpu');
    expect(doc.device.onnxruntimeNode).toMatch(/^\d+\.\d+\.\d+/);
    expect(doc.device.node).toBe(process.version);
    expect(doc.shapes).toHaveLength(1);
    const s = doc.shapes[0];
    expect(s.provider).toBe('cpu');
    expect(s.providerLog.join('\n')).toMatch(/on execution provider cpu/);
    expect(s.diffVsCpu.maxAbs).toBe(0);
    const cells = s.raw.map((c: { batch: number; seq: number }) => `${c.batch}x${c.seq}`).sort();
    expect(cells).toEqual(['1x32', '1x8', '4x32', '4x8']);
    for (const c of s.raw) {
      expect(c.iters).toBeGreaterThanOrEqual(2);
      expect(c.medianMs).toBeGreaterThan(0);
      // medianMs is rounded to 1 us in the JSON: agree within 1%.
      expect(Math.abs(c.embeddingsPerSec / ((c.batch * 1000) / c.medianMs) - 1)).toBeLessThan(0.01);
      expect(c.poolMs).toBeGreaterThanOrEqual(0);
    }
    expect(s.http.map((h: { seq: number }) => h.seq)).toEqual([8, 32]);
    for (const h of s.http) {
      expect(h.healthProvider).toBe('cpu');
      expect(h.textsPerRequest).toBe(4);
      expect(h.errors).toBe(0);
      expect(h.requests).toBeGreaterThan(0);
      expect(h.embeddingsPerSec).toBeGreaterThan(0);
    }
    const criteria = doc.verdicts.map((v: { criterion: string }) => v.criterion);
    expect(criteria).toContain('max abs diff vs cpu < 1e-3');
    expect(doc.verdicts.find((v: { criterion: string }) => v.criterion.startsWith('max abs diff')).pass).toBe(true);
    expect(criteria.filter((c: string) => c.startsWith('http >= 0.8x raw'))).toHaveLength(2);
    // No anchor given: no PyTorch comparison is claimed.
    expect(criteria.some((c: string) => c.includes('torch'))).toBe(false);
  }, 60_000);

  it('judges raw throughput against a torch anchor document when one is given', () => {
    const anchor = join(work, 'anchor.json');
    // A hand-written anchor: 1 embedding/s per cell, so every raw cell must clear 1/1.5 of it.
    const results = [8, 32].flatMap((seq) => [1, 4].map((batch) => ({ shape: 'tiny', dtype: 'fp16', batch, seq, embeddingsPerSec: 1 })));
    execFileSync(process.execPath, ['-e', `require('node:fs').writeFileSync(${JSON.stringify(anchor)}, JSON.stringify({schema: 'embedctl.bench.torch/v1', torch: 'x', results: ${JSON.stringify(results)}}))`]);
    const out = join(work, 'anchored.json');
    const r = runBench(['--quick', '--ep', 'cpu', '--out', out, '--models-dir', join(work, 'models'), '--min-ms', '10', '--http-ms', '100', '--anchor', anchor]);
    expect(r.status, r.stderr).toBe(0);
    const doc = JSON.parse(readFileSync(out, 'utf8'));
    expect(doc.anchor.torch).toBe('x');
    const torch = doc.verdicts.filter((v: { criterion: string }) => v.criterion === 'raw >= torch fp16 / 1.5');
    expect(torch).toHaveLength(4);
    for (const v of torch) {
      const raw = doc.shapes[0].raw.find((c: { batch: number; seq: number }) => c.batch === v.batch && c.seq === v.seq);
      expect(v.value).toBeCloseTo(raw.embeddingsPerSec, 0);
      expect(v.pass).toBe(true);
    }
  }, 60_000);

  it('refuses bad flags with one line naming the flag (exit 2), and --require fails with exit 3 when that provider did not load', () => {
    const bad = runBench(['--quick', '--ep', 'tpu']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--ep: unknown execution provider "tpu"/);
    const seq = runBench(['--quick', '--seqs', '4096']);
    expect(seq.status).toBe(2);
    expect(seq.stderr).toMatch(/--seqs: 4096 is longer than shape tiny takes \(64 positions\)/);

    const out = join(work, 'require.json');
    const req = runBench(['--quick', '--ep', 'cpu', '--require', 'cuda', '--out', out, '--models-dir', join(work, 'models')]);
    expect(req.status).toBe(3);
    expect(req.stderr).toMatch(/--require cuda: the model loaded on cpu/);
    const doc = JSON.parse(readFileSync(out, 'utf8'));
    expect(doc.complete).toBe(false);
    expect(doc.errors.join('\n')).toMatch(/--require cuda/);
  }, 60_000);
});

describe('GPU machine scripts', () => {
  it.each(['run-on-gpu.sh', 'pack-node.sh'])('%s parses (bash -n) and prints its usage', (name) => {
    const file = join(gpuDir, name);
    expect(spawnSync('bash', ['-n', file], { encoding: 'utf8' }).status).toBe(0);
    const help = spawnSync('bash', [file, '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/run-on-gpu\.sh|pack-node\.sh/);
    const bad = spawnSync('bash', [file, '--bogus'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/unknown flag --bogus/);
  });

  it('run-on-gpu.sh stops with a clear line when nothing was carried', () => {
    const r = spawnSync('bash', [join(gpuDir, 'run-on-gpu.sh')], {
      encoding: 'utf8',
      env: { ...process.env, CARRY_DIR: join(work, 'nothing'), STAGE: join(work, 'stage'), OUT: join(work, 'out') },
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/no MANIFEST staged: carry a folder made by scripts\/bench\/gpu\/pack-node\.sh/);
  });

  const python = ['python3', 'python'].find((p) => spawnSync(p, ['--version']).status === 0);
  it.skipIf(!python)('torch_anchor.py compiles, and without torch says so instead of failing obscurely', () => {
    const file = join(gpuDir, 'torch_anchor.py');
    const compiled = spawnSync(python!, ['-c', `import py_compile,sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)`, file, join(work, 'a.pyc')], { encoding: 'utf8' });
    expect(compiled.status, compiled.stderr).toBe(0);
    const bad = spawnSync(python!, [file, '--shapes', 'nope'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--shapes: unknown shape 'nope'/);
    const hasTorch = spawnSync(python!, ['-c', 'import torch, transformers'], { encoding: 'utf8' }).status === 0;
    if (!hasTorch) {
      const r = spawnSync(python!, [file, '--quick', '--out', join(work, 't.json')], { encoding: 'utf8' });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/needs PyTorch and transformers/);
      expect(existsSync(join(work, 't.json'))).toBe(false);
    }
  });
});
