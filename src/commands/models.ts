import { existsSync, readFileSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { BUILTIN_MODELS, hubCacheDir, hubDirName, isHubId, listModels, readManifest } from '../../common/models-registry.js';
import { DEFAULT_ENDPOINT, downloadFile, resolveUrl } from '../adapters/hub.js';
import type { Context } from '../context.js';
import { findPreset, manifestFromPreset, MODEL_PRESETS, type ModelPreset } from '../core/model-presets.js';
import { UsageError } from '../errors.js';
import { printJson, progress, table, type Logger } from '../ui/output.js';
import { acquireLock, writeJsonAtomic } from '../util/fs.js';
import { action, examples, type ExitHolder } from './shared.js';
import { confirmOrRefuse } from '../ui/prompts.js';
import { addOptions, resolveTable } from './define.js';
import { MODELS_FETCH_OPTIONS } from './define-models.js';
import { gateError, registerOptimize, renderOptimize, type OptimizeReport } from './models-optimize.js';
import { type FetchOptimize, optimizeFetched, parseFetchOptimize, recordedSteps, sameSteps, sourceDirFor } from './models-fetch-optimize.js';
import { parseFlag, parsers } from '../config.js';

export function register(program: Command, ctx: Context, holder: ExitHolder): void {
  const cmd = program.command('models').description('list the model bundles embedctl can serve, fetch ONNX models from the Hugging Face hub');
  examples(cmd, ['embedctl models list', 'embedctl models fetch BAAI/bge-small-en-v1.5', 'embedctl models fetch intfloat/e5-base-v2 --revision main --file onnx/model.onnx']);

  const list = cmd
    .command('list')
    .description('built-in and fetched models with dimensions, max tokens, licence, sha256 and path; then the hub presets');
  examples(list, ['embedctl models list', 'embedctl models list --json']);
  list.action(action(ctx, holder, async ({ globals, ctx }) => listAction(ctx, globals.json)));

  const fetch = cmd
    .command('fetch')
    .description('download an ONNX embedding model + tokenizer from the hub into a servable bundle (HF_ENDPOINT, HF_TOKEN honoured)')
    .argument('<hub-repo-id>', `e.g. ${MODEL_PRESETS.map((p) => p.repoId).join(', ')}`);
  addOptions(fetch, MODELS_FETCH_OPTIONS);
  examples(fetch, [
    'embedctl models fetch sentence-transformers/all-MiniLM-L6-v2',
    'HF_TOKEN=hf_... embedctl models fetch jinaai/jina-embeddings-v3 --yes',
    'HF_ENDPOINT=https://hf-mirror.example embedctl models fetch thenlper/gte-base --dry-run',
    'embedctl models fetch my-org/my-model --file model.onnx --dimensions 768 --pooling mean',
    'embedctl models fetch BAAI/bge-small-en-v1.5 --optimize fp16 --pool-in-graph',
    'embedctl models fetch sentence-transformers/all-MiniLM-L6-v2 --optimize int8',
    'embedctl serve --model BAAI/bge-small-en-v1.5',
  ]);
  fetch.action(
    action<Record<string, unknown>>(ctx, holder, async ({ opts, args, globals, ctx, log }) => fetchAction(ctx, log, args[0]!, resolveTable(ctx, MODELS_FETCH_OPTIONS, opts).values, globals.json)),
  );
  registerOptimize(cmd, ctx, holder);
}

function listAction(ctx: Context, json: boolean): number {
  const models = listModels(ctx.env).map((m) => ({
    name: m.name,
    kind: m.kind,
    built: m.built,
    dimensions: m.manifest?.dimensions ?? null,
    // Sizes a request may ask for: Matryoshka models take any size up to the native one.
    sizes: m.manifest ? sizesOf(m.manifest.dimensions, m.manifest.matryoshkaDimensions) : null,
    maxTokens: m.manifest?.maxTokens ?? null,
    pooling: m.manifest?.pooling ?? null,
    license: m.manifest?.license ?? null,
    sha256: m.manifest?.sha256 ?? null,
    source: m.manifest?.source ?? null,
    path: m.dir,
    ...(m.error ? { error: m.error } : {}),
  }));
  const presets = MODEL_PRESETS.map((p) => ({
    repoId: p.repoId,
    dimensions: p.dimensions,
    sizes: sizesOf(p.dimensions, p.matryoshkaDimensions),
    maxTokens: p.maxTokens,
    pooling: p.pooling,
    license: p.license,
    fetched: models.some((m) => m.kind === 'hub' && m.name.toLowerCase() === p.repoId.toLowerCase()),
  }));
  if (json) {
    printJson(ctx, 'models', { action: 'list', models, presets, cacheDir: hubCacheDir(ctx.env) });
    return 0;
  }
  ctx.stdout.write(
    table(
      ['NAME', 'KIND', 'DIMS', 'MAX TOKENS', 'POOLING', 'LICENSE', 'SHA256', 'PATH'],
      models.map((m) => [
        m.name,
        m.kind,
        m.dimensions ?? '-',
        m.maxTokens ?? '-',
        m.pooling ?? '-',
        m.error ? `broken: ${m.error}` : (m.license ?? (m.built ? '-' : 'not built (node scripts/build-models.js)')),
        m.sha256 ? m.sha256.slice(0, 12) : '-',
        m.path,
      ]),
    ),
  );
  ctx.stdout.write(`\nFetchable presets (embedctl models fetch <repo>):\n`);
  ctx.stdout.write(table(['REPO', 'SIZES', 'MAX TOKENS', 'POOLING', 'LICENSE', 'FETCHED'], presets.map((p) => [p.repoId, p.sizes.join(','), p.maxTokens, p.pooling, p.license, p.fetched ? 'yes' : 'no'])));
  return 0;
}

/** Native size first, then the listed Matryoshka sizes, largest first. */
const sizesOf = (dims: number, matryoshka: number[]) => [...new Set([dims, ...matryoshka])].filter((d) => d <= dims).sort((a, b) => b - a);

interface FetchOpts {
  revision: string;
  file?: string;
  out?: string;
  sha256?: string;
  dimensions?: string;
  pooling?: string;
  maxTokens: string;
  yes?: boolean;
  force?: boolean;
  dryRun?: boolean;
  optimize?: string;
  poolInGraph?: boolean;
  minCosine?: string;
}

function positiveInt(v: string | undefined, field: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`must be a whole number above 0, got "${v}"`, { field });
  return n;
}

