/**
 * Sticky routing: a key (tenant, user) always lands on the same side for a given percentage, so
 * one user's vectors come from one model. The hash is MurmurHash2 (seed 0), the one nginx's
 * split_clients uses, and the cut is computed the way nginx computes it, so a key routed by the
 * hybrid client and the same key routed by the nginx split (keyed on it) agree.
 */
export function murmurhash2(key: string): number {
  const data = new TextEncoder().encode(key);
  const m = 0x5bd1e995;
  let len = data.length;
  let h = (0 ^ len) >>> 0;
  let i = 0;
  while (len >= 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
    i += 4;
    len -= 4;
  }
  if (len === 3) h ^= data[i + 2]! << 16;
  if (len >= 2) h ^= data[i + 1]! << 8;
  if (len >= 1) {
    h ^= data[i]!;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h >>> 0;
}

/** Whether `key` goes to self-hosted at `percent` (0..100, two decimals, as split_clients). */
export function routesToSelfHosted(key: string, percent: number): boolean {
  if (!(percent > 0)) return false;
  if (percent >= 100) return true;
  const cut = Math.floor((Math.round(percent * 100) * 0xffffffff) / 10000);
  return murmurhash2(key) < cut;
}

/** The key's bucket 0..99: it is self-hosted exactly while percent > bucket. */
export function bucketOf(key: string): number {
  return Math.floor((murmurhash2(key) / 0x100000000) * 100);
}
