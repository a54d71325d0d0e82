import { Chalk, type ChalkInstance } from 'chalk';
import type { Context } from '../context.js';

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
  warn(msg: string): void;
  verbose(msg: string): void;
  c: ChalkInstance;
}

export function logger(ctx: Context, globals: GlobalOptions): Logger {
  const c = chalkFor(ctx, globals);
  return {
    c,
    info: (msg) => void ctx.stderr.write(`${msg}\n`),
    warn: (msg) => void ctx.stderr.write(`${c.yellow('warning:')} ${msg}\n`),
    verbose: (msg) => {
      if (globals.verbose) ctx.stderr.write(`${c.dim(msg)}\n`);
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

/** A plain-text table; numbers are right-aligned. */
export function table(headers: string[], rows: Array<Array<string | number>>, align?: Align[]): string {
  const cells = rows.map((r) => r.map((v) => String(v)));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const al = (i: number, raw: unknown): Align =>
    align?.[i] ?? (typeof raw === 'number' ? 'right' : 'left');
  const fmt = (vals: string[], raws: unknown[]) =>
    vals
      .map((v, i) => (al(i, raws[i]) === 'right' ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const out = [fmt(headers, headers), widths.map((w) => '-'.repeat(w)).join('  ')];
  rows.forEach((r, i) => out.push(fmt(cells[i]!, r)));
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
