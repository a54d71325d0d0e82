import { randomBytes } from 'node:crypto';
import { promises as fsp, readFileSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import { dirname } from 'node:path';
import { ExternalError, UsageError } from '../errors.js';

/**
 * Write to a temp file in the same directory, fsync, rename: readers see old or new, never half.
 * `mode` is set on the temp file before the rename, so a secret is never there with a wider one.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, o: { mode?: number } = {}): Promise<void> {
  await fsp.mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await fsp.open(tmp, 'w', o.mode ?? 0o666);
  try {
    if (o.mode !== undefined) await fh.chmod(o.mode);
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fsp.rename(tmp, path);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
}

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

export function currentUser(env: Record<string, string | undefined> = process.env): string {
  try {
    return env.EMBEDCTL_USER ?? `${userInfo().username}@${hostname()}`;
  } catch {
    return env.USER ?? 'unknown';
  }
}

/** Who holds a lock: enough to tell a live holder from a dead one, and to name it in errors. */
export interface LockInfo {
  pid: number;
  host: string;
  user: string;
  /** When the lock was taken (ISO). */
  since: string;
  command?: string;
  /**
   * The holder's process start time as the kernel counts it (/proc/<pid>/stat field 22) where
   * there is one: a pid reused by another process after a crash has a different start time.
   */
  procStart?: string;
  /** A random token: the holder removes the lock only while it is still its own. */
  token: string;
}

export interface LockOptions {
  what?: string;
  command?: string;
  /** Wait this long for a live holder before failing (0: fail at once, naming the holder). */
  waitMs?: number;
  /** A lock not refreshed for this long is stale even when its owner cannot be checked (another host). */
  maxAgeMs?: number;
  env?: Record<string, string | undefined>;
}

/** Locks are refreshed (mtime) this often while held, so only an abandoned lock ages past the bound. */
const HEARTBEAT_MS = 10_000;
export const DEFAULT_LOCK_MAX_AGE_MS = 120_000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function procStartOf(pid: number): string | undefined {
  try {
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Why a lock is stale, or undefined when its holder may still be working. */
export function staleReason(text: string, mtimeMs: number, nowMs: number, maxAgeMs = DEFAULT_LOCK_MAX_AGE_MS): string | undefined {
  // Locks are published whole (link of a written file): an empty or unreadable one was left by a
  // crash or a full disk, never by a holder still writing it.
  if (text.trim() === '') return 'empty lock file';
  let h: Partial<LockInfo>;
  try {
    h = JSON.parse(text) as Partial<LockInfo>;
  } catch {
    return 'unreadable lock file';
  }
  if (typeof h.pid !== 'number' || typeof h.host !== 'string') return 'lock file without an owner';
  if (h.host === hostname()) {
    if (!alive(h.pid)) return `owner pid ${h.pid} is gone`;
    const start = procStartOf(h.pid);
    if (h.procStart && start && start !== h.procStart) return `pid ${h.pid} now belongs to another process`;
  }
  const age = nowMs - mtimeMs;
  if (age > maxAgeMs) return `not refreshed for ${Math.round(age / 1000)}s (owner ${h.pid} on ${h.host})`;
  return undefined;
}

function describeHolder(text: string): string {
  try {
    const h = JSON.parse(text) as LockInfo;
    return `pid ${h.pid} on ${h.host}, ${h.user}, since ${h.since}${h.command ? `, running "${h.command}"` : ''}`;
  } catch {
    return 'unknown holder';
  }
}

async function readLock(path: string): Promise<{ text: string; ino: number; mtimeMs: number } | undefined> {
  try {
    const fh = await fsp.open(path, 'r');
    try {
      const st = await fh.stat();
      return { text: await fh.readFile('utf8'), ino: st.ino, mtimeMs: st.mtimeMs };
    } finally {
      await fh.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Removes a stale lock, atomically with respect to other takers. Judging "stale" and removing
 * are two steps, so two takers could each judge the same dead lock, one remove it and take a
 * fresh one, and the other then remove that live lock (the lost updates of issue 14). A short
 * guard file (O_EXCL) serialises takeovers, and under it the lock is re-read and removed only if
 * it is still the very file (inode) judged stale. Returns the reason when it removed one.
 */
async function takeOverStale(lockPath: string, seen: { ino: number; reason: string }, maxAgeMs?: number): Promise<string | undefined> {
  const guard = `${lockPath}.takeover`;
  let fh: FileHandle;
  try {
    fh = await fsp.open(guard, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    // A guard outlives its holder only if that process died in the few microseconds it holds it.
    const st = await fsp.stat(guard).catch(() => undefined);
    if (st && Date.now() - st.mtimeMs > 5_000) await fsp.rm(guard, { force: true });
    return undefined;
  }
  try {
    await fh.close();
    const again = await readLock(lockPath);
    if (!again || again.ino !== seen.ino) return undefined;
    if (!staleReason(again.text, again.mtimeMs, Date.now(), maxAgeMs)) return undefined;
    await fsp.rm(lockPath, { force: true });
    return seen.reason;
  } finally {
    await fsp.rm(guard, { force: true });
  }
}

export interface HeldLock {
  path: string;
  /** Stale locks this acquisition removed, with why (for "repaired" messages). */
  tookOver: string[];
  release(): Promise<void>;
}

/**
 * Takes the exclusive lock beside `path` (`path.lock`). The owner record is written to a temp
 * file first and published with link(2), which fails if the lock exists: the lock is never seen
 * half-written. A live holder makes this fail at once naming it (or wait up to `waitMs`); a stale
 * lock (empty, dead owner, pid reused, or not refreshed for `maxAgeMs`) is taken over safely.
 */
export async function acquireLock(path: string, o: LockOptions = {}): Promise<HeldLock> {
  const lockPath = `${path}.lock`;
  await fsp.mkdir(dirname(lockPath), { recursive: true });
  const token = randomBytes(8).toString('hex');
  const info: LockInfo = { pid: process.pid, host: hostname(), user: currentUser(o.env), since: new Date().toISOString(), command: o.command, procStart: procStartOf(process.pid), token };
  const tmp = `${lockPath}.${process.pid}.${token}.tmp`;
  await fsp.writeFile(tmp, JSON.stringify(info));
  const deadline = Date.now() + (o.waitMs ?? 0);
  const tookOver: string[] = [];
  try {
    for (let delay = 5; ; delay = Math.min(delay * 2, 200)) {
      try {
        await fsp.link(tmp, lockPath);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new ExternalError('filesystem', `cannot create lock ${lockPath}: ${(err as Error).message}`, { cause: err });
        }
      }
      const cur = await readLock(lockPath);
      if (!cur) continue; // released between our link and our read
      const reason = staleReason(cur.text, cur.mtimeMs, Date.now(), o.maxAgeMs);
      if (reason) {
        const removed = await takeOverStale(lockPath, { ino: cur.ino, reason }, o.maxAgeMs);
        if (removed) tookOver.push(removed);
        continue;
      }
      if (Date.now() >= deadline) {
        throw new UsageError(`another embedctl command holds the ${o.what ?? 'state'} lock (${describeHolder(cur.text)})`, {
          hint: `wait for it to finish; a lock whose owner is gone is taken over by the next command`,
        });
      }
      await new Promise((r) => setTimeout(r, delay * (0.5 + Math.random())));
    }
  } finally {
    await fsp.rm(tmp, { force: true });
  }
  const beat = setInterval(() => {
    const t = new Date();
    fsp.utimes(lockPath, t, t).catch(() => undefined);
  }, HEARTBEAT_MS);
  beat.unref();
  return {
    path: lockPath,
    tookOver,
    async release() {
      clearInterval(beat);
      // Only our own lock: if it was (wrongly) taken over, removing it would free someone else's.
      const cur = await readLock(lockPath).catch(() => undefined);
      if (cur && cur.text.includes(token)) await fsp.rm(lockPath, { force: true });
    },
  };
}

/** Runs `fn` under the lock of `path` (see acquireLock). */
export async function withLock<T>(path: string, fn: () => Promise<T>, what = 'state', command?: string, o: Omit<LockOptions, 'what' | 'command'> = {}): Promise<T> {
  const lock = await acquireLock(path, { ...o, what, command });
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

/** Append one JSON line; O_APPEND writes of one small line do not interleave. */
export async function appendJsonl(path: string, value: unknown): Promise<void> {
  await fsp.mkdir(dirname(path), { recursive: true });
  await fsp.appendFile(path, `${JSON.stringify(value)}\n`);
}

/**
 * Read a versioned JSON state file. Missing -> undefined. Corrupt or from a newer embedctl ->
 * a UsageError that says so; the file is never touched.
 */
export async function readVersionedJson<T extends { version: number }>(
  path: string,
  supportedVersion: number,
  what: string,
): Promise<T | undefined> {
  let text: string;
  try {
    text = await fsp.readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ExternalError('filesystem', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    // Name the history only when there is one (rollout.json -> rollout.history.jsonl).
    const history = path.replace(/\.json$/, '.history.jsonl');
    throw new UsageError(`${path} is corrupt (not valid JSON: ${(err as Error).message}); it was left untouched`, {
      hint: `${history !== path && (await fsp.stat(history).catch(() => null)) ? `rebuild it from ${history}, or ` : ''}restore it from version control or move it aside to start fresh`,
    });
  }
  const v = (parsed as { version?: unknown })?.version;
  if (typeof v !== 'number') {
    throw new UsageError(`${path} is not an embedctl ${what} file (no "version"); it was left untouched`);
  }
  if (v > supportedVersion) {
    throw new UsageError(
      `${path} was written by a newer embedctl (${what} version ${v}, this one understands up to ${supportedVersion}); it was left untouched`,
      { hint: 'upgrade embedctl' },
    );
  }
  return parsed as T;
}
