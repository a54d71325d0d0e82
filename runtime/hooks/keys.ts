import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { looksLikeJwt, JwtRejected, type JwtVerifier } from './jwt.js';
import type { LimitSpec } from './limits.js';

/**
 * Who is calling: named API keys from --keys-file (hot-reloaded), the single --api-key, JWT
 * bearer tokens, or a caller name set by a trusted proxy (the gateway, after its own auth). The
 * result names the caller (for limits, counters and the access log; never the key) and its
 * scopes: embed (the embedding routes), metrics (/metrics), admin (everything under /admin).
 */

export const SCOPES = ['embed', 'admin', 'metrics'] as const;
export type Scope = (typeof SCOPES)[number];

/** Header the gateway sets to the caller it authenticated; honoured only from --trusted-proxy addresses. */
export const CALLER_HEADER = 'x-embedctl-caller';

const limitFields = {
  requestsPerMinute: z.number().int().positive().optional(),
  tokensPerMinute: z.number().int().positive().optional(),
  requestsBurst: z.number().int().positive().optional(),
  tokensBurst: z.number().int().positive().optional(),
};

const NAME_RE = /^[A-Za-z0-9._@:-]{1,128}$/;

const KeyEntrySchema = z
  .object({
    name: z.string().regex(NAME_RE, 'use 1-128 letters, digits or . _ @ : -'),
    key: z.string().min(16, 'use at least 16 characters (openssl rand -hex 24)').optional(),
    keySha256: z.string().regex(/^[0-9a-fA-F]{64}$/, 'use the 64 hex digits of sha256(key) (printf %s KEY | sha256sum)').optional(),
    scopes: z.array(z.enum(SCOPES)).nonempty().default(['embed']),
    ...limitFields,
  })
  .strict()
  .refine((e) => !!e.key !== !!e.keySha256, { message: 'give exactly one of "key" or "keySha256"' });

const KeysFileSchema = z
  .object({
    defaults: z.object(limitFields).strict().optional(),
    keys: z.array(KeyEntrySchema),
  })
  .strict();

export interface KeyEntry {
  name: string;
  digest: Buffer;
  scopes: Scope[];
  limits: LimitSpec;
}

export interface KeysFile {
  defaults: LimitSpec;
  keys: KeyEntry[];
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

const pickLimits = (o: LimitSpec): LimitSpec =>
  Object.fromEntries(Object.entries({ requestsPerMinute: o.requestsPerMinute, tokensPerMinute: o.tokensPerMinute, requestsBurst: o.requestsBurst, tokensBurst: o.tokensBurst }).filter(([, v]) => v !== undefined));

/** Parses and checks a keys file; the error names the file, the field and the fix. */
export function parseKeysFile(text: string, path: string): KeysFile {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new Error(`${path}: not valid YAML (${(err as Error).message.split('\n')[0]})`);
  }
  const r = KeysFileSchema.safeParse(raw ?? {});
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const where = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
    throw new Error(`${path}: ${where || 'top level'}: ${issue.message}${where ? '' : ' (expected "keys:" with a list of {name, key or keySha256, scopes})'}`);
  }
  const keys = r.data.keys.map((e) => ({
    name: e.name,
    digest: e.key ? sha256(e.key) : Buffer.from(e.keySha256!, 'hex'),
    scopes: [...new Set(e.scopes)] as Scope[],
    limits: pickLimits(e),
  }));
  const seen = new Map<string, number>();
  keys.forEach((k, i) => {
    const prior = [...seen.entries()].find(([, j]) => keys[j]!.digest.equals(k.digest));
    if (seen.has(k.name)) throw new Error(`${path}: keys[${i}].name: "${k.name}" is already used by keys[${seen.get(k.name)}]; names must be unique`);
    if (prior) throw new Error(`${path}: keys[${i}]: same key as keys[${prior[1]}] ("${prior[0]}"); give each caller its own key`);
    seen.set(k.name, i);
  });
  return { defaults: pickLimits(r.data.defaults ?? {}), keys };
}

/**
 * The keys file, re-read when it changes (polled: works for editors that rename, and for a
 * Kubernetes Secret or ConfigMap volume, whose files are swapped through a symlink). A file that
 * no longer parses keeps the previous keys and logs why, so a typo does not lock everyone out.
 */
export class KeyStore {
  private file: KeysFile;
  /** Identity of the file last read (or tried): a change from it means "read again". */
  private seen = '';
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly path: string,
    private readonly log: (e: Record<string, unknown>) => void = () => {},
    pollMs = 500,
  ) {
    this.file = this.read();
    // Our own poll against what was read, not fs.watchFile: its first stat is taken later, so a
    // change made right after start would become its baseline and never be noticed.
    this.timer = setInterval(() => {
      if (this.stamp() !== this.seen) this.reload();
    }, pollMs).unref();
  }

  get current(): KeysFile {
    return this.file;
  }

  reload(): boolean {
    try {
      this.file = this.read();
      this.log({ event: 'keys_reloaded', path: this.path, keys: this.file.keys.length });
      return true;
    } catch (err) {
      this.log({ event: 'keys_reload_failed', path: this.path, error: (err as Error).message, keptKeys: this.file.keys.length });
      return false;
    }
  }

  /** The entry whose key is `presented`, comparing against every entry in constant time. */
  match(presented: string): KeyEntry | undefined {
    const d = sha256(presented);
    let found: KeyEntry | undefined;
    for (const k of this.file.keys) if (timingSafeEqual(d, k.digest) && !found) found = k;
    return found;
  }

  byName(name: string): KeyEntry | undefined {
    return this.file.keys.find((k) => k.name === name);
  }

  close(): void {
    clearInterval(this.timer);
  }

  private stamp(): string {
    const st = statSync(this.path, { throwIfNoEntry: false });
    return st ? `${st.ino}:${st.mtimeMs}:${st.size}` : 'missing';
  }

  private read(): KeysFile {
    // Stamp first: a write between the stamp and the read is seen as a change by the next poll.
    this.seen = this.stamp();
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      throw new Error(`${this.path}: cannot read the keys file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); check --keys-file`);
    }
    return parseKeysFile(text, this.path);
  }
}