/** A preset for a repo embedctl does not know, from the flags. */
function adHocPreset(repoId: string, o: FetchOpts): ModelPreset {
  if (o.dimensions === undefined || o.pooling === undefined) {
    throw new UsageError(`${repoId} has no preset; say how to use it with --dimensions N and --pooling mean|cls`, {
      field: '--dimensions',
      hint: `presets: ${MODEL_PRESETS.map((p) => p.repoId).join(', ')}`,
    });
  }
  if (o.pooling !== 'mean' && o.pooling !== 'cls') throw new UsageError(`must be mean or cls, got "${o.pooling}"`, { field: '--pooling' });
  return {
    repoId,
    file: o.file ?? 'onnx/model.onnx',
    dimensions: positiveInt(o.dimensions, '--dimensions'),
    maxTokens: positiveInt(o.maxTokens, '--max-tokens'),
    pooling: o.pooling,
    matryoshkaDimensions: [],
    taskPrefixes: {},
    license: 'unknown (see the model card)',
    output: 'last_hidden_state',
    inputs: ['input_ids', 'attention_mask', 'token_type_ids'],
  };
}

async function acceptLicense(ctx: Context, log: Logger, preset: ModelPreset, yes: boolean): Promise<void> {
  if (!preset.licenseWarning) return;
  log.warn(preset.licenseWarning);
  if (yes) return;
  await confirmOrRefuse(ctx, {
    message: `Accept the ${preset.license} licence of ${preset.repoId}?`,
    noTerminal: `${preset.repoId} is licensed ${preset.license}; not asking without a terminal`,
    hint: 'pass --yes to accept the licence terms',
    refused: 'licence not accepted; nothing was downloaded',
  });
}

