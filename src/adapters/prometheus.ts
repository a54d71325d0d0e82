import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { sleep as defaultSleep } from '../context.js';
import { fmtDuration } from '../core/rollout/plan.js';
import { delta, parsePrometheus, snapshot, type TrafficSnapshot } from '../core/rollout/prometheus.js';
import { writeJsonAtomic } from '../util/fs.js';

/**
 * The runtime's /metrics as a rate over a recent window. Its counters are totals since the
 * runtime started: read once, days at 0 % errors hide an hour at 30 %. A rate needs two scrapes,
 * so every scrape is kept (counters and time) in a small file next to the rollout state, and a
 * one-off check measures against the oldest kept scrape still inside the window; without one it
 * scrapes a second time after a short, bounded pause, or says it cannot tell. Lifetime counters
 * are never judged.
 */

export const SCRAPES_FILE = 'metrics-scrapes.json';
const SCRAPES_VERSION = 1;
/** Per URL: enough for a window of checks a few minutes apart, small enough to rewrite each time. */
const KEEP_PER_URL = 20;
const KEEP_MS = 24 * 3600 * 1000;
/** The default pause before a second scrape when no kept scrape is inside the window. */
export const DEFAULT_SETTLE_MS = 10_000;
export const MAX_SETTLE_MS = 60_000;

