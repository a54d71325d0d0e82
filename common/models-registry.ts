import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { ExternalError, UsageError } from './errors.js';
import { packageRoot } from './paths.js';
import type { ModelManifest } from './model-manifest.js';

/** Bundles scripts/build-models.js makes into <packageRoot>/models/<name>. */
export const BUILTIN_MODELS = ['default', 'default-q', 'tiny-bert', 'tiny-bert-cls'] as const;
export type BuiltinModel = (typeof BUILTIN_MODELS)[number];

export type ModelRef =
  | { kind: 'builtin'; name: BuiltinModel; dir: string }
  | { kind: 'path'; dir: string }
  | { kind: 'hub'; repoId: string; dir: string };

type Env = Record<string, string | undefined>;

/** <packageRoot>/models, or EMBEDCTL_BUILTIN_MODELS_DIR (an image that bakes the bundles elsewhere). */
export const builtinModelsDir = (env: Env = process.env): string =>
  env.EMBEDCTL_BUILTIN_MODELS_DIR ? resolve(env.EMBEDCTL_BUILTIN_MODELS_DIR) : join(packageRoot(), 'models');

/** Where `embedctl models fetch` puts hub models: EMBEDCTL_MODELS_DIR or ~/.cache/embedctl/models. */
export function hubCacheDir(env: Env = process.env): string {
  if (env.EMBEDCTL_MODELS_DIR) return resolve(env.EMBEDCTL_MODELS_DIR);
  const base = env.XDG_CACHE_HOME ? resolve(env.XDG_CACHE_HOME) : join(env.HOME ?? homedir(), '.cache');
  return join(base, 'embedctl', 'models');
}

const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/;

export function isHubId(s: string): boolean {
  return HUB_ID.test(s) && !s.includes('..');
}

/** `BAAI/bge-small-en-v1.5` -> `BAAI--bge-small-en-v1.5` (the hub's own cache naming). */
export const hubDirName = (repoId: string): string => repoId.replace('/', '--');

/**
 * 'default' | 'default-q' | 'tiny-bert' | 'tiny-bert-cls' -> the built-in bundle; an existing
 * directory -> that directory; `org/name` -> the fetched copy in the hub cache.
 */
export function resolveModelRef(dirOrName: string, opts: { cwd?: string; env?: Env } = {}): ModelRef {
  const cwd = opts.cwd ?? process.cwd();
  const env = opts.env ?? process.env;
  if (!dirOrName) throw new UsageError('no model given', { field: '--model', hint: `use ${BUILTIN_MODELS.join(', ')}, a bundle directory or a fetched hub id` });
  if ((BUILTIN_MODELS as readonly string[]).includes(dirOrName)) {
    return { kind: 'builtin', name: dirOrName as BuiltinModel, dir: join(builtinModelsDir(env), dirOrName) };
  }
  const asPath = isAbsolute(dirOrName) ? dirOrName : resolve(cwd, dirOrName);
  if (existsSync(asPath) && statSync(asPath).isDirectory()) return { kind: 'path', dir: asPath };
  if (isHubId(dirOrName)) {
    const dir = join(hubCacheDir(env), hubDirName(dirOrName));
    if (existsSync(join(dir, 'embedctl-model.json'))) return { kind: 'hub', repoId: dirOrName, dir };
    throw new UsageError(`model ${dirOrName} is not fetched yet (looked in ${dir})`, {
      field: '--model',
      hint: `run: embedctl models fetch ${dirOrName}`,
    });
  }
  throw new UsageError(`unknown model "${dirOrName}": not a built-in name, an existing directory or a hub id (org/name)`, {
    field: '--model',
    hint: `built-in models: ${BUILTIN_MODELS.join(', ')}; see embedctl models list`,
  });
}