function complete(dir: string): boolean {
  try {
    const m = readManifest(dir);
    const ext = (m.externalData as Array<{ file: string; bytes: number }> | undefined) ?? [];
    if (!ext.every((e) => existsSync(join(dir, e.file)) && statSync(join(dir, e.file)).size === e.bytes)) return false;
    return existsSync(join(dir, 'tokenizer.json')) && createHash('sha256').update(readFileSync(join(dir, 'model.onnx'))).digest('hex') === m.sha256;
  } catch {
    return false;
  }
}

async function fetchAction(ctx: Context, log: Logger, repoIdIn: string, o: FetchOpts, json: boolean): Promise<number> {
  if (!isHubId(repoIdIn)) {
    throw new UsageError(`"${repoIdIn}" is not a hub repo id; expected org/name, e.g. BAAI/bge-small-en-v1.5`, { field: '<hub-repo-id>' });
  }
  if ((BUILTIN_MODELS as readonly string[]).includes(repoIdIn)) throw new UsageError(`${repoIdIn} is built in; nothing to fetch`, { field: '<hub-repo-id>' });
  if (o.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(o.sha256)) throw new UsageError(`must be 64 hex characters, got "${o.sha256}"`, { field: '--sha256' });
  if (!o.revision) throw new UsageError('must not be empty', { field: '--revision' });
  const optimize = parseFetchOptimize(o.optimize as FetchOptimize, o.poolInGraph);
  const minCosine = o.minCosine === undefined ? undefined : parseFlag('--min-cosine', o.minCosine, parsers.number({ min: 0, max: 1 }));
  if (minCosine !== undefined && !optimize) throw new UsageError('only applies with --optimize int8|fp16 (the quality gate of the optimisation)', { field: '--min-cosine' });
  const known = findPreset(repoIdIn);
  const preset = known ? { ...known, ...(o.file ? { file: o.file } : {}) } : adHocPreset(repoIdIn, o);
  const repoId = preset.repoId;
  const endpoint = ctx.env.HF_ENDPOINT || DEFAULT_ENDPOINT;
  const token = ctx.env.HF_TOKEN || ctx.env.HUGGING_FACE_HUB_TOKEN || undefined;
  const dir = o.out ? resolve(ctx.cwd, o.out) : join(hubCacheDir(ctx.env), hubDirName(repoId));
  // Optimising: the download is the gate's reference and lives beside; the result takes `dir`.
  const fetchDir = optimize ? sourceDirFor(dir) : dir;
  const files = [
    { file: preset.file, local: 'model.onnx', optional: false, sha256: o.sha256 },
    // ONNX external data (jina-embeddings-v3, any export over 2 GB): the graph names the file
    // `<its own name>_data` and onnxruntime looks for it beside model.onnx under that name.
    { file: `${preset.file}_data`, local: `${basename(preset.file)}_data`, optional: !preset.externalData, externalData: true },
    { file: 'tokenizer.json', local: 'tokenizer.json', optional: false },
    { file: 'tokenizer_config.json', local: 'tokenizer_config.json', optional: true },
  ];
  const plan = files.map((f) => ({ url: resolveUrl(endpoint, { repoId, revision: o.revision, file: f.file }), dest: join(fetchDir, f.local), optional: f.optional }));

  if (o.dryRun) {
    if (preset.licenseWarning) log.warn(preset.licenseWarning);
    const optimizePlan = optimize ? { steps: optimize.steps, out: dir } : null;
    if (json) printJson(ctx, 'models', { action: 'fetch', dryRun: true, repoId, revision: o.revision, dir, license: preset.license, files: plan, token: Boolean(token), optimize: optimizePlan });
    else {
      ctx.stdout.write(`would fetch ${repoId}@${o.revision} (${preset.dimensions} dims, ${preset.pooling} pooling, licence ${preset.license}) into ${fetchDir}:\n`);
      for (const p of plan) ctx.stdout.write(`  ${p.url} -> ${p.dest}${p.optional ? ' (if present)' : ''}\n`);
      if (optimize) ctx.stdout.write(`then optimise it (${optimize.steps.join(' + ')}, gated on cosine vs the download) into ${dir}\n`);
      ctx.stdout.write(`${token ? 'HF_TOKEN is set and will be sent to the hub' : 'no HF_TOKEN: public repos only'}\n`);
    }
    return 0;
  }

  await acceptLicense(ctx, log, preset, Boolean(o.yes));

  // One fetch per bundle at a time (user data at boot and a manual run share the same `.part`
  // files): a second one waits, then finds the bundle present.
  const lockOpts = { what: `models fetch ${repoId}`, command: `models fetch ${repoId}`, env: ctx.env };
  const lock = await acquireLock(dir, lockOpts).catch(async (err: Error) => {
    // A live holder is a UsageError; a lock that cannot be made at all (filesystem) is not waited on.
    if (!(err instanceof UsageError)) throw err;
    log.info(`${err.message}; waiting for it to finish`);
    return acquireLock(dir, { ...lockOpts, waitMs: FETCH_LOCK_WAIT_MS });
  });
  try {
    return await fetchLocked(ctx, log, { o, json, optimize, minCosine, preset, repoId, endpoint, token, dir, fetchDir, files });
  } finally {
    await lock.release();
  }
}

