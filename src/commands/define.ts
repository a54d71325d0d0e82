import { Option, type Command } from 'commander';
import type { z } from 'zod';
import { duration, formatDuration, parseBoolean, parseDuration } from '../../common/values.js';
import { parsers, resolveOption, type Resolved } from '../config.js';
import type { Context } from '../context.js';
import { table as renderTable, type Logger } from '../ui/output.js';
import { SUMMARIES } from './summaries.js';
import { action, examples as addExamples, type ExitHolder, type Register, type RunEnv } from './shared.js';

/**
 * One option table per command: each row names the flag, its EMBEDCTL_* variable, its
 * embedctl.yaml key, the default (as a user would type it), the type and the help. From it come
 * the commander options, the precedence flag > env > embedctl.yaml > default (each value keeping
 * its source), the `--dry-run` settings view, the embedctl.yaml schema (src/config-schema.ts) and
 * the settings section of docs/reference.md (scripts/gen-reference.ts).
 */

export type Parse<T> = (raw: unknown) => T;
/** A default as it would be typed: parsed by the row's own type, so --help shows it as written. */
export type RawDefault = string | number | boolean | readonly string[];

export interface OptionDef<T> {
  /** commander's flag syntax: '--min-cosine <x>', '--watch', '-y, --yes', '--deployment [name]'. */
  flag: string;
  help: string;
  /** The environment variable, e.g. EMBEDCTL_MIN_COSINE. */
  env?: string;
  /** The dotted embedctl.yaml key, e.g. verify.minCosine. */
  yaml?: string;
  default?: RawDefault;
  /** How the default reads in --help when it is computed elsewhere ("enough for the peak"). */
  defaultText?: string;
  /** A zod type or a parser that throws an Error saying what is expected. */
  type: z.ZodType<T> | Parse<T>;
  /** Each use adds to a list (commander collects the raw strings; `type` gets the list). */
  repeatable?: boolean;
}

export type OptionTable = Record<string, OptionDef<any>>;

/** The resolved value of each row: never undefined when the row has a default. */
export type Values<Tb extends OptionTable> = {
  -readonly [K in keyof Tb]: Tb[K] extends OptionDef<infer T> ? (Tb[K] extends { default: RawDefault } ? T : T | undefined) : never;
};
export type Sources<Tb extends OptionTable> = { [K in keyof Tb]: Resolved<unknown> };

export function opt<T>(d: OptionDef<T> & { default: RawDefault }): OptionDef<T> & { default: RawDefault };
export function opt<T>(d: OptionDef<T>): OptionDef<T>;
export function opt<T>(d: OptionDef<T>): OptionDef<T> {
  return d;
}

/** The value types rows use; every one names what it expects when it refuses a value. */
export const types = {
  string: parsers.string(),
  boolean: parseBoolean,
  duration,
  number: parsers.number,
  int: (min: number, max?: number) => parsers.number({ integer: true, min, max }),
  oneOf: parsers.oneOf,
  /** A repeatable flag's values (a YAML list, or one string from env). */
  list: (raw: unknown): string[] => (Array.isArray(raw) ? raw.map(String) : raw === undefined ? [] : [String(raw)]),
  /** `--flag [value]`: true when given bare, else the value. */
  optionalValue: (raw: unknown): string | true => (raw === true ? true : parsers.string()(raw)),
};

export function parserOf<T>(def: OptionDef<T>): Parse<T> {
  const t = def.type;
  if (typeof t === 'function') return t;
  return (raw) => {
    const out = t.safeParse(raw);
    if (!out.success) throw new Error(out.error.issues[0]?.message ?? 'invalid value');
    return out.data;
  };
}

/** commander's name for a row's value ("--min-cosine <x>" -> "minCosine", "-y, --yes" -> "yes"). */
export const attributeOf = (flag: string) => new Option(flag).attributeName();

function shown(def: OptionDef<unknown>): string | undefined {
  if (def.defaultText) return def.defaultText;
  const d = def.default;
  if (d === undefined || d === false || (Array.isArray(d) && d.length === 0)) return undefined;
  return Array.isArray(d) ? d.join(',') : String(d);
}

/** The help line: what it does, then where else it can come from, then its default. */
export function helpOf(def: OptionDef<unknown>): string {
  const from = [def.env && `env ${def.env}`, def.yaml && `embedctl.yaml ${def.yaml}`].filter(Boolean);
  const d = shown(def);
  return `${def.help}${from.length ? ` [${from.join(', ')}]` : ''}${d === undefined ? '' : ` (default: ${d})`}`;
}

