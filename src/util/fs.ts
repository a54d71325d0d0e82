import { randomBytes } from 'node:crypto';
import { mkdirSync, promises as fsp } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { dirname } from 'node:path';
import { ExternalError, UsageError } from '../errors.js';

/** Write to a temp file in the same directory, fsync, rename: readers see old or new, never half. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await fsp.mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await fsp.open(tmp, 'w');
  try {
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

interface LockInfo {
  pid: number;
  host: string;
  user: string;
  since: string;
  command?: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * An exclusive lock beside `path` (`path.lock`, created with O_EXCL). A second holder fails at
 * once with a message naming who holds it; a lock left by a dead process on this host is taken over.
 */
export async function withLock<T>(path: string, fn: () => Promise<T>, what = 'state', command?: string): Promise<T> {
  const lockPath = `${path}.lock`;
  mkdirSync(dirname(lockPath), { recursive: true });
  const info: LockInfo = { pid: process.pid, host: hostname(), user: currentUser(), since: new Date().toISOString(), command };
  for (let attempt = 0; ; attempt++) {
    try {
      const fh = await fsp.open(lockPath, 'wx');
      await fh.writeFile(JSON.stringify(info));
      await fh.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new ExternalError('filesystem', `cannot create lock ${lockPath}: ${(err as Error).message}`, { cause: err });
      }
      let holder: LockInfo | undefined;
      try {
        holder = JSON.parse(await fsp.readFile(lockPath, 'utf8')) as LockInfo;
      } catch {
        holder = undefined; // being written right now, or garbage
      }
      const stale = holder && holder.host === hostname() && !alive(holder.pid);
      if (stale && attempt < 3) {
        await fsp.rm(lockPath, { force: true });
        continue;
      }
      if (!holder && attempt < 3) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      throw new UsageError(
        `another embedctl command holds the ${what} lock (${holder ? `pid ${holder.pid} on ${holder.host}, ${holder.user}, since ${holder.since}${holder.command ? `, running "${holder.command}"` : ''}` : 'unknown holder'})`,
        { hint: `wait for it to finish; if it is gone, remove ${lockPath}` },
      );
    }
  }
  try {
    return await fn();
  } finally {
    await fsp.rm(lockPath, { force: true });
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
    throw new UsageError(`${path} is corrupt (not valid JSON: ${(err as Error).message}); it was left untouched`, {
      hint: `restore it from ${path}.history or move it aside to start fresh`,
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