/** A fetch waits this long for another fetch of the same model (a few GB on a slow link). */
const FETCH_LOCK_WAIT_MS = 60 * 60_000;

interface Fetch {
  o: FetchOpts;
  json: boolean;
  optimize: ReturnType<typeof parseFetchOptimize>;
  minCosine: number | undefined;
  preset: ModelPreset;
  repoId: string;
  endpoint: string;
  token: string | undefined;
  dir: string;
  fetchDir: string;
  files: DownloadPlan['files'];
}

async function fetchLocked(ctx: Context, log: Logger, f: Fetch): Promise<number> {
  const { o, json, optimize, minCosine, preset, repoId, endpoint, token, dir, fetchDir, files } = f;
  // Present = complete and made the way asked (an int8 bundle is not what a plain fetch asked for).
  if (!o.force && complete(dir) && sameSteps(recordedSteps(dir), optimize?.steps ?? [])) {
    const m = readManifest(dir);
    if (json) printJson(ctx, 'models', { action: 'fetch', repoId, dir, alreadyPresent: true, sha256: m.sha256, files: [] });
    else ctx.stdout.write(`${repoId} is already fetched${optimize ? ` and optimised (${optimize.steps.join(' + ')})` : ''} in ${dir} (sha256 ${m.sha256?.slice(0, 12)}); --force downloads it again\n`);
    return 0;
  }

  let fetched: Awaited<ReturnType<typeof download>> | undefined;
  if (optimize && !o.force && complete(fetchDir)) log.info(`using the download already in ${fetchDir}`);
  else fetched = await download(ctx, log, { preset, revision: o.revision, endpoint, token, dir: fetchDir, files });
  if (preset.notes) log.info(`note: ${preset.notes}`);
  let optimized: OptimizeReport | undefined;
  if (optimize) optimized = await optimizeFetched(ctx, log, fetchDir, dir, optimize, minCosine);
  const manifest = readManifest(optimized?.written ? dir : fetchDir);
  if (json) {
    printJson(ctx, 'models', {
      action: 'fetch', repoId, revision: o.revision, commit: fetched?.commit ?? null, dir, license: preset.license, manifest, files: fetched?.results ?? [],
      ...(optimize ? { source: fetchDir, optimize: optimized } : {}),
    });
  } else {
    if (fetched) {
      ctx.stdout.write(`fetched ${repoId} into ${fetchDir}\n`);
      for (const r of fetched.results) ctx.stdout.write(`  ${r.file}: ${(r.bytes / 1e6).toFixed(1)} MB, sha256 ${r.sha256.slice(0, 12)}${r.verifiedAgainst ? ` (verified: ${r.verifiedAgainst})` : ''}\n`);
    }
    if (optimized) ctx.stdout.write(renderOptimize(optimized));
    if (!optimized || optimized.written) ctx.stdout.write(`serve it with: embedctl serve --model ${o.out ? dir : repoId}\n`);
  }
  if (optimized?.gate && !optimized.gate.pass) throw gateError(optimized);
  return 0;
}