export interface ScrapeOptions {
  metricsApiKey?: string;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export interface WindowOptions extends ScrapeOptions {
  now: Date;
  /** How far back a kept scrape may be to serve as the start of the window. */
  windowMs: number;
  /** The watch's last snapshot: the window is then the interval between the two. */
  previous?: TrafficSnapshot;
  /** Directory of the rollout state: scrapes are kept in <stateDir>/metrics-scrapes.json. Without it nothing is kept. */
  stateDir?: string;
  /**
   * Pause before a second scrape when there is no usable earlier one (default 10 s, at most 60 s
   * and never longer than the window); 0 reports the rate inconclusive instead of waiting.
   */
  settleMs?: number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  signal?: AbortSignal;
}

/** The traffic of one window, or why there is none (a scrape error is the signal being down). */
export type LiveWindow =
  | { ok: true; window: TrafficSnapshot; snapshot: TrafficSnapshot; source: string }
  | { ok: false; error: string; source: string }
  | { ok: false; inconclusive: string; snapshot: TrafficSnapshot; source: string };

export async function scrapeMetrics(url: string, opts: ScrapeOptions): Promise<{ snapshot: TrafficSnapshot } | { error: string }> {
  const f = opts.fetch ?? fetch;
  try {
    const res = await f(url, {
      headers: opts.metricsApiKey ? { authorization: `Bearer ${opts.metricsApiKey}` } : {},
      signal: AbortSignal.timeout(opts.timeoutMs ?? 5000),
    });
    if (!res.ok) return { error: `GET ${url} answered HTTP ${res.status}` };
    return { snapshot: snapshot(parsePrometheus(await res.text())) };
  } catch (err) {
    return { error: `GET ${url} failed: ${(err as Error).message}` };
  }
}

export async function liveWindow(url: string, opts: WindowOptions): Promise<LiveWindow> {
  const first = await scrapeMetrics(url, opts);
  if ('error' in first) return { ok: false, error: first.error, source: url };
  const now = opts.now.getTime();
  if (opts.previous) {
    await keep(opts.stateDir, url, now, first.snapshot);
    return { ok: true, window: delta(opts.previous, first.snapshot), snapshot: first.snapshot, source: `${url} (since last scrape)` };
  }

  const kept = await readKept(opts.stateDir);
  const base = kept
    .filter((k) => k.url === url && k.at < now && now - k.at <= opts.windowMs)
    .sort((a, b) => a.at - b.at)[0];
  if (base) {
    await keep(opts.stateDir, url, now, first.snapshot, kept);
    const restarted = first.snapshot.total < base.snapshot.total ? '; the runtime restarted since' : '';
    return {
      ok: true,
      window: delta(base.snapshot, first.snapshot),
      snapshot: first.snapshot,
      source: `${url} (last ${fmtDuration(now - base.at)}: since the scrape at ${new Date(base.at).toISOString()}${restarted})`,
    };
  }

  const settle = Math.max(0, Math.min(opts.settleMs ?? DEFAULT_SETTLE_MS, MAX_SETTLE_MS, opts.windowMs));
  if (settle === 0) {
    await keep(opts.stateDir, url, now, first.snapshot, kept);
    return {
      ok: false,
      snapshot: first.snapshot,
      source: `${url} (one scrape)`,
      inconclusive:
        `no earlier scrape of ${url} within the last ${fmtDuration(opts.windowMs)}: its counters are totals since the runtime started, not a rate` +
        (opts.stateDir ? '; this scrape is kept, check again within the window' : ''),
    };
  }
  const started = performance.now();
  try {
    await (opts.sleep ?? defaultSleep)(settle, opts.signal);
  } catch {
    return { ok: false, snapshot: first.snapshot, source: `${url} (one scrape)`, inconclusive: 'interrupted before the second scrape: no rate' };
  }
  const second = await scrapeMetrics(url, opts);
  if ('error' in second) return { ok: false, error: second.error, source: url };
  const waited = Math.round(performance.now() - started);
  await keep(opts.stateDir, url, now + waited, second.snapshot, kept.concat(opts.stateDir ? [{ url, at: now, snapshot: first.snapshot }] : []));
  return { ok: true, window: delta(first.snapshot, second.snapshot), snapshot: second.snapshot, source: `${url} (${fmtDuration(waited)} between two scrapes)` };
}

interface Kept {
  url: string;
  at: number;
  snapshot: TrafficSnapshot;
}

/** A missing, corrupt or foreign file is no baseline (the next write replaces it), never an error. */
async function readKept(stateDir: string | undefined): Promise<Kept[]> {
  if (!stateDir) return [];
  let doc: unknown;
  try {
    doc = JSON.parse(await fsp.readFile(join(stateDir, SCRAPES_FILE), 'utf8'));
  } catch {
    return [];
  }
  const d = doc as { version?: unknown; scrapes?: unknown };
  if (!d || d.version !== SCRAPES_VERSION || !Array.isArray(d.scrapes)) return [];
  return d.scrapes.flatMap((raw): Kept[] => {
    const k = raw as { url?: unknown; at?: unknown; total?: unknown; errors?: unknown; buckets?: unknown; found?: { requests?: unknown; histogram?: unknown } };
    const at = typeof k.at === 'string' ? Date.parse(k.at) : NaN;
    const buckets = Array.isArray(k.buckets) && k.buckets.every((b) => Array.isArray(b) && b.length === 2 && b.every((x) => typeof x === 'number' || x === null)) ? k.buckets : undefined;
    if (typeof k.url !== 'string' || Number.isNaN(at) || typeof k.total !== 'number' || typeof k.errors !== 'number' || !buckets) return [];
    return [{
      url: k.url,
      at,
      // JSON writes Infinity (the +Inf bucket) as null.
      snapshot: { total: k.total, errors: k.errors, buckets: (buckets as Array<[number | null, number]>).map(([le, c]) => [le ?? Infinity, c]), found: { requests: k.found?.requests === true, histogram: k.found?.histogram === true } },
    }];
  });
}

/**
 * Adds one scrape and rewrites the file atomically (temp file + rename). Concurrent checks may
 * lose each other's entry, never corrupt the file. A write that fails costs the next check its
 * baseline, not this check its verdict.
 */
async function keep(stateDir: string | undefined, url: string, at: number, snap: TrafficSnapshot, kept?: Kept[]): Promise<void> {
  if (!stateDir) return;
  const all = [...(kept ?? (await readKept(stateDir))), { url, at, snapshot: snap }].filter((k) => at - k.at <= KEEP_MS);
  const mine = all.filter((k) => k.url === url).sort((a, b) => a.at - b.at).slice(-KEEP_PER_URL);
  const scrapes = [...all.filter((k) => k.url !== url), ...mine].map((k) => ({
    url: k.url,
    at: new Date(k.at).toISOString(),
    total: k.snapshot.total,
    errors: k.snapshot.errors,
    buckets: k.snapshot.buckets,
    found: k.snapshot.found,
  }));
  try {
    await writeJsonAtomic(join(stateDir, SCRAPES_FILE), { version: SCRAPES_VERSION, scrapes });
  } catch {
    /* see above */
  }
}
