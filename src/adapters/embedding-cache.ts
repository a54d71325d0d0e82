import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';

/**
 * On-disk embeddings cache so a re-run does not pay a hosted API again. One namespace per
 * (endpoint, shape, model, task, dimensions, side, routing headers); one little-endian float32
 * file per text, named by sha256(namespace + text) and sharded by its first two hex digits so no
 * directory gets huge. The side and the routing headers are in the key because one gateway URL
 * answers from hosted or self-hosted depending on X-Embedctl-Route: without them the reference's
 * answers were served as the candidate's.
 *
 * Layout: <root>/<namespace>/<ab>/<sha256>.f32 and <root>/<namespace>/meta.json
 */

export interface NamespaceKey {
  endpoint: string;
  shape: string;
  model?: string;
  task?: string;
  dimensions?: number;
  /** Which side of a comparison asked ("reference"); "" for a client outside one. */
  side?: string;
  /** routingHash() of the headers sent: the same URL with another route is another namespace. */
  routing?: string;
}

export interface CacheMeta {
  model?: string;
  dimensions?: number;
}

export interface CacheNamespace {
  readonly dir: string;
  get(text: string): Promise<Float32Array | undefined>;
  set(text: string, v: Float32Array): Promise<void>;
  meta(): Promise<(CacheMeta & NamespaceKey) | undefined>;
  setMeta(m: CacheMeta): Promise<void>;
}

export interface EmbeddingCache {
  readonly root: string;
  namespace(key: NamespaceKey): CacheNamespace;
}

export function defaultCacheDir(env: Record<string, string | undefined>, cwd: string): string {
  return env.EMBEDCTL_CACHE_DIR || join(cwd, '.embedctl', 'cache', 'embeddings');
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * Credentials say who pays, not which vectors come back: they stay out of the key (a rotated API
 * key keeps its cache, and no fingerprint of a secret lands on disk). Every other header can
 * route (X-Embedctl-Route, a tenant or variant header) and is hashed, names case-folded.
 */
const NOT_ROUTING = new Set(['authorization', 'x-api-key', 'api-key', 'cookie', 'content-type', 'accept']);

export function routingHash(headers: Record<string, string>): string {
  const kept = Object.entries(headers)
    .map(([k, v]) => [k.toLowerCase(), v.trim()] as const)
    .filter(([k]) => !NOT_ROUTING.has(k))
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return kept.length === 0 ? '' : sha256(JSON.stringify(kept)).slice(0, 16);
}

/**
 * Temp file + rename: a reader sees the whole vector or none. No fsync per file: thousands of
 * small files would crawl, and a file torn by a power cut fails the size check and is a miss.
 */
async function writeAtomicNoSync(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await fsp.writeFile(tmp, data);
  try {
    await fsp.rename(tmp, path);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
}

export function createEmbeddingCache(root: string): EmbeddingCache {
  return {
    root,
    namespace(key: NamespaceKey): CacheNamespace {
      const canonical = JSON.stringify([key.endpoint, key.shape, key.model ?? '', key.task ?? '', key.dimensions ?? 0, key.side ?? '', key.routing ?? '']);
      const dir = join(root, sha256(canonical).slice(0, 24));
      const made = new Set<string>();
      const fileFor = (text: string) => {
        const h = sha256(`${canonical}\n${text}`);
        return { shard: join(dir, h.slice(0, 2)), file: join(dir, h.slice(0, 2), `${h}.f32`) };
      };
      return {
        dir,
        async get(text) {
          let buf: Buffer;
          try {
            buf = await fsp.readFile(fileFor(text).file);
          } catch {
            return undefined;
          }
          if (buf.length === 0 || buf.length % 4 !== 0) return undefined;
          const v = new Float32Array(buf.length / 4);
          for (let i = 0; i < v.length; i++) v[i] = buf.readFloatLE(i * 4);
          for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i]!)) return undefined;
          return v;
        },
        async set(text, v) {
          const { shard, file } = fileFor(text);
          if (!made.has(shard)) {
            await fsp.mkdir(shard, { recursive: true });
            made.add(shard);
          }
          const buf = Buffer.alloc(v.length * 4);
          for (let i = 0; i < v.length; i++) buf.writeFloatLE(v[i]!, i * 4);
          await writeAtomicNoSync(file, buf);
        },
        async meta() {
          try {
            return JSON.parse(await fsp.readFile(join(dir, 'meta.json'), 'utf8')) as CacheMeta & NamespaceKey;
          } catch {
            return undefined;
          }
        },
        async setMeta(m) {
          await fsp.mkdir(dir, { recursive: true });
          await writeAtomicNoSync(join(dir, 'meta.json'), `${JSON.stringify({ ...key, ...m }, null, 2)}\n`);
        },
      };
    },
  };
}
