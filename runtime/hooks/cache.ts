import { createHash } from 'node:crypto';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { CacheEntry, CacheHook, CacheKey } from './index.js';
import type { SharedRedis } from './redis.js';

export type { CacheEntry, CacheKey };

export { parseCacheSize } from '../../common/serving-options.js';

/**
 * The response cache (the pipeline's CacheHook, runtime/hooks/index.ts): one entry per input
 * text, holding the model's full-size vector and the text's token count. Dimensions, normalisation
 * and encoding are applied after the cache, so one entry serves every output shape of the same
 * text. A request with 100 inputs and 90 hits runs the model for the 10 misses only (the pipeline
 * sends only the misses to the batcher).
 *
 * Two tiers, either or both: an in-process LRU bounded by entries or bytes (--cache-size), and a
 * Redis shared by every replica (--cache-redis). The cache never fails a request: a Redis error
 * or timeout is a miss, counted in embedctl_cache_errors_total.
 */

export interface CacheSize {
  entries?: number;
  bytes?: number;
}

export const KEY_PREFIX = 'embedctl:cache:v1:';

/** The part of every key that names the model: DELETE ?model= clears by this prefix. */
export const modelPrefix = (model: string) => `${KEY_PREFIX}${encodeURIComponent(model)}:`;

/**
 * The Redis/LRU key of one input. `modelId` (the weights' sha256) keeps a new model served under
 * the same name from reading the old one's vectors, e.g. two rollout versions sharing a Redis.
 */
export function cacheKey(k: CacheKey, modelId: string): string {
  return `${modelPrefix(k.model)}${modelId}:${encodeURIComponent(k.task ?? '')}:${k.truncate ? 't' : 'f'}:${createHash('sha256').update(k.text).digest('base64url')}`;
}

/**
 * Approximate bytes an entry holds: the vector, its rendering for one output shape (about 11
 * characters a float as JSON, see renderCached), the key (one byte per ASCII char in V8), Map and
 * object overhead.
 */
const entryBytes = (key: string, e: CacheEntry) => key.length + e.vector.byteLength * 3.75 + 200;

/** Vectors the in-process tier holds, and what they were rendered to (output shape -> text). */
const held = new WeakSet<Float32Array>();
const renderings = new WeakMap<Float32Array, Map<string, string>>();
/** Output shapes remembered per vector (dimensions x normalisation x encoding in use). */
const MAX_RENDERINGS = 4;

/**
 * `render(v)`, remembered per `format` while the in-process tier holds `v`: a hit then costs no
 * float formatting, which is most of what is left of a request once the model is skipped
 * (bench: 14 of 32 us CPU per one-text hit on the default model). Other vectors render as usual.
 */
export function renderCached(v: Float32Array, format: string, render: (v: Float32Array) => string): string {
  if (!held.has(v)) return render(v);
  let byFormat = renderings.get(v);
  if (!byFormat) renderings.set(v, (byFormat = new Map()));
  let text = byFormat.get(format);
  if (text === undefined) {
    text = render(v);
    if (byFormat.size < MAX_RENDERINGS) byFormat.set(format, text);
  }
  return text;
}

const release = (v: Float32Array) => {
  held.delete(v);
  renderings.delete(v);
};

interface Slot extends CacheEntry {
  bytes: number;
  expires: number;
}

/** An LRU over a Map (insertion order = recency: a hit is deleted and re-inserted). */
export class MemoryLru {
  private readonly map = new Map<string, Slot>();
  private bytes = 0;

  constructor(
    private readonly size: CacheSize,
    private readonly ttlMs = 0,
    private readonly now = () => Date.now(),
  ) {}

  get(key: string): CacheEntry | undefined {
    const slot = this.map.get(key);
    if (!slot) return undefined;
    this.map.delete(key);
    if (slot.expires && slot.expires <= this.now()) {
      this.bytes -= slot.bytes;
      release(slot.vector);
      return undefined;
    }
    this.map.set(key, slot);
    return slot;
  }