interface DownloadPlan {
  preset: ModelPreset;
  revision: string;
  endpoint: string;
  token: string | undefined;
  dir: string;
  files: Array<{ file: string; local: string; optional: boolean; sha256?: string; externalData?: boolean }>;
}

/** Downloads the files (resumable, verified) and writes the manifest last. */
async function download(ctx: Context, log: Logger, d: DownloadPlan) {
  const { preset, endpoint, dir } = d;
  const repoId = preset.repoId;
  log.info(`fetching ${repoId}@${d.revision} from ${endpoint} into ${dir}`);
  const results = [];
  let commit: string | undefined;
  for (const f of d.files) {
    let bar: ReturnType<typeof progress> | undefined;
    let pendingBytes = 0;
    const got = await downloadFile({
      endpoint,
      token: d.token,
      repoId,
      revision: d.revision,
      file: f.file,
      dest: join(dir, f.local),
      sha256: f.sha256,
      optional: f.optional,
      signal: ctx.signal,
      sleep: ctx.sleep,
      onStart: ({ total, resumedFrom }) => {
        if (resumedFrom > 0) log.info(`${f.file}: resuming at ${resumedFrom} bytes`);
        bar = progress(ctx, `${f.file} (KiB)`, Math.ceil((total ?? 0) / 1024));
      },
      onBytes: (n) => {
        // Whole KiB per tick keeps the bar's counts readable.
        pendingBytes += n;
        const kib = Math.floor(pendingBytes / 1024);
        if (kib > 0) {
          pendingBytes -= kib * 1024;
          bar?.tick(kib);
        }
      },
      onNote: (line) => log.warn(line),
    });
    bar?.done();
    if (!got) {
      log.verbose(`${f.file}: not in the repo (optional)`);
      continue;
    }
    commit ??= got.commit;
    results.push({ file: f.file, local: f.local, externalData: Boolean(f.externalData), path: got.path, bytes: got.bytes, sha256: got.sha256, verifiedAgainst: got.hubHash?.kind ?? (f.sha256 ? 'sha256 flag' : null), resumedFrom: got.resumedFrom });
    log.verbose(`${f.file}: ${got.bytes} bytes, sha256 ${got.sha256}${got.hubHash ? ` (matches the hub's ${got.hubHash.kind})` : ''}`);
  }
  const model = results.find((r) => r.local === 'model.onnx')!;
  const manifest = manifestFromPreset(preset, {
    sha256: model.sha256,
    externalData: results.filter((r) => r.externalData).map((r) => ({ file: r.local, bytes: r.bytes, sha256: r.sha256 })),
    source: `${endpoint.replace(/\/+$/, '')}/${repoId} revision ${d.revision}${commit ? ` (commit ${commit})` : ''}, file ${preset.file}`,
  });
  // Written last: a bundle counts as present only once its manifest exists.
  await writeJsonAtomic(join(dir, 'embedctl-model.json'), manifest);
  return { results, commit };
}
