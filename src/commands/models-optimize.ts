/**
 * `embedctl models optimize`: int8 / fp16 / pooling in the graph / ORT's offline optimisation,
 * then a quality gate against the source over the built-in sample texts; the bundle is written
 * (atomically: a sibling temp dir renamed into place) only when the gate passes.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { ensureBuiltin, readManifest, resolveModelRef } from '../../common/models-registry.js';
import type { Command } from 'commander';
import { parseFlag, parsers } from '../config.js';
import type { Context } from '../context.js';
import type { StepRecord, transformModel } from '../core/onnx-optimize/index.js';
import { int8Cpu } from '../adapters/cpu-info.js';
import type { Int8Cpu } from '../core/onnx-optimize/cpu-int8.js';
import { cosineGate, defaultMinCosine, type CosineGate, type RetrievalCost } from '../core/onnx-optimize/quality.js';
import { GateFailed, UsageError } from '../errors.js';
import { printJson, table, type Logger } from '../ui/output.js';
import { packageVersion } from '../util/paths.js';
import { action, examples, type ExitHolder } from './shared.js';
import { measureRetrieval, openPair, sampleVectors } from './models-optimize-eval.js';

export interface OptimizeOptions {
  int8?: boolean;
  fp16?: boolean;
  poolInGraph?: boolean;
  /** 8-bit weights instead of 7 (VNNI CPUs; see core/onnx-optimize/int8.ts). */
  fullRange?: boolean;
  minCosine?: number;
  /** ORT's offline optimisation level, or 'off'. */
  ortLevel: 'basic' | 'extended' | 'off';
  /** Execution provider for ORT's optimisation and the gate. */
  ep: string;
  rag: boolean;
  /** Why the retrieval cost is not measured when rag is false (default: the --no-rag flag). */
  ragSkipped?: string;
  name?: string;
  force?: boolean;
  dryRun?: boolean;
}

export interface OptimizeReport {
  action: 'optimize';
  source: { dir: string; name: string; sha256: string; bytes: number };
  out: string;
  written: boolean;
  dryRun?: boolean;
  steps: StepRecord[];
  ortOptimized: { level: string; provider: string } | { skipped: string };
  output: { name: string; shape: string; sourceShape: string };
  result?: { sha256: string; bytes: number };
  gate?: CosineGate;
  retrieval?: RetrievalCost | { skipped: string };
  /** With --int8: the int8 GEMM kernel this machine's CPU gets (the gate and any speed figure are this machine's). */
  cpu?: Int8Cpu;
  timingsMs: Record<string, number>;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const MODEL_FILES = new Set(['model.onnx', 'embedctl-model.json']);

export function resolveSource(ctx: Context, ref: string): Promise<string> {
  const r = resolveModelRef(ref, { cwd: ctx.cwd, env: ctx.env });
  return r.kind === 'builtin' ? ensureBuiltin(r.name, () => {}, ctx.env) : Promise.resolve(r.dir);
}

export async function optimizeBundle(ctx: Context, log: Logger, sourceRef: string, outArg: string, o: OptimizeOptions): Promise<OptimizeReport> {
  if (o.int8 && o.fp16) throw new UsageError('--int8 (CPU) and --fp16 (GPU) target different hardware; pick one', { field: '--fp16' });
  if (o.minCosine !== undefined && !(o.minCosine > 0 && o.minCosine <= 1)) throw new UsageError(`must be in (0, 1], got ${o.minCosine}`, { field: '--min-cosine' });
  const srcDir = await resolveSource(ctx, sourceRef);
  const manifest = readManifest(srcDir);
  const out = resolve(ctx.cwd, outArg);
  if (resolve(srcDir) === out) throw new UsageError('must differ from the source bundle (the source is what the result is checked against)', { field: '--out' });
  if (existsSync(out) && !o.force && !o.dryRun) throw new UsageError(`${out} already exists`, { field: '--out', hint: 'pass --force to replace it, or pick another directory' });
  if (o.poolInGraph && (manifest.pooledByGraph || manifest.pooling === 'none')) {
    throw new UsageError(`${manifest.name} already returns pooled vectors (pooledByGraph ${manifest.pooledByGraph}, pooling ${manifest.pooling})`, { field: '--pool-in-graph' });
  }
  const srcBytes = readFileSync(join(srcDir, 'model.onnx'));
  const t: Record<string, number> = {};
  const timed = async <T>(k: string, fn: () => T | Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      t[k] = Math.round(performance.now() - t0);
    }
  };
  const dims = manifest.dimensions;
  const pool = o.poolInGraph ? { hidden: manifest.output, pooling: manifest.pooling as 'mean' | 'cls', normalize: manifest.normalize, dimensions: dims } : undefined;
  // fp16 needs the provider that runs it: on CPU, ORT's optimiser would wrap fp16 ops it has no kernels for in fp32 Casts and save that.
  const ortSkip = o.ortLevel === 'off' ? 'off (--ort-level off)' : o.fp16 && o.ep === 'cpu' ? 'skipped: an fp16 graph is optimised by the GPU provider that runs it (the runtime does so at load); --ep cpu would save fp32 fallbacks' : undefined;
  const report: OptimizeReport = {
    action: 'optimize',
    source: { dir: srcDir, name: manifest.name, sha256: manifest.sha256 ?? sha256(srcBytes), bytes: srcBytes.length },
    out,
    written: false,
    steps: [],
    ortOptimized: ortSkip ? { skipped: ortSkip } : { level: o.ortLevel, provider: o.ep },
    output: {
      name: pool ? 'sentence_embedding' : manifest.output,
      shape: pool || manifest.pooledByGraph ? `[batch, ${dims}]` : `[batch, sequence, ${dims}]`,
      sourceShape: manifest.pooledByGraph ? `[batch, ${dims}]` : `[batch, sequence, ${dims}]`,
    },
    ...(o.int8 ? { cpu: int8Cpu() } : {}),
    timingsMs: t,
  };
  if (o.dryRun) return { ...report, dryRun: true };

