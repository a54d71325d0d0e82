import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { rolloutFile, rolloutHistory } from '../../contracts/rollout.js';
import { applyChange, type Change } from '../../core/rollout/machine.js';
import { initialState, stepIndexOf } from '../../core/rollout/plan.js';
import type { DriverName, RolloutState } from '../../core/rollout/types.js';
import { statePaths } from '../../core/state.js';
import { acquireLock, currentUser, staleReason, writeFileAtomic, type HeldLock } from '../../util/fs.js';
import type { Settings } from './options.js';

/** A state read without throwing: what the emergency path works from. */
export type Tolerant = { state?: RolloutState; problem?: string };

/** A rollback under way: announced before it touches traffic, withdrawn once it is recorded. */
export interface RollbackRequest {
  path: string;
  pid: number;
  host: string;
  user: string;
  since: string;
  reason: string;
}

/**
 * Owns `.embedctl/rollout.json` (`$EMBEDCTL_STATE_DIR/rollout.json` when that is set, where
 * status and teardown read it): loading (validated), "load or start fresh" (once, here), the
 * lock, atomic saves, the append-only history file next to it, and the rollback requests a
 * forward move checks before and after it touches traffic.
 */
export class RolloutStore {
  readonly statePath: string;
  readonly historyPath: string;

  constructor(
    cwd: string,
    stateFile: string | undefined,
    private readonly settings: Settings,
    private readonly env: Record<string, string | undefined>,
  ) {
    this.statePath = resolve(cwd, stateFile ?? statePaths(cwd, env).rollout);
    this.historyPath = this.statePath.replace(/\.json$/, '') + '.history.jsonl';
  }

  /** The saved state, validated by its contract; undefined when there is none yet. A bad file is a one-line UsageError. */
  async load(): Promise<RolloutState | undefined> {
    return (await rolloutFile.read(this.statePath)) as RolloutState | undefined;
  }

  /** The saved state with the configured plan applied, or a fresh one at 0 %. */
  async current(): Promise<{ state: RolloutState; exists: boolean }> {
    const saved = await this.load();
    return { state: this.reconcile(saved ?? this.fresh(), Boolean(saved)), exists: Boolean(saved) };
  }

  fresh(driver: DriverName = this.settings.driver.value): RolloutState {
    return initialState(this.settings.steps.value, this.settings.dwellMs.value, driver);
  }

  /** Never throws: the state when it is readable and valid, else what is wrong with it. */
  async tolerant(): Promise<Tolerant> {
    try {
      const saved = await this.load();
      return { state: saved && this.reconcile(saved, true) };
    } catch (err) {
      return { problem: (err as Error).message };
    }
  }

  /** Applies an explicitly configured plan (flag, env or embedctl.yaml) to an existing rollout. */
  private reconcile(state: RolloutState, existed: boolean): RolloutState {
    if (!existed) return state;
    const s = this.settings;
    const next = { ...state };
    if (s.steps.source !== 'default') next.steps = s.steps.value;
    if (s.dwellMs.source !== 'default') next.dwellMs = s.dwellMs.value;
    if (s.driver.source !== 'default') next.driver = s.driver.value;
    next.stepIndex = stepIndexOf(next.steps, next.percent);
    return next;
  }

  lock(command: string, waitMs = this.settings.lockWaitMs): Promise<HeldLock> {
    return acquireLock(this.statePath, { what: 'rollout', command: `embedctl rollout ${command}`, waitMs, env: this.env });
  }

  /**
   * Re-reads the state under the lock (another command may have moved it since we looked), lets
   * `fn` decide and act, then writes the new state and its history line.
   */
  async mutate<T>(command: string, fn: (state: RolloutState, exists: boolean) => Promise<{ state?: RolloutState; result: T }>): Promise<T> {
    const lock = await this.lock(command);
    try {
      const { state, exists } = await this.current();
      const out = await fn(state, exists);
      if (out.state) await this.save(out.state, state);
      return out.result;
    } finally {
      await lock.release();
    }
  }

  /** Writes the state atomically and appends the history entries it added since `before`. */
  async save(next: RolloutState, before?: RolloutState): Promise<void> {
    await rolloutFile.write(this.statePath, next);
    const added = next.history.slice(before?.history.length ?? 0);
    for (const h of added) await rolloutHistory.append(this.historyPath, h);
  }

  /**
   * Announces a rollback before it moves traffic, outside the lock (a rollback never waits to act):
   * `<state>.rollback-<id>`, written atomically. A forward move holding the lock refuses to apply
   * while one is present, and says so if one appeared while it applied.
   */
  async requestRollback(reason: string, now: Date): Promise<string> {
    const path = `${this.statePath}.rollback-${randomBytes(6).toString('hex')}`;
    const body = { pid: process.pid, host: hostname(), user: currentUser(this.env), since: now.toISOString(), reason };
    await writeFileAtomic(path, `${JSON.stringify(body)}\n`);
    return path;
  }

  async withdrawRollback(path: string): Promise<void> {
    await fsp.rm(path, { force: true });
  }

  /**
   * Rollbacks announced and not yet recorded. One whose process is gone (or, from another host,
   * older than the lock's bound) crashed: it is removed, as a stale lock is.
   */
  async pendingRollbacks(): Promise<RollbackRequest[]> {
    const dir = dirname(this.statePath);
    const prefix = `${basename(this.statePath)}.rollback-`;
    const names = await fsp.readdir(dir).catch(() => [] as string[]);
    const out: RollbackRequest[] = [];
    for (const name of names.filter((n) => n.startsWith(prefix) && !n.endsWith('.tmp'))) {
      const path = join(dir, name);
      const [text, st] = await Promise.all([fsp.readFile(path, 'utf8'), fsp.stat(path)]).catch(() => [undefined, undefined] as const);
      if (text === undefined || !st) continue;
      if (staleReason(text, st.mtimeMs, Date.now(), 15 * 60_000)) {
        await fsp.rm(path, { force: true });
        continue;
      }
      const r = JSON.parse(text) as Omit<RollbackRequest, 'path'>;
      out.push({ ...r, path });
    }
    return out;
  }

  /** Moves a damaged state file aside (never deletes it) and says where it went. */
  async setAside(now: Date): Promise<string> {
    const aside = `${this.statePath}.corrupt-${now.toISOString().replace(/[:.]/g, '-')}`;
    await fsp.rename(this.statePath, aside);
    return aside;
  }

  change(now: Date, c: Omit<Change, 'now' | 'user' | 'reason' | 'forced' | 'gates'> & Partial<Pick<Change, 'reason' | 'forced' | 'gates'>>): Change {
    return { reason: null, forced: false, gates: [], ...c, now, user: currentUser(this.env) };
  }

  apply(state: RolloutState, c: Change): RolloutState {
    return applyChange(state, c);
  }
}
