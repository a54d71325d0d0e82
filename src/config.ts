import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { parseBoolean, parseDuration } from '../common/values.js';
import type { Context } from './context.js';
import { UsageError } from './errors.js';

/**
 * Config precedence: flag > EMBEDCTL_* env > embedctl.yaml in the project > default.
 * Every value keeps its source so a bad one is reported where it came from.
 */
export type Source = 'flag' | 'env' | 'file' | 'default';

export interface Resolved<T> {
  value: T;
  source: Source;
  /** Human label of where it came from: "--min-cosine", "EMBEDCTL_MIN_COSINE", "embedctl.yaml: verify.minCosine". */
  origin: string;
}

let cache: { path: string; data: Record<string, unknown> } | undefined;

export function projectConfigPath(ctx: Pick<Context, 'env' | 'cwd'>): string {
  return ctx.env.EMBEDCTL_CONFIG ?? join(ctx.cwd, 'embedctl.yaml');
}

/** embedctl.yaml as parsed (an empty mapping when there is none); syntax errors are UsageErrors. */
export function loadProjectConfig(ctx: Pick<Context, 'env' | 'cwd'>): { path: string; data: Record<string, unknown> } {
  const path = projectConfigPath(ctx);
  if (cache && cache.path === path) return cache;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return { path, data: {} };
  }
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (err) {
    throw new UsageError(`cannot parse ${path}: ${(err as Error).message.split('\n')[0]}`, { hint: 'fix the YAML syntax' });
  }
  if (data !== null && data !== undefined && (typeof data !== 'object' || Array.isArray(data))) {
    throw new UsageError(`${path} must be a mapping of sections (cost, verify, rollout, ...)`);
  }
  cache = { path, data: (data ?? {}) as Record<string, unknown> };
  return cache;
}

function getPath(obj: Record<string, unknown>, dotted: string): unknown {
  let cur: unknown = obj;
  for (const k of dotted.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

export interface OptionSpec<T> {
  /** Flag name as the user types it, e.g. "--min-cosine". */
  flag: string;
  /** Value commander parsed (undefined when the flag was not given). */
  flagValue: unknown;
  /** Env var, e.g. "EMBEDCTL_MIN_COSINE". */
  env?: string;
  /** Dotted path in embedctl.yaml, e.g. "verify.minCosine". */
  file?: string;
  default: T;
  /** Turns the raw value into T or throws an Error whose message says what is expected. */
  parse: (raw: unknown) => T;
}

export function resolveOption<T>(ctx: Context, spec: OptionSpec<T>): Resolved<T> {
  const attempt = (raw: unknown, source: Source, origin: string): Resolved<T> => {
    try {
      return { value: spec.parse(raw), source, origin };
    } catch (err) {
      throw new UsageError((err as Error).message, { field: origin });
    }
  };
  if (spec.flagValue !== undefined) return attempt(spec.flagValue, 'flag', spec.flag);
  if (spec.env && ctx.env[spec.env] !== undefined && ctx.env[spec.env] !== '') {
    return attempt(ctx.env[spec.env], 'env', spec.env);
  }
  if (spec.file) {
    const cfg = loadProjectConfig(ctx);
    const raw = getPath(cfg.data, spec.file);
    if (raw !== undefined) return attempt(raw, 'file', `embedctl.yaml: ${spec.file}`);
  }
  return { value: spec.default, source: 'default', origin: 'default' };
}

/* Parsers that produce one-line messages naming what is expected. */
export const parsers = {
  number(opts: { min?: number; max?: number; integer?: boolean } = {}) {
    return (raw: unknown): number => {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw.replace(/_/g, '')) : NaN;
      if (!Number.isFinite(n)) throw new Error(`expected a number, got ${JSON.stringify(raw)}`);
      if (opts.integer && !Number.isInteger(n)) throw new Error(`expected a whole number, got ${JSON.stringify(raw)}`);
      if (opts.min !== undefined && n < opts.min) throw new Error(`must be >= ${opts.min}, got ${n}`);
      if (opts.max !== undefined && n > opts.max) throw new Error(`must be <= ${opts.max}, got ${n}`);
      return n;
    };
  },
  oneOf<T extends string>(values: readonly T[]) {
    return (raw: unknown): T => {
      if (typeof raw === 'string' && (values as readonly string[]).includes(raw)) return raw as T;
      throw new Error(`expected one of ${values.join(', ')}, got ${JSON.stringify(raw)}`);
    };
  },
  string() {
    return (raw: unknown): string => {
      if (typeof raw !== 'string' || raw === '') throw new Error('expected a non-empty string');
      return raw;
    };
  },
  /** The one boolean vocabulary (common/values.ts): true/false, yes/no, 1/0, on/off. */
  boolean() {
    return parseBoolean;
  },
  /** The one duration grammar (common/values.ts) -> milliseconds. */
  duration() {
    return parseDuration;
  },
};

/** Parse a flag value right away (no env/file layer), naming the flag on failure. */
export function parseFlag<T>(flag: string, raw: unknown, parse: (raw: unknown) => T): T {
  try {
    return parse(raw);
  } catch (err) {
    throw new UsageError((err as Error).message, { field: flag });
  }
}
