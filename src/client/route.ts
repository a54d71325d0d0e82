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

/**
 * The width of one of the gateway's 100 split buckets in hash space. split_clients adds each 1 %
 * part as floor(100 * 0xffffffff / 10000), so bucket b (b < 99) ends at (b + 1) * this and the
 * last bucket ("*") takes the rest.
 */
const BUCKET_WIDTH = Math.floor((100 * 0xffffffff) / 10000);

/** The key's gateway bucket 0..99 (templates/nginx/nginx.conf's $embedctl_bucket). */
export function bucketOf(key: string): number {
  return Math.min(99, Math.floor(murmurhash2(key) / BUCKET_WIDTH));
}

/**
 * Whether `key` goes to self-hosted at `percent`. Whole percents: bucket < percent, exactly what
 * the gateway does. That equals the former single `P%` split_clients cut for every key whose
 * hash lies in the floor(P * 0.95) values just below that cut (at most 94 of 2^32 hashes, about 2
 * keys in 10^8). A fractional percent (the hybrid client only; the gateway refuses them) keeps
 * the single cut.
 */
export function routesToSelfHosted(key: string, percent: number): boolean {
  if (!(percent > 0)) return false;
  if (percent >= 100) return true;
  if (Number.isInteger(percent)) return bucketOf(key) < percent;
  return murmurhash2(key) < singleCut(percent);
}

/** The cut of a single `percent%` split_clients part (two decimals), as nginx computes it. */
export function singleCut(percent: number): number {
  return Math.floor((Math.round(percent * 100) * 0xffffffff) / 10000);
}