export interface Caller {
  name: string;
  scopes: readonly Scope[];
  via: 'key' | 'api-key' | 'jwt' | 'proxy' | 'anonymous';
}

export type AuthResult = { ok: true; caller: Caller } | { ok: false; status: 401 | 503; message: string; code: string };

export interface AuthenticatorOptions {
  apiKey?: string;
  keys?: KeyStore;
  jwt?: JwtVerifier;
  /** Addresses or CIDRs (comma-separated in the flag) whose CALLER_HEADER is believed. */
  trustedProxies?: string[];
  /** Limits for callers without their own (below the keys file's "defaults"). */
  defaultLimits?: LimitSpec;
}

// With no credentials configured, the admin API is for the machine itself (as /admin/fault is).
const ANONYMOUS: Caller = { name: 'anonymous', scopes: ['embed', 'metrics'], via: 'anonymous' };
const ANONYMOUS_LOCAL: Caller = { ...ANONYMOUS, scopes: ['embed', 'metrics', 'admin'] };
const isLoopback = (addr: string) => /^(127\.|::1$|::ffff:127\.)/.test(addr);
const API_KEY_CALLER: Caller = { name: 'api-key', scopes: ['embed', 'admin', 'metrics'], via: 'api-key' };

export class Authenticator {
  private readonly apiKeyDigest?: Buffer;
  private readonly proxies?: BlockList;

  constructor(private readonly o: AuthenticatorOptions) {
    if (o.apiKey) this.apiKeyDigest = sha256(o.apiKey);
    if (o.trustedProxies?.length) {
      this.proxies = new BlockList();
      for (const p of o.trustedProxies) {
        const [addr, bits] = p.split('/');
        const type = isIP(addr!) === 6 ? 'ipv6' : 'ipv4';
        if (bits === undefined) this.proxies.addAddress(addr!, type);
        else this.proxies.addSubnet(addr!, Number(bits), type);
      }
    }
  }

  /** Whether any credential is required at all (none configured = open, as before). */
  get required(): boolean {
    return !!(this.apiKeyDigest || this.o.keys || this.o.jwt);
  }

  /** Named keys or JWT: callers are told apart, so /metrics needs a credential too. */
  get multiUser(): boolean {
    return !!(this.o.keys || this.o.jwt);
  }

  async authenticate(req: IncomingMessage): Promise<AuthResult> {
    const proxied = this.fromTrustedProxy(req);
    if (proxied) return { ok: true, caller: proxied };
    if (!this.required) return { ok: true, caller: isLoopback(req.socket.remoteAddress ?? '') ? ANONYMOUS_LOCAL : ANONYMOUS };
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (!m) return { ok: false, status: 401, message: 'missing API key; send "Authorization: Bearer <key>"', code: 'invalid_api_key' };
    const token = m[1]!;
    if (this.o.jwt && looksLikeJwt(token)) {
      try {
        const id = await this.o.jwt.verify(token);
        return { ok: true, caller: { name: id.name, scopes: id.scopes.filter((s): s is Scope => (SCOPES as readonly string[]).includes(s)), via: 'jwt' } };
      } catch (err) {
        const r = err instanceof JwtRejected ? err : new JwtRejected(String(err), 'jwt_invalid');
        return { ok: false, status: r.code === 'jwt_jwks_unavailable' ? 503 : 401, message: `JWT rejected: ${r.reason}`, code: r.code };
      }
    }
    const entry = this.o.keys?.match(token);
    if (entry) return { ok: true, caller: { name: entry.name, scopes: entry.scopes, via: 'key' } };
    if (this.apiKeyDigest && timingSafeEqual(sha256(token), this.apiKeyDigest)) return { ok: true, caller: API_KEY_CALLER };
    return { ok: false, status: 401, message: 'wrong API key; send "Authorization: Bearer <key>" with a key from the keys file', code: 'invalid_api_key' };
  }

  /** The caller's limits: its keys-file entry, else the file's defaults, else the flags' defaults. */
  limitsFor(caller: Caller): LimitSpec | undefined {
    const own = this.o.keys?.byName(caller.name)?.limits;
    if (own && (own.requestsPerMinute || own.tokensPerMinute)) return own;
    const fileDefaults = this.o.keys?.current.defaults;
    if (fileDefaults && (fileDefaults.requestsPerMinute || fileDefaults.tokensPerMinute)) return fileDefaults;
    return this.o.defaultLimits;
  }

  private fromTrustedProxy(req: IncomingMessage): Caller | undefined {
    const name = req.headers[CALLER_HEADER];
    if (!this.proxies || typeof name !== 'string') return undefined;
    const remote = req.socket.remoteAddress ?? '';
    const v4 = remote.startsWith('::ffff:') ? remote.slice(7) : remote;
    const ok = isIP(v4) === 4 ? this.proxies.check(v4, 'ipv4') : this.proxies.check(remote, 'ipv6');
    if (!ok || !NAME_RE.test(name)) return undefined;
    return { name, scopes: ['embed'], via: 'proxy' };
  }
}
