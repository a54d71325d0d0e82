/**
 * The one duration grammar and the one boolean vocabulary of every flag, EMBEDCTL_* variable and
 * embedctl.yaml key (CLI and runtime alike): users learn them once, whichever command they type.
 */

const DAY_MS = 86_400_000;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: DAY_MS, w: 7 * DAY_MS };

/** What a duration looks like, for help texts and error messages. */
export const DURATION_GRAMMAR = '250ms, 30s, 5m, 1m30s, 2h, 1d or 1w; a bare number is seconds';

/**
 * "250ms", "30s", "5m", "1m30s", "2h", "1d", "1w" (units may be combined, largest first or not),
 * or a bare number of seconds (a YAML number too) -> milliseconds. Throws an Error that says
 * what is expected.
 */
export function parseDuration(raw: unknown): number {
  if (typeof raw === 'number') {
    if (Number.isFinite(raw) && raw >= 0) return Math.round(raw * 1000);
    throw new Error(`bad duration ${JSON.stringify(raw)} (use ${DURATION_GRAMMAR})`);
  }
  const t = String(raw ?? '').trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Math.round(Number(t) * 1000);
  const re = /(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)/y;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(t); m !== null; m = re.exec(t)) {
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    consumed = re.lastIndex;
  }
  if (t === '' || consumed !== t.length) throw new Error(`bad duration ${JSON.stringify(raw)} (use ${DURATION_GRAMMAR})`);
  return Math.round(total);
}

/** A parser for option tables: a duration of at least `minMs`. */
export function duration(minMs = 0): (raw: unknown) => number {
  return (raw) => {
    const ms = parseDuration(raw);
    if (ms < minMs) throw new Error(`must be at least ${formatDuration(minMs)}, got ${JSON.stringify(raw)}`);
    return ms;
  };
}

/** 90_000 -> "1m30s", 1500 -> "1500ms", 604_800_000 -> "1w": what parseDuration reads back. */
export function formatDuration(ms: number): string {
  if (ms % 1000 !== 0) return `${ms}ms`;
  let left = ms;
  const parts: string[] = [];
  for (const unit of ['w', 'd', 'h', 'm', 's'] as const) {
    const n = Math.floor(left / UNIT_MS[unit]!);
    if (n > 0) parts.push(`${n}${unit}`);
    left -= n * UNIT_MS[unit]!;
  }
  return parts.length ? parts.join('') : '0s';
}

const TRUE = ['true', 'yes', '1', 'on'];
const FALSE = ['false', 'no', '0', 'off'];

/** The boolean vocabulary: true/false, yes/no, 1/0, on/off (any case), or a YAML boolean. */
export function parseBoolean(raw: unknown): boolean {
  if (typeof raw === 'boolean') return raw;
  const v = String(raw ?? '').trim().toLowerCase();
  if (TRUE.includes(v)) return true;
  if (FALSE.includes(v)) return false;
  throw new Error(`expected true or false (also yes/no, 1/0, on/off), got ${JSON.stringify(raw)}`);
}
