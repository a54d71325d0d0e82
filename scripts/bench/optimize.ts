/**
 * `models optimize --int8` on a MiniLM-L6-shaped encoder (6 layers, hidden 384, 12 heads,
 * intermediate 1536, vocab 30522; seeded random weights from scripts/make-test-model.js): raw
 * embeddings/s of the int8 bundle against its fp32 source, measured in the same run on the same
 * machine, and the quality gate's cosine figures over the built-in sample texts.
 *
 *   npm run bench:optimize [-- --rounds 3 --keep]
 *
 * Raw = LoadedModel.embed (session.run + pooling) on pre-tokenised sample texts in batches of 16
 * of similar length (as the runtime's batcher forms them), no HTTP. Rounds alternate source and
 * result, so a neighbour's load lands on both; the ratio is the median of per-round ratios.
 * Target (issue 20): ratio >= 1.5 with min cosine >= 0.99. Writes bench-results/optimize.json.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadModel, type Model } from '../../runtime/inference/model.js';
import type { OptimizeReport } from '../../src/commands/models-optimize.js';
import { embedAll } from '../../src/commands/models-optimize-eval.js';
import { parseTexts } from '../../src/core/sample-texts.js';
import { readFileSync } from 'node:fs';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    keep: { type: 'boolean', default: false },
    out: { type: 'string', default: join(root, 'bench-results', 'optimize.json') },
  },
});
const ROUNDS = Number(flags.rounds);
const TARGETS = { int8SpeedupVsFp32: 1.5, minCosine: 0.99 };
const SHAPE = ['--layers', '6', '--hidden', '384', '--heads', '12', '--intermediate', '1536', '--vocab', '30522', '--max-positions', '512'];

function run(cmd: string[], what: string): string {
  const r = spawnSync(process.execPath, cmd, { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0 && !(what === 'optimize' && r.status === 3)) throw new Error(`${what} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

async function rate(model: Model, texts: string[]): Promise<number> {
  const t0 = performance.now();
  await embedAll(model, texts);
  return texts.length / ((performance.now() - t0) / 1000);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'embedctl-bench-optimize-'));
  try {
    const src = join(dir, 'minilm-shape');
    const int8 = join(dir, 'minilm-shape-int8');
    process.stderr.write('bench optimize: building the MiniLM-L6-shaped source model\n');
    run([join(root, 'scripts', 'make-test-model.js'), '--out', src, ...SHAPE, '--name', 'minilm-shape'], 'make-test-model');
    process.stderr.write('bench optimize: embedctl models optimize --int8 (quality gate over the sample texts)\n');
    const t0 = performance.now();
    const report = JSON.parse(run([join(root, 'bin', 'embedctl.js'), 'models', 'optimize', src, '--int8', '--no-rag', '--out', int8, '--json'], 'optimize')) as OptimizeReport;
    const optimizeMs = Math.round(performance.now() - t0);
    if (!report.written) throw new Error(`the gate refused the int8 bundle: min cosine ${report.gate?.distribution.min}`);

    const texts = parseTexts(readFileSync(join(root, 'data', 'sample-texts.jsonl'), 'utf8'), 'sample-texts.jsonl').map((t) => t.text);
    const source = await loadModel(src);
    const result = await loadModel(int8);
    // One untimed pass each: first runs allocate the arenas.
    await rate(source, texts.slice(0, 32));
    await rate(result, texts.slice(0, 32));
    const rounds: Array<{ fp32: number; int8: number; ratio: number }> = [];
    for (let i = 0; i < ROUNDS; i++) {
      const first = i % 2 === 0;
      const a = first ? await rate(source, texts) : 0;
      const b = await rate(result, texts);
      const fp32 = first ? a : await rate(source, texts);
      rounds.push({ fp32, int8: b, ratio: b / fp32 });
      process.stderr.write(`round ${i + 1}/${ROUNDS}: fp32 ${fp32.toFixed(1)}/s, int8 ${b.toFixed(1)}/s, ratio ${(b / fp32).toFixed(2)}\n`);
    }
    await source.close();
    await result.close();

    const ratio = median(rounds.map((r) => r.ratio));
    const gate = report.gate!;
    const doc = {
      schema: 'embedctl.bench.optimize/v1',
      generatedAt: new Date().toISOString(),
      machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: availableParallelism(), loadavg: loadavg().map((x) => Math.round(x * 100) / 100) },
      model: { shape: SHAPE.join(' '), sourceBytes: report.source.bytes, int8Bytes: report.result!.bytes },
      settings: { rounds: ROUNDS, texts: texts.length, batch: 16, batching: 'sorted by token length', provider: 'cpu' },
      optimize: { ms: optimizeMs, steps: report.steps.map((s) => s.step), ortOptimized: report.ortOptimized, timingsMs: report.timingsMs },
      embeddingsPerSecond: { fp32: median(rounds.map((r) => r.fp32)), int8: median(rounds.map((r) => r.int8)) },
      rounds,
      ratio: { int8VsFp32: ratio },
      cosine: { vs: 'fp32 source, sample texts', ...gate.distribution },
      targets: TARGETS,
      pass: { speedup: ratio >= TARGETS.int8SpeedupVsFp32, cosine: gate.distribution.min >= TARGETS.minCosine },
    };
    mkdirSync(join(root, 'bench-results'), { recursive: true });
    writeFileSync(flags.out!, `${JSON.stringify(doc, null, 2)}\n`);
    process.stdout.write(
      `optimize --int8 on the MiniLM-L6 shape (${texts.length} sample texts, ${ROUNDS} rounds, ${doc.machine.cores} cores, load ${doc.machine.loadavg[0]}):\n` +
        `  raw embeddings/s  fp32 ${doc.embeddingsPerSecond.fp32.toFixed(1)}  int8 ${doc.embeddingsPerSecond.int8.toFixed(1)}  ratio ${ratio.toFixed(2)} (target >= ${TARGETS.int8SpeedupVsFp32}) ${doc.pass.speedup ? 'PASS' : 'MISS'}\n` +
        `  cosine vs fp32    min ${gate.distribution.min.toFixed(6)}  p50 ${gate.distribution.p50.toFixed(6)} (target min >= ${TARGETS.minCosine}) ${doc.pass.cosine ? 'PASS' : 'MISS'}\n` +
        `  model.onnx        ${(report.source.bytes / 1e6).toFixed(1)} MB -> ${(report.result!.bytes / 1e6).toFixed(1)} MB\n` +
        `  wrote ${flags.out}\n`,
    );
  } finally {
    if (flags.keep) process.stderr.write(`kept ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

await main();
