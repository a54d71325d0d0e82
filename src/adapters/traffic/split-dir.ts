import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { selfHostedBuckets, splitHealthBody } from '../../core/render.js';

/**
 * The gateway's live split, read by nginx on every request (templates/nginx/nginx.conf):
 *   <dir>/current          symlink to the live generation (relative, so it resolves inside a
 *                          container that mounts <dir> elsewhere)
 *   <dir>/g-<percent>-<id>/ one empty file per self-hosted bucket ("0".."P-1") and health.json
 * A move writes a new generation, swaps `current` with rename(2) (atomic: a request sees the old
 * split or the new, never none), then deletes older generations. No nginx reload, so no worker
 * closes a keep-alive connection for it. Everything is world-readable: nginx's workers run as
 * another user than the writer (root on an instance, the operator locally).
 */

export interface LiveSplit {
  /** The generation `current` points to; undefined when no split was ever written. */
  generation?: string;
  /** Its share, from the generation's name. */
  percent?: number;
}

/** A fresh generation name; the percent in it lets a reader tell the share without nginx. */
export function newGeneration(percent: number): string {
  return `g-${percent}-${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
}

export function percentOfGeneration(generation: string | undefined): number | undefined {
  const m = /^g-(\d{1,3})-[0-9a-z]+$/.exec(generation ?? '');
  return m ? Number(m[1]) : undefined;
}

export async function readSplit(dir: string): Promise<LiveSplit> {
  const generation = await fsp.readlink(join(dir, 'current')).catch(() => undefined);
  return { generation, percent: percentOfGeneration(generation) };
}

/**
 * Writes `percent` as the live split of `dir`. `expected`: the generation read before deciding
 * (undefined: none); if another writer swapped it meanwhile, nothing is changed and an error says so.
 */
export async function writeSplit(dir: string, percent: number, expected?: { generation?: string }, o: { workersAsRoot?: boolean } = {}): Promise<{ generation: string; previous?: string }> {
  const buckets = selfHostedBuckets(percent);
  await fsp.mkdir(dir, { recursive: true, mode: 0o755 });
  await fsp.chmod(dir, 0o755);
  if (!o.workersAsRoot) await assertWorkersCanReach(dir);
  const previous = (await readSplit(dir)).generation;
  if (expected && previous !== expected.generation) {
    throw new Error(`the split in ${dir} changed while embedctl worked (${expected.generation ?? 'none'} -> ${previous ?? 'none'}); nothing applied`);
  }
  const generation = newGeneration(percent);
  const gen = join(dir, generation);
  await fsp.mkdir(gen, { mode: 0o755 });
  await fsp.chmod(gen, 0o755); // the umask must not hide it from nginx's workers
  await Promise.all(buckets.map((b) => fsp.writeFile(join(gen, b), '', { mode: 0o644 })));
  await fsp.writeFile(join(gen, 'health.json'), splitHealthBody(percent, generation), { mode: 0o644 });
  const tmp = join(dir, `.current-${generation}`);
  await fsp.symlink(generation, tmp);
  await fsp.rename(tmp, join(dir, 'current'));
  await removeOldGenerations(dir, generation);
  return { generation, previous };
}

/**
 * nginx started as root runs its workers as `nobody` unless its config says `user root;` (local
 * stacks started as root do, see NginxConfOptions.workerUser): every directory above the split must be
 * searchable by others, or each stat fails (EACCES), the split directory reads as absent and the
 * rendered share is served. Said here, before anything moves, rather than found by sampling.
 */
async function assertWorkersCanReach(dir: string): Promise<void> {
  if (process.getuid?.() !== 0) return; // a non-root nginx runs its workers as this user
  for (let d = resolve(dir); ; d = dirname(d)) {
    const st = await fsp.stat(d);
    if ((st.mode & 0o001) === 0) throw new Error(`nginx's workers (not root) cannot reach ${dir}: ${d} is not searchable by others (chmod o+x ${d})`);
    if (dirname(d) === d) return;
  }
}

/** Generations other than the live one (a crashed writer's leftovers included). */
async function removeOldGenerations(dir: string, keep: string): Promise<void> {
  const names = await fsp.readdir(dir);
  await Promise.all(
    names.filter((n) => (n.startsWith('g-') || n.startsWith('.current-')) && n !== keep).map((n) => fsp.rm(join(dir, n), { recursive: true, force: true })),
  );
}

/**
 * The same move as a shell script for the instance (run as root by SSM; `$SPLIT` set by the
 * caller's prelude to the host side of the gateway's mount). Exit 3: the split changed since it
 * was read (`expected`), nothing applied.
 */
export function writeSplitScript(percent: number, expected: string | undefined): string[] {
  const buckets = selfHostedBuckets(percent);
  const generation = newGeneration(percent);
  const health = splitHealthBody(percent, generation).trimEnd();
  return [
    'mkdir -p "$SPLIT" && chmod 755 "$SPLIT"',
    `[ "$(readlink "$SPLIT/current" || true)" = "${expected ?? ''}" ] || { echo "embedctl: the split changed since it was read ($(readlink "$SPLIT/current" || echo none)); nothing applied" >&2; exit 3; }`,
    `G="${generation}"`,
    'mkdir -m 755 "$SPLIT/$G"',
    ...(buckets.length ? [`(cd "$SPLIT/$G" && touch $(seq 0 ${buckets.length - 1}) && chmod 644 *)`] : []),
    `printf '%s\\n' '${health}' > "$SPLIT/$G/health.json" && chmod 644 "$SPLIT/$G/health.json"`,
    // rename(2) over the old link: every nginx worker sees the new split on its next request.
    'ln -s "$G" "$SPLIT/.current-$G" && mv -T "$SPLIT/.current-$G" "$SPLIT/current"',
    'find "$SPLIT" -mindepth 1 -maxdepth 1 \\( -name "g-*" -o -name ".current-*" \\) ! -name "$G" -exec rm -rf {} +',
    'echo "embedctl: split $G"',
  ];
}
