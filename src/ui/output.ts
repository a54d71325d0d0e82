import { Chalk, type ChalkInstance } from 'chalk';
import type { Context } from '../context.js';
import { liveLine } from './live.js';

export interface GlobalOptions {
  json: boolean;
  verbose: boolean;
  color: boolean;
}

/** Colour only when asked for and allowed: --no-color, NO_COLOR, CI and non-TTY turn it off. */
function colorEnabled(ctx: Context, globals: Pick<GlobalOptions, 'color'>): boolean {
  if (!globals.color) return false;
  if (ctx.env.NO_COLOR !== undefined && ctx.env.NO_COLOR !== '') return false;
  if (ctx.env.FORCE_COLOR) return true;
  if (ctx.env.CI) return false;
  return ctx.isTTY;
}

function chalkFor(ctx: Context, globals: Pick<GlobalOptions, 'color'>): ChalkInstance {
  return new Chalk({ level: colorEnabled(ctx, globals) ? 1 : 0 });
}

/** Progress, warnings and logs: always stderr, never stdout. */
export interface Logger {
  info(msg: string): void;
  /** Progress that replaces itself on a terminal (one line per step, not per update); a line otherwise. */
  status(msg: string): void;
  warn(msg: string): void;
  verbose(msg: string): void;
  c: ChalkInstance;
}

export function logger(ctx: Context, globals: GlobalOptions): Logger {
  const c = chalkFor(ctx, globals);
  tableWidth = outputWidth(ctx);
  const live = liveLine(ctx);
  // A log line after a status keeps the status on screen above it.
  const line = (text: string) => {
    live.done();
    ctx.stderr.write(`${text}\n`);
  };
  return {
    c,
    info: (msg) => line(msg),
    status: (msg) => live.update(msg),
    warn: (msg) => line(`${c.yellow('warning:')} ${msg}`),
    verbose: (msg) => {
      if (globals.verbose) line(c.dim(msg));
    },
  };
}

/** A command's report with its schema key: what --json prints and what --out files hold. */
export function withSchema<C extends string, T extends object>(command: C, doc: T): { schema: `embedctl.${C}/v1` } & T {
  return { schema: `embedctl.${command}/v1` as const, ...doc };
}

/** The one JSON document a `--json` run prints on stdout. */
export function printJson(ctx: Context, command: string, doc: Record<string, unknown>): void {
  ctx.stdout.write(`${JSON.stringify(withSchema(command, doc), null, 2)}\n`);
}

export type Align = 'left' | 'right';

/**
 * How wide tables may be: the terminal's width when stdout is one, else COLUMNS when set, else no
 * limit (a pipe or a file gets whole lines, for grep and diff). Set per run by the logger.
 */
let tableWidth: number | undefined;

export function outputWidth(ctx: Pick<Context, 'stdout' | 'env'>): number | undefined {
  const out = ctx.stdout as { isTTY?: boolean; columns?: number };
  if (out.isTTY && out.columns) return out.columns;
  const env = Number(ctx.env.COLUMNS);
  return Number.isInteger(env) && env > 0 ? env : undefined;
}

/** Words onto lines of at most `w` characters; a longer word is cut. */
export function wrap(text: string, w: number): string[] {
  const lines: string[] = [];
  let cur = '';
  for (let word of text.split(/\s+/).filter(Boolean)) {
    while (word.length > w) {
      if (cur) lines.push(cur);
      cur = '';
      lines.push(word.slice(0, w));
      word = word.slice(w);
    }
    if (!cur) cur = word;
    else if (cur.length + 1 + word.length <= w) cur += ` ${word}`;
    else {
      lines.push(cur);
      cur = word;
    }
  }
  if (cur || lines.length === 0) lines.push(cur);
  return lines;
}

/** Column widths that fit `max`: the widest column gives way first, none below its header or 8. */
function fitWidths(widths: number[], headers: string[], max: number): number[] {
  const w = [...widths];
  const floor = widths.map((x, i) => Math.min(x, Math.max(headers[i]!.length, 8)));
  let excess = w.reduce((a, b) => a + b, 0) + 2 * (w.length - 1) - max;
  while (excess > 0) {
    const i = w.reduce((best, x, j) => (x - floor[j]! > 0 && x > (w[best]! - floor[best]! > 0 ? w[best]! : -1) ? j : best), 0);
    if (w[i]! <= floor[i]!) break;
    w[i]! -= 1;
    excess -= 1;
  }
  return w;
}

/**
 * A plain-text table; numbers are right-aligned. On a narrow terminal the widest text columns
 * wrap onto more lines instead of running past the edge.
 */
export function table(headers: string[], rows: Array<Array<string | number>>, align?: Align[], width = tableWidth): string {
  const cells = rows.map((r) => r.map((v) => String(v)));
  const natural = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const widths = width ? fitWidths(natural, headers, width) : natural;
  const al = (i: number, raw: unknown): Align =>
    align?.[i] ?? (typeof raw === 'number' ? 'right' : 'left');
  const fmt = (vals: string[], raws: unknown[]): string[] => {
    const wrapped = vals.map((v, i) => (v.length > widths[i]! ? wrap(v, widths[i]!) : [v]));
    const height = Math.max(...wrapped.map((c) => c.length));
    return Array.from({ length: height }, (_, line) =>
      wrapped
        .map((c, i) => (al(i, raws[i]) === 'right' ? (c[line] ?? '').padStart(widths[i]!) : (c[line] ?? '').padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    );
  };
  const out = [...fmt(headers, headers), widths.map((w) => '-'.repeat(w)).join('  ')];
  rows.forEach((r, i) => out.push(...fmt(cells[i]!, r)));
  return out.join('\n') + '\n';
}

/**
 * A progress indicator on stderr: a redrawn bar on a TTY, plain lines at every 10 % otherwise
 * (CI logs stay readable).
 */
export function progress(ctx: Context, label: string, total: number) {
  let done = 0;
  let lastDecile = -1;
  const tty = ctx.isTTY && !ctx.env.CI;
  const draw = () => {
    const frac = total > 0 ? Math.min(1, done / total) : 1;
    if (tty) {
      const width = 30;
      const filled = Math.round(frac * width);
      ctx.stderr.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`);
    } else {
      const decile = Math.floor(frac * 10);
      if (decile !== lastDecile) {
        lastDecile = decile;
        ctx.stderr.write(`${label}: ${done}/${total} (${Math.round(frac * 100)}%)\n`);
      }
    }
  };
  return {
    tick(n = 1) {
      done += n;
      draw();
    },
    done() {
      done = Math.max(done, total);
      draw();
      if (tty) ctx.stderr.write('\n');
    },
  };
}

export function fmtNum(n: number, digits = 2): string {
  if (!Number.isFinite(n)) return String(n);
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function fmtUsd(n: number): string {
  return `$${n.toLocaleString('en-US', { maximumFractionDigits: 2, minimumFractionDigits: 2 })}`;
}
