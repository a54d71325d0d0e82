// Model name resolution, manifest checking and build-on-first-use.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel } from '../runtime/inference/model.js';
import { builtinModelsDir, hubCacheDir, readManifest, resolveModelRef } from '../common/models-registry.js';
import { UsageError } from '../src/errors.js';

const tmp = mkdtempSync(join(tmpdir(), 'embedctl-registry-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function copyTiny(name: string, edit?: (m: Record<string, unknown>) => void): string {
  const dir = join(tmp, name);
  cpSync(join(builtinModelsDir(), 'tiny-bert'), dir, { recursive: true });
  if (edit) {
    const path = join(dir, 'embedctl-model.json');
    const m = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    edit(m);
    writeFileSync(path, JSON.stringify(m));
  }
  return dir;
}

describe('resolveModelRef', () => {
  it('resolves built-in names, directories (relative to cwd) and fetched hub ids', () => {
    expect(resolveModelRef('default')).toMatchObject({ kind: 'builtin', dir: join(builtinModelsDir(), 'default') });
    copyTiny('rel');
    expect(resolveModelRef('rel', { cwd: tmp })).toEqual({ kind: 'path', dir: join(tmp, 'rel') });
    const cache = join(tmp, 'cache');
    mkdirSync(join(cache, 'acme--m'), { recursive: true });
    writeFileSync(join(cache, 'acme--m', 'embedctl-model.json'), '{}');
    expect(resolveModelRef('acme/m', { env: { EMBEDCTL_MODELS_DIR: cache } })).toEqual({ kind: 'hub', repoId: 'acme/m', dir: join(cache, 'acme--m') });
    expect(hubCacheDir({ HOME: '/home/u' })).toBe('/home/u/.cache/embedctl/models');
  });

  it('says how to fix an unknown name or an unfetched hub id', () => {
    const err = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        return e as UsageError;
      }
      throw new Error('expected an error');
    };
    const unfetched = err(() => resolveModelRef('acme/none', { env: { EMBEDCTL_MODELS_DIR: tmp } }));
    expect(unfetched).toBeInstanceOf(UsageError);
    expect(unfetched.message).toMatch(/^--model: model acme\/none is not fetched yet/);
    expect(unfetched.hint).toBe('run: embedctl models fetch acme/none');
    const unknown = err(() => resolveModelRef('defualt', { cwd: tmp }));
    expect(unknown.message).toMatch(/unknown model "defualt"/);
    expect(unknown.hint).toMatch(/default, default-q, tiny-bert/);
  });
});

describe('readManifest', () => {
  it('names the bad field of a broken embedctl-model.json', () => {
    const dir = copyTiny('bad-pooling', (m) => (m.pooling = 'max'));
    expect(() => readManifest(dir)).toThrow(/embedctl-model\.json: pooling: /);
    const noDims = copyTiny('no-dims', (m) => delete m.dimensions);
    expect(() => readManifest(noDims)).toThrow(/dimensions/);
    const notBundle = join(tmp, 'empty');
    mkdirSync(notBundle);
    expect(() => readManifest(notBundle)).toThrow(/is not a model bundle \(no embedctl-model\.json\)/);
  });

  it('loadModel refuses a manifest whose dimensions disagree with the graph', async () => {
    const dir = copyTiny('wrong-dims', (m) => (m.dimensions = 64));
    await expect(loadModel(dir)).rejects.toThrow(/returned shape \[2, \d+, 32\], expected \[2, \d+, 64\]/);
    const out = copyTiny('wrong-output', (m) => (m.output = 'sentence_embedding'));
    await expect(loadModel(out)).rejects.toThrow(/has no output "sentence_embedding" \(it has last_hidden_state\)/);
  });
});

describe('build on first use', () => {
  it('builds a missing built-in bundle, logs it, then serves it', async () => {
    const dir = join(tmp, 'builtin');
    const lines: string[] = [];
    const m = await loadModel('tiny-bert', { env: { EMBEDCTL_BUILTIN_MODELS_DIR: dir }, log: (l) => lines.push(l) });
    try {
      expect(m.dir).toBe(join(dir, 'tiny-bert'));
      expect(lines[0]).toMatch(/tiny-bert is not built yet; building it/);
      expect(lines.some((l) => /built tiny-bert in/.test(l))).toBe(true);
      expect(readManifest(m.dir).sha256).toBe(readManifest(join(builtinModelsDir(), 'tiny-bert')).sha256);
      const [v] = await m.embed([m.encode('built on demand')]);
      expect(v).toHaveLength(32);
    } finally {
      await m.close();
    }
  });
});