  let transformed: ReturnType<typeof transformModel>;
  // onnx-proto is loaded when a model is optimised, not at every CLI start.
  const { transformModel } = await import('../core/onnx-optimize/index.js');
  try {
    transformed = await timed('transform', () => transformModel(srcBytes, { int8: o.int8 ? { reduceRange: !o.fullRange } : undefined, fp16: o.fp16, pool }));
  } catch (err) {
    throw new UsageError(`cannot optimise ${srcDir}/model.onnx: ${(err as Error).message}`, { field: o.int8 ? '--int8' : o.fp16 ? '--fp16' : '--pool-in-graph' });
  }
  report.steps = transformed.steps;
  if (transformed.output) report.output.name = transformed.output;

  // Everything lands in a sibling temp dir first; the gate runs on it; only a pass renames it into place.
  const tmp = join(dirname(out), `.${basename(out)}.partial-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    const raw = join(tmp, ortSkip ? 'model.onnx' : 'model.unoptimized.onnx');
    writeFileSync(raw, transformed.bytes);
    if (!ortSkip) {
      const { ortOptimizeFile } = await import('../adapters/ort-optimize.js');
      await timed('ortOptimize', () => ortOptimizeFile(raw, join(tmp, 'model.onnx'), o.ortLevel as 'basic' | 'extended', o.ep)).catch((err: Error) => {
        throw new UsageError(`ONNX Runtime rejected the optimised graph: ${err.message.split('\n')[0]}`, { field: '--ort-level', hint: 'try --ort-level basic or off' });
      });
      rmSync(raw);
    }
    for (const f of readdirSync(srcDir)) {
      if (!MODEL_FILES.has(f) && statSync(join(srcDir, f)).isFile()) copyFileSync(join(srcDir, f), join(tmp, f));
    }
    const resultBytes = readFileSync(join(tmp, 'model.onnx'));
    report.result = { sha256: sha256(resultBytes), bytes: resultBytes.length };
    // recipe is build-models' cache key for the source; it says nothing about this bundle.
    const { pooledByGraph, output, recipe: _recipe, ...rest } = manifest;
    const next = {
      ...rest,
      name: o.name ?? manifest.name,
      output: transformed.output ?? output,
      pooledByGraph: transformed.output ? true : pooledByGraph,
      sha256: report.result.sha256,
      source: `embedctl models optimize of ${srcDir} (${manifest.source ?? manifest.name})`,
      optimization: {
        tool: `embedctl ${packageVersion()} models optimize`,
        source: { name: manifest.name, dir: srcDir, sha256: report.source.sha256 },
        steps: transformed.steps.map((s) => s.step),
        details: transformed.steps,
        ortOptimized: report.ortOptimized,
      },
    };
    writeFileSync(join(tmp, 'embedctl-model.json'), `${JSON.stringify(next, null, 2)}\n`);

    const min = o.minCosine !== undefined ? { value: o.minCosine, basis: '--min-cosine' } : defaultMinCosine(o);
    log.info(`quality gate: embedding the sample texts with ${manifest.name} and the result (${o.ep})`);
    const pair = await openPair(ctx, srcDir, tmp, o.ep);
    try {
      const vec = await timed('gate', () => sampleVectors(ctx, pair));
      report.gate = cosineGate(vec.source, vec.result, min.value, min.basis);
      if (!report.gate.pass) return report;
      report.retrieval = o.rag ? await timed('retrieval', () => measureRetrieval(ctx, log, pair)) : { skipped: o.ragSkipped ?? '--no-rag' };
    } finally {
      await pair.close();
    }
    const finalManifest = { ...next, optimization: { ...next.optimization, gate: report.gate, retrieval: report.retrieval } };
    writeFileSync(join(tmp, 'embedctl-model.json'), `${JSON.stringify(finalManifest, null, 2)}\n`);
    if (existsSync(out)) rmSync(out, { recursive: true, force: true });
    renameSync(tmp, out);
    report.written = true;
    return report;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The gate's verdict as an error (exit 3), after the report has been printed. */
export function gateError(r: OptimizeReport): GateFailed {
  const g = r.gate!;
  return new GateFailed(
    `min cosine ${g.distribution.min.toFixed(6)} vs the source is below ${g.minCosine} (${g.basis}; ${g.below} of ${g.texts} sample texts below): no bundle written to ${r.out}`,
    { report: r, hint: 'keep the source model, or pass a lower --min-cosine if the retrieval cost is acceptable' },
  );
}

interface Flags {
  out?: string;
  int8?: boolean;
  fp16?: boolean;
  poolInGraph?: boolean;
  fullRange?: boolean;
  minCosine?: string;
  ortLevel: string;
  ep: string;
  rag: boolean;
  name?: string;
  force?: boolean;
  dryRun?: boolean;
}

export function parseOptimizeFlags(f: Flags): OptimizeOptions {
  if (!['basic', 'extended', 'off'].includes(f.ortLevel)) throw new UsageError(`must be basic, extended or off, got "${f.ortLevel}"`, { field: '--ort-level' });
  return {
    int8: f.int8,
    fp16: f.fp16,
    poolInGraph: f.poolInGraph,
    fullRange: f.fullRange,
    minCosine: f.minCosine === undefined ? undefined : parseFlag('--min-cosine', f.minCosine, parsers.number({ min: 0, max: 1 })),
    ortLevel: f.ortLevel as OptimizeOptions['ortLevel'],
    ep: f.ep,
    rag: f.rag,
    name: f.name,
    force: f.force,
    dryRun: f.dryRun,
  };
}

export function registerOptimize(models: Command, ctx: Context, holder: ExitHolder): void {
  const cmd = models
    .command('optimize')
    .description('make a model fast on its hardware (int8 for CPU, fp16 for GPU, pooling in the graph, ORT graph optimisation), gated on cosine vs the source')
    .argument('<model>', 'bundle directory, built-in name or fetched hub id')
    .requiredOption('--out <dir>', 'where to write the optimised bundle (written only if the quality gate passes)')
    .option('--int8', 'dynamic int8 quantisation of MatMul/Gemm weights (CPU serving)')
    .option('--fp16', 'float16 weights and compute, LayerNorm/Softmax/reductions kept in fp32 (GPU serving)')
    .option('--pool-in-graph', 'append mean/CLS pooling and L2 normalisation to the graph: only pooled vectors leave the device')
    .option('--full-range', 'with --int8: 8-bit weights (CPUs with VNNI); default 7-bit, safe on every x86 CPU')
    .option('--min-cosine <x>', 'quality gate: min cosine vs the source over the sample texts (default 0.99 int8, 0.999 fp16, 0.9999 otherwise)')
    .option('--ort-level <level>', "ONNX Runtime's offline graph optimisation saved with the bundle: basic, extended or off", 'extended')
    .option('--ep <provider>', 'execution provider for the graph optimisation and the gate (cpu, cuda)', 'cpu')
    .option('--no-rag', 'skip the retrieval-cost check on the shipped RAG sample')
    .option('--name <name>', 'model name in the new manifest (default: the source name)')
    .option('--force', 'replace --out if it exists')
    .option('--dry-run', 'print what would be done, write nothing');
  examples(cmd, [
    'embedctl models optimize tiny-bert --int8 --out models/tiny-bert-int8',
    'embedctl models optimize BAAI/bge-small-en-v1.5 --fp16 --pool-in-graph --out /opt/models/bge-small-fp16',
    'embedctl models optimize ./my-bundle --int8 --min-cosine 0.995 --out ./my-bundle-int8 --json',
    'embedctl serve --model models/tiny-bert-int8',
  ]);
  cmd.action(
    action<Flags>(ctx, holder, async ({ opts, args, globals, log }) => {
      const r = await optimizeBundle(ctx, log, args[0]!, opts.out!, parseOptimizeFlags(opts));
      if (globals.json) printJson(ctx, 'models', { ...r });
      else ctx.stdout.write(renderOptimize(r));
      if (r.gate && !r.gate.pass) throw gateError(r);
      return 0;
    }),
  );
}

const f6 = (x: number) => x.toFixed(6);
const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

export function renderOptimize(r: OptimizeReport): string {
  const lines = [`source   ${r.source.dir} (${r.source.name}, ${mb(r.source.bytes)}, sha256 ${r.source.sha256.slice(0, 12)})`];
  if (r.dryRun) lines.push(`would write ${r.out}`);
  for (const s of r.steps) {
    if (s.step === 'int8') lines.push(`int8     ${s.quantized} weight matrices quantised (${mb(s.weightBytesBefore)} -> ${mb(s.weightBytesAfter)}); ${s.scheme}`);
    if (s.step === 'fp16') lines.push(`fp16     ${s.convertedInitializers} initializers to float16, ${s.keptFp32Nodes} nodes kept in float32, ${s.castsInserted} casts`);
    if (s.step === 'pool-in-graph') lines.push(`pool     ${s.pooling}${s.normalize ? ' + L2' : ''} in the graph: output ${s.output}`);
  }
  lines.push(`output   ${r.output.name} ${r.output.shape} (source: ${r.output.sourceShape})`);
  lines.push(`ORT      ${'skipped' in r.ortOptimized ? r.ortOptimized.skipped : `offline optimisation (${r.ortOptimized.level}, ${r.ortOptimized.provider}) saved as model.onnx`}`);
  if (r.result) lines.push(`result   ${mb(r.result.bytes)}, sha256 ${r.result.sha256.slice(0, 12)}`);
  if (r.cpu) {
    lines.push(`cpu      ${r.cpu.model}: int8 kernel ${r.cpu.kernel} (${r.cpu.note})`);
    const int8 = r.steps.find((s) => s.step === 'int8');
    if (r.cpu.dotProduct && int8?.step === 'int8' && /7-bit/.test(int8.scheme) && r.cpu.arch !== 'arm64') {
      lines.push('         this CPU has VNNI: --full-range keeps 8-bit weights (twice the resolution) if the bundle serves on it');
    }
  }
  if (r.gate) {
    const g = r.gate;
    const d = g.distribution;
    lines.push('', `cosine vs the source over ${g.texts} sample texts (gate: min >= ${g.minCosine}, ${g.basis}):`);
    lines.push(table(['min', 'p1', 'p5', 'p50', 'mean'], [[f6(d.min), f6(d.p1), f6(d.p5), f6(d.p50), f6(d.mean)]]).trimEnd());
    lines.push(`histogram ${g.histogram.from.toFixed(3)}..1 (10 bins): ${g.histogram.counts.join(' ')}`);
    lines.push(`gate: ${g.pass ? 'pass' : `FAILED (${g.below} text(s) below)`}`);
  }
  if (r.retrieval) {
    const x = r.retrieval;
    if ('skipped' in x) lines.push(`retrieval cost: skipped (${x.skipped})`);
    else {
      lines.push('', `retrieval cost on the shipped RAG sample (${x.queries} queries, ${x.passages} passages):`);
      lines.push(`  overlap@${x.k} with the source's top ${x.k}: mean ${x.overlapAtK.mean.toFixed(4)}, min ${x.overlapAtK.min.toFixed(4)}`);
      lines.push(`  nDCG@10 ${x.ndcg10.source.toFixed(4)} -> ${x.ndcg10.result.toFixed(4)} (ratio ${x.ndcg10.ratio.toFixed(4)})`);
    }
  }
  if (r.written) lines.push('', `wrote ${r.out}; serve it with: embedctl serve --model ${r.out}`);
  return `${lines.join('\n')}\n`;
}