  set(key: string, e: CacheEntry): void {
    const old = this.map.get(key);
    if (old) {
      this.map.delete(key);
      this.bytes -= old.bytes;
      release(old.vector);
    }
    const slot: Slot = { tokens: e.tokens, vector: e.vector, bytes: entryBytes(key, e), expires: this.ttlMs ? this.now() + this.ttlMs : 0 };
    // An entry bigger than the whole cache would evict everything and still not fit.
    if (this.size.bytes !== undefined && slot.bytes > this.size.bytes) return;
    this.map.set(key, slot);
    this.bytes += slot.bytes;
    held.add(slot.vector);
    const maxEntries = this.size.entries ?? Infinity;
    const maxBytes = this.size.bytes ?? Infinity;
    for (const [k, s] of this.map) {
      if (this.map.size <= maxEntries && this.bytes <= maxBytes) break;
      this.map.delete(k);
      this.bytes -= s.bytes;
      release(s.vector);
    }
  }

  /** Removes every entry whose key starts with `prefix` (all when undefined); returns how many. */
  clear(prefix?: string): number {
    if (prefix === undefined) {
      const n = this.map.size;
      for (const slot of this.map.values()) release(slot.vector);
      this.map.clear();
      this.bytes = 0;
      return n;
    }
    let n = 0;
    for (const [k, s] of this.map) {
      if (!k.startsWith(prefix)) continue;
      this.map.delete(k);
      this.bytes -= s.bytes;
      release(s.vector);
      n++;
    }
    return n;
  }

  stats() {
    return { entries: this.map.size, bytes: this.bytes, maxEntries: this.size.entries ?? null, maxBytes: this.size.bytes ?? null, ttlSeconds: this.ttlMs / 1000 || null };
  }
}

/** Redis value: tokens as a uint32, then the vector as float32, little-endian. */
function pack(e: CacheEntry): Buffer {
  const b = Buffer.allocUnsafe(4 + e.vector.byteLength);
  b.writeUInt32LE(e.tokens, 0);
  Buffer.from(e.vector.buffer, e.vector.byteOffset, e.vector.byteLength).copy(b, 4);
  return b;
}
function unpack(v: Buffer | null): CacheEntry | undefined {
  if (!v || v.length < 8 || (v.length - 4) % 4 !== 0) return undefined;
  // Copy out: the reply buffer's offset need not be 4-aligned for a Float32Array view.
  const vector = new Float32Array((v.length - 4) / 4);
  Buffer.from(vector.buffer).set(v.subarray(4));
  return { tokens: v.readUInt32LE(0), vector };
}

export interface EmbeddingCacheOptions {
  /** In-process tier; omit for Redis only. */
  memory?: CacheSize;
  redis?: SharedRedis;
  /** 0 or undefined: entries live until evicted. */
  ttlMs?: number;
  registry: Registry;
  /** The weights' identity for a served model name (see cacheKey); '' when unknown. */
  modelId?: (model: string) => string | undefined;
}

export class EmbeddingCache implements CacheHook {
  readonly memory?: MemoryLru;
  private readonly redis?: SharedRedis;
  private readonly ttlMs: number;
  private readonly hits: Counter;
  private readonly misses: Counter;
  private readonly errors: Counter<'op'>;
  private readonly modelId: (model: string) => string | undefined;
  private redisErrors = 0;
  private counts = { hits: 0, misses: 0 };

  constructor(opts: EmbeddingCacheOptions) {
    this.ttlMs = opts.ttlMs ?? 0;
    if (opts.memory) this.memory = new MemoryLru(opts.memory, this.ttlMs);
    this.redis = opts.redis;
    this.modelId = opts.modelId ?? (() => undefined);
    const registers = [opts.registry];
    this.hits = new Counter({ name: 'embedctl_cache_hits_total', help: 'Inputs answered from the response cache (either tier)', registers });
    this.misses = new Counter({ name: 'embedctl_cache_misses_total', help: 'Inputs not in the response cache (run through the model), Redis errors included', registers });
    this.errors = new Counter({ name: 'embedctl_cache_errors_total', help: 'Redis cache operations that failed or timed out (each lookup counted as misses)', labelNames: ['op'], registers });
    const mem = this.memory;
    new Gauge({ name: 'embedctl_cache_entries', help: 'Entries in the in-process cache tier', registers, collect() { this.set(mem?.stats().entries ?? 0); } });
    new Gauge({ name: 'embedctl_cache_size_bytes', help: 'Approximate bytes held by the in-process cache tier', registers, collect() { this.set(mem?.stats().bytes ?? 0); } });
  }