const manifestSchema = z.object({
  name: z.string().min(1),
  dimensions: z.number().int().positive(),
  maxTokens: z.number().int().positive(),
  pooling: z.enum(['mean', 'cls', 'none']),
  normalize: z.boolean(),
  matryoshkaDimensions: z.array(z.number().int().positive()),
  taskPrefixes: z.record(z.string(), z.string()),
  license: z.string(),
  inputs: z.array(z.enum(['input_ids', 'attention_mask', 'token_type_ids', 'position_ids', 'task_id'])).min(1),
  output: z.string().min(1),
  pooledByGraph: z.boolean(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  source: z.string().optional(),
  /** LoRA task adapters picked by a task_id input (jina-embeddings-v3), in id order. */
  loraTasks: z.array(z.string()).optional(),
  defaultTask: z.string().optional(),
  /** Files beside model.onnx that hold its weights (ONNX external data), named as the graph names them. */
  externalData: z.array(z.object({ file: z.string().min(1), bytes: z.number().int().nonnegative(), sha256: z.string().regex(/^[0-9a-f]{64}$/) })).optional(),
});

/** Reads and checks `<dir>/embedctl-model.json`; a bad file names the field at fault. */
export function readManifest(dir: string): ModelManifest & Record<string, unknown> {
  const path = join(dir, 'embedctl-model.json');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new UsageError(missing ? `${dir} is not a model bundle (no embedctl-model.json)` : `${path} is not valid JSON: ${(err as Error).message}`, {
      field: '--model',
      hint: 'a bundle holds model.onnx, tokenizer.json and embedctl-model.json',
    });
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UsageError(`${path}: ${issue.path.join('.') || '(root)'}: ${issue.message}`, { field: '--model' });
  }
  return { ...(raw as Record<string, unknown>), ...parsed.data } as ModelManifest & Record<string, unknown>;
}

const bundleComplete = (dir: string) => ['model.onnx', 'tokenizer.json', 'embedctl-model.json'].every((f) => existsSync(join(dir, f)));

/** Builds a missing built-in bundle by running scripts/build-models.js (first use after a bare checkout). */
export async function ensureBuiltin(name: BuiltinModel, log: (line: string) => void = () => {}, env: Env = process.env): Promise<string> {
  const outDir = builtinModelsDir(env);
  const dir = join(outDir, name);
  if (bundleComplete(dir)) return dir;
  const script = join(packageRoot(), 'scripts', 'build-models.js');
  log(`model: ${name} is not built yet; building it (one-off, a few seconds)`);
  const stderr: string[] = [];
  const code = await new Promise<number | null>((res, rej) => {
    const child = spawn(process.execPath, [script, '--only', name, '--out', outDir], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      stderr.push(d);
      for (const line of d.split('\n')) if (line.trim()) log(line);
    });
    child.on('error', rej);
    child.on('close', res);
  });
  if (code !== 0 || !bundleComplete(dir)) {
    throw new ExternalError('model build', `building ${name} failed (exit ${code}): ${stderr.join('').trim().split('\n').pop() ?? ''}`, {
      hint: `run: node ${script} --only ${name}`,
    });
  }
  return dir;
}

export interface ListedModel {
  name: string;
  kind: 'builtin' | 'hub';
  dir: string;
  built: boolean;
  manifest?: ModelManifest & Record<string, unknown>;
  error?: string;
}

/** Built-in bundles (built or not) and every fetched bundle in the hub cache. */
export function listModels(env: Env = process.env): ListedModel[] {
  const out: ListedModel[] = [];
  const read = (dir: string) => {
    try {
      return { manifest: readManifest(dir) };
    } catch (err) {
      return { error: (err as Error).message };
    }
  };
  for (const name of BUILTIN_MODELS) {
    const dir = join(builtinModelsDir(env), name);
    const built = bundleComplete(dir);
    out.push({ name, kind: 'builtin', dir, built, ...(built ? read(dir) : {}) });
  }
  const cache = hubCacheDir(env);
  if (existsSync(cache)) {
    for (const entry of readdirSync(cache).sort()) {
      const dir = join(cache, entry);
      if (!entry.includes('--') || !existsSync(join(dir, 'embedctl-model.json'))) continue;
      out.push({ name: entry.replace('--', '/'), kind: 'hub', dir, built: bundleComplete(dir), ...read(dir) });
    }
  }
  return out;
}
