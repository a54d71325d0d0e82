import { promises as fsp, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { z } from 'zod';
import { ExternalError, UsageError } from '../errors.js';
import { appendJsonl, writeJsonAtomic } from '../util/fs.js';

/**
 * One file that one command writes and another reads. Writer and readers go through the same
 * schema: the writer validates before it writes (a bug never reaches the disk), the reader
 * validates what it reads and migrates an older version or refuses a newer one, with one line
 * that names the file and the fix. Readers read fields; they never guess between names.
 */
export interface Contract<T> {
  /** Human name in messages: "rollout state", "verify-consistency report". */
  readonly name: string;
  readonly version: number;
  /** What a reader does when the file is missing, corrupt or foreign (the hint of its errors). */
  readonly fix: string;
  readonly schema: z.ZodType<T>;
  /** Validates a parsed document (migrating older versions); `where` names it in errors. */
  parse(doc: unknown, where: string): T;
  /** As parse, but returns the problem as a phrase ("x.json has no errorRate") instead of throwing. */
  check(doc: unknown, where: string): { ok: true; value: T } | { ok: false; problem: string };
  /** Reads and validates `path`; undefined when it does not exist. */
  read(path: string): Promise<T | undefined>;
  /** As read, for the few synchronous readers (a status line, a breaker view). */
  readSync(path: string): T | undefined;
  /** Validates and writes atomically (temp file + rename). */
  write(path: string, value: T): Promise<void>;
}

interface Spec<T> {
  name: string;
  version: number;
  /**
   * Where the version lives: `{ version: N }` for state files, `{ schema: "embedctl.<id>/vN" }`
   * for reports (the key --json documents carry).
   */
  stamp: { key: 'version' } | { key: 'schema'; id: string };
  schema: z.ZodType<T>;
  fix: string;
  /** migrate[n] turns a version-n document into version n+1. */
  migrate?: Record<number, (doc: Record<string, unknown>) => Record<string, unknown>>;
}

/** A state file stamped `{ "version": N }` (rollout.json, state.json, deploy.json). */
export function defineStateFile<T>(name: string, schema: z.ZodType<T>, fix: string, version = 1): Contract<T> {
  return defineContract<T>({ name, version, stamp: { key: 'version' }, schema, fix });
}

export function defineContract<T>(spec: Spec<T>): Contract<T> {
  const stampOf = (doc: Record<string, unknown>): number | undefined => {
    if (spec.stamp.key === 'version') return typeof doc.version === 'number' ? doc.version : undefined;
    const m = typeof doc.schema === 'string' ? /^embedctl\.(.+)\/v(\d+)$/.exec(doc.schema) : null;
    return m && m[1] === spec.stamp.id ? Number(m[2]) : undefined;
  };
  const label = spec.stamp.key === 'schema' ? `embedctl.${spec.stamp.id}` : spec.name;
  const parse = (doc: unknown, where: string): T => {
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
      throw new UsageError(`${where} is not a ${spec.name} (expected a JSON object); it was left untouched`, { hint: spec.fix });
    }
    let cur = doc as Record<string, unknown>;
    let v = stampOf(cur);
    if (v === undefined && typeof cur.schema === 'string' && spec.stamp.key === 'schema') {
      throw new UsageError(`${where} has schema ${cur.schema}, expected ${label}/v${spec.version}`, { hint: spec.fix });
    }
    if (v === undefined) {
      throw new UsageError(`${where} is not a ${spec.name} (no ${label} version stamp); it was left untouched`, { hint: spec.fix });
    }
    if (v > spec.version) {
      throw new UsageError(`${where} was written by a newer embedctl (${label} v${v}; this one reads up to v${spec.version}); it was left untouched`, {
        hint: 'upgrade embedctl',
      });
    }
    while (v < spec.version) {
      const step = spec.migrate?.[v];
      if (!step) {
        throw new UsageError(`${where} is ${label} v${v}, which this embedctl no longer reads (it reads v${spec.version}); it was left untouched`, { hint: spec.fix });
      }
      cur = step(cur);
      v += 1;
    }
    const out = spec.schema.safeParse(cur);
    if (!out.success) {
      const issue = out.error.issues[0]!;
      const field = issue.path.map(String).join('.') || '(top level)';
      throw new FieldProblem(where, field, issue.code === 'invalid_type' && issue.input === undefined ? undefined : issue.message, spec.fix);
    }
    return out.data;
  };
  const check = (doc: unknown, where: string): { ok: true; value: T } | { ok: false; problem: string } => {
    try {
      return { ok: true, value: parse(doc, where) };
    } catch (err) {
      if (err instanceof FieldProblem) return { ok: false, problem: err.missing ? `${where} has no ${err.path}` : `${where}: ${err.path}: ${err.detail}` };
      if (err instanceof UsageError) return { ok: false, problem: err.message.replace(/; it was left untouched$/, '') };
      throw err;
    }
  };
  return {
    name: spec.name,
    version: spec.version,
    fix: spec.fix,
    schema: spec.schema,
    parse,
    check,
    async read(path) {
      const text = await readText(path);
      if (text === undefined) return undefined;
      return parse(parseJson(text, path, spec.fix), path);
    },
    readSync(path) {
      const text = readTextSync(path);
      if (text === undefined) return undefined;
      return parse(parseJson(text, path, spec.fix), path);
    },
    async write(path, value) {
      const checked = spec.schema.safeParse(value);
      if (!checked.success) {
        // The writer's own data is wrong: a bug, not the user's input.
        const issue = checked.error.issues[0]!;
        throw new Error(`refusing to write an invalid ${spec.name} to ${path}: ${issue.path.join('.')}: ${issue.message}`);
      }
      // The writer's document goes to disk as written: the schema checks it, it does not trim it.
      await writeJsonAtomic(path, value);
    },
  };
}