  /** One result per input, in order; counts hits and misses. Never rejects. */
  async get(keys: CacheKey[]): Promise<Array<CacheEntry | undefined>> {
    return this.lookup(this.keysOf(keys));
  }

  /** Stores in every tier; resolves when Redis has them (or failed, counted). Never rejects. */
  async set(entries: Array<{ key: CacheKey; entry: CacheEntry }>): Promise<void> {
    return this.store(
      this.keysOf(entries.map((e) => e.key)),
      entries.map((e) => e.entry),
    );
  }

  private keysOf(keys: CacheKey[]): string[] {
    const ids = new Map<string, string>();
    return keys.map((k) => {
      let id = ids.get(k.model);
      if (id === undefined) ids.set(k.model, (id = (this.modelId(k.model) ?? '').slice(0, 16)));
      return cacheKey(k, id);
    });
  }

  private async lookup(keys: string[]): Promise<Array<CacheEntry | undefined>> {
    // Dense (not new Array(n)): callers iterate with forEach, which skips holes.
    const out: Array<CacheEntry | undefined> = this.memory ? keys.map((k) => this.memory!.get(k)) : keys.map(() => undefined);
    const missing: number[] = [];
    for (let i = 0; i < keys.length; i++) if (!out[i]) missing.push(i);
    if (this.redis && missing.length) {
      const values = await this.redisCall('get', () => this.redis!.client.mgetBuffer(missing.map((i) => keys[i]!)));
      if (values) {
        missing.forEach((i, j) => {
          const e = unpack(values[j] ?? null);
          if (!e) return;
          out[i] = e;
          this.memory?.set(keys[i]!, e);
        });
      }
    }
    let hit = 0;
    for (const e of out) if (e) hit++;
    this.count(hit, keys.length - hit);
    return out;
  }

  private async store(keys: string[], entries: CacheEntry[]): Promise<void> {
    if (this.memory) keys.forEach((k, i) => this.memory!.set(k, entries[i]!));
    if (!this.redis || keys.length === 0) return;
    await this.redisCall('set', async () => {
      const p = this.redis!.client.pipeline();
      keys.forEach((k, i) => (this.ttlMs ? p.set(k, pack(entries[i]!), 'PX', this.ttlMs) : p.set(k, pack(entries[i]!))));
      const results = (await p.exec()) ?? [];
      const failed = results.find(([err]) => err);
      if (failed) throw failed[0];
    });
  }

  /** Empties the cache, or one model's entries; returns how many entries each tier dropped (null: tier absent or unreachable). */
  async clear(model?: string): Promise<{ memory: number | null; redis: number | null }> {
    const prefix = model === undefined ? KEY_PREFIX : modelPrefix(model);
    const memory = this.memory ? this.memory.clear(model === undefined ? undefined : prefix) : null;
    let redis: number | null = null;
    if (this.redis) {
      redis = (await this.redisCall('clear', async () => {
        let n = 0;
        let cursor = '0';
        do {
          const [next, keys] = await this.redis!.client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
          cursor = next;
          if (keys.length) n += await this.redis!.client.unlink(...keys);
        } while (cursor !== '0');
        return n;
      })) ?? null;
    }
    return { memory, redis };
  }

  stats() {
    return {
      hits: this.counts.hits,
      misses: this.counts.misses,
      hitRate: this.counts.hits + this.counts.misses ? Math.round((this.counts.hits / (this.counts.hits + this.counts.misses)) * 1e4) / 1e4 : null,
      memory: this.memory?.stats() ?? null,
      redis: this.redis ? { up: this.redis.up(), errors: this.redisErrors } : null,
    };
  }

  private count(hits: number, misses: number) {
    if (hits) this.hits.inc(hits);
    if (misses) this.misses.inc(misses);
    this.counts.hits += hits;
    this.counts.misses += misses;
  }

  private async redisCall<T>(op: string, f: () => Promise<T>): Promise<T | undefined> {
    try {
      return await f();
    } catch {
      // Down, timed out or refused: the request goes on without the shared tier (redis.ts logs the outage).
      this.redisErrors++;
      this.errors.inc({ op });
      return undefined;
    }
  }
}