export function addOptions(cmd: Command, table: OptionTable): Command {
  const collect = (v: string, prev: string[] = []) => [...prev, v];
  for (const [key, def] of Object.entries(table)) {
    // The key is what run() reads and commander's name is what it parses: they must agree.
    if (attributeOf(def.flag) !== key) throw new Error(`option table of ${cmd.name()}: key ${key} does not match ${def.flag}`);
    if (def.repeatable) cmd.option(def.flag, helpOf(def), collect);
    else cmd.option(def.flag, helpOf(def));
  }
  return cmd;
}

/** Flag > env > embedctl.yaml > default for every row; a bad value names where it came from. */
export function resolveTable<Tb extends OptionTable>(ctx: Context, table: Tb, flags: Record<string, unknown>): { values: Values<Tb>; sources: Sources<Tb> } {
  const values: Record<string, unknown> = {};
  const sources: Record<string, Resolved<unknown>> = {};
  for (const [key, def] of Object.entries(table)) {
    const parse = parserOf(def);
    const long = def.flag.split(/[ ,|]+/).find((w) => w.startsWith('--'))!;
    const r = resolveOption<unknown>(ctx, { flag: long, flagValue: flags[key], env: def.env, file: def.yaml, default: undefined, parse });
    if (r.source === 'default' && def.default !== undefined) {
      r.value = resolveOption<unknown>(ctx, { flag: `default of ${long}`, flagValue: def.default, default: undefined, parse }).value;
    }
    values[key] = r.value;
    sources[key] = r;
  }
  return { values: values as Values<Tb>, sources: sources as Sources<Tb> };
}

/** The `--dry-run` settings view: each setting, its value and where it came from. */
export function settingsDoc<Tb extends OptionTable>(table: Tb, r: { values: Values<Tb>; sources: Sources<Tb> }) {
  const out: Record<string, { value: unknown; source: string }> = {};
  for (const key of Object.keys(table)) {
    const s = r.sources[key]!;
    out[key] = { value: (r.values as Record<string, unknown>)[key] ?? null, source: s.source === 'default' ? 'default' : s.origin };
  }
  return out;
}

export function settingsText(doc: ReturnType<typeof settingsDoc>, durations: readonly string[] = []): string {
  const show = (k: string, v: unknown) => (v === null ? '-' : durations.includes(k) && typeof v === 'number' ? formatDuration(v) : Array.isArray(v) ? v.join(',') : String(v));
  return renderTable(['setting', 'value', 'from'], Object.entries(doc).map(([k, s]) => [k, show(k, s.value), s.source]));
}

export interface CommandDef<Tb extends OptionTable> {
  name: string;
  /** Default: its line in `embedctl --help` (./summaries.ts), so the two never differ. */
  description?: string;
  options: Tb;
  /** commander argument syntax, e.g. '[name]'. */
  arguments?: string;
  examples?: string[];
  /** Text after the options in --help (before the examples). */
  helpAfter?: string;
  run(values: Values<Tb>, env: RunEnv<Values<Tb>> & { sources: Sources<Tb> }): Promise<number | void>;
}

/** Every command defined so far (by module load), for the reference docs and embedctl.yaml checks. */
export const DEFINED: Array<CommandDef<OptionTable>> = [];

/** A command's register function, carrying its definition so composites can call its run(). */
export type DefinedCommand<Tb extends OptionTable> = Register & { readonly def: CommandDef<Tb> };

export function defineCommand<Tb extends OptionTable>(def: CommandDef<Tb>): DefinedCommand<Tb> {
  DEFINED.push(def as unknown as CommandDef<OptionTable>);
  const register: Register = (program: Command, ctx: Context, holder: ExitHolder) => {
    const cmd = program.command(def.name).description(def.description ?? SUMMARIES[def.name] ?? '');
    if (def.arguments) cmd.arguments(def.arguments);
    addOptions(cmd, def.options);
    if (def.helpAfter) cmd.addHelpText('after', def.helpAfter);
    if (def.examples) addExamples(cmd, def.examples);
    cmd.action(
      action<Record<string, unknown>>(ctx, holder, async (env) => {
        const r = resolveTable(ctx, def.options, env.opts);
        return def.run(r.values, { ...env, opts: r.values, sources: r.sources });
      }),
    );
  };
  return Object.assign(register, { def });
}

/**
 * A defined command called as a function (what `rehearse` does): `flags` as a user would give
 * them, keyed by the option table (a typo is a compile error), resolved with the same precedence
 * and checks as on the command line; `--json` output.
 */
export async function runDefined<Tb extends OptionTable>(cmd: DefinedCommand<Tb>, flags: Partial<Record<keyof Tb, unknown>>, ctx: Context, log: Logger): Promise<number | void> {
  const r = resolveTable(ctx, cmd.def.options, flags as Record<string, unknown>);
  return cmd.def.run(r.values, { opts: r.values, sources: r.sources, args: [], globals: { json: true, verbose: false, color: false }, ctx, log });
}

export { parseDuration };