/** A field of a file that is missing or wrong: exit 2, naming the file, the field and the fix. */
class FieldProblem extends UsageError {
  readonly missing: boolean;
  constructor(
    where: string,
    readonly path: string,
    readonly detail: string | undefined,
    fix: string,
  ) {
    super(`${detail ?? 'missing'}; it was left untouched`, { field: `${where}: ${path}`, hint: fix });
    this.missing = detail === undefined;
  }
}

/**
 * An append-only JSON-lines file (history): each line validated on append and on read. Lines
 * carry no stamp of their own; the file's version is the schema's, kept in the contract.
 */
export interface LinesContract<T> {
  readonly name: string;
  readonly schema: z.ZodType<T>;
  append(path: string, entry: T): Promise<void>;
  /** Every line, validated; a bad line is an error naming the file and line number. */
  read(path: string): Promise<T[]>;
}

export function defineLines<T>(spec: { name: string; schema: z.ZodType<T>; fix: string }): LinesContract<T> {
  return {
    name: spec.name,
    schema: spec.schema,
    async append(path, entry) {
      const checked = spec.schema.safeParse(entry);
      if (!checked.success) throw new Error(`refusing to append an invalid ${spec.name} line to ${path}: ${checked.error.issues[0]!.message}`);
      await appendJsonl(path, checked.data);
    },
    async read(path) {
      const text = await readText(path);
      if (text === undefined) return [];
      return text
        .split('\n')
        .map((line, i) => ({ line, n: i + 1 }))
        .filter(({ line }) => line.trim() !== '')
        .map(({ line, n }) => {
          const out = spec.schema.safeParse(parseJson(line, `${path}:${n}`, spec.fix));
          if (!out.success) {
            const issue = out.error.issues[0]!;
            throw new UsageError(issue.message, { field: `${path}:${n}: ${issue.path.join('.') || '(line)'}`, hint: spec.fix });
          }
          return out.data;
        });
    },
  };
}

async function readText(path: string): Promise<string | undefined> {
  return fsp.readFile(path, 'utf8').catch((err: unknown) => notFound(path, err));
}

function readTextSync(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    return notFound(path, err);
  }
}

/** A missing file is undefined (nothing written yet); anything else is the filesystem's fault. */
function notFound(path: string, err: unknown): undefined {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
  throw new ExternalError('filesystem', `cannot read ${path}: ${(err as Error).message}`, { cause: err, hint: `check the permissions of ${dirname(path)}` });
}

function parseJson(text: string, where: string, fix: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new UsageError(`${where} is not valid JSON (${(err as Error).message}); it was left untouched`, { hint: fix });
  }
}
