/**
 * Gateway keys: who may call the gateway (clients) and who may pin a side for evidence
 * (operators). One text format everywhere, so a file locally and an SSM parameter on the instance
 * hold the same thing:
 *
 *   # role   key          [name=<caller>] [rpm=<requests per minute>] [burst=<requests>]
 *   operator ek_3Jm...   (may send X-Embedctl-Route)
 *   client   ek_Qa9...   name=team-a rpm=600
 *
 * nginx reads it as a map snippet (renderGatewayKeysMap): `"Bearer <key>" <role>;` per key. A
 * name is passed to the runtimes as X-Embedctl-Caller (their keys file's name for the same
 * tenant), and rpm is enforced at the gateway whichever side answers (gateway-callers.ts).
 */

export type GatewayRole = 'client' | 'operator';

export interface GatewayKey {
  role: GatewayRole;
  key: string;
  /** The caller's name (the runtime keys file's `name`): X-Embedctl-Caller and the limit's key. */
  name?: string;
  requestsPerMinute?: number;
  /** Requests allowed at once before the rate applies (default: one minute's worth, as the runtime). */
  requestsBurst?: number;
}

/** The runtime's caller-name rule (runtime/hooks/keys.ts), so a name means the same on both sides. */
export const CALLER_NAME_RE = /^[A-Za-z0-9._@:-]{1,128}$/;

const OPTIONS: Record<string, { field: 'name' | 'requestsPerMinute' | 'requestsBurst'; check: (v: string) => boolean; expect: string }> = {
  name: { field: 'name', check: (v) => CALLER_NAME_RE.test(v), expect: '1-128 letters, digits or . _ @ : -' },
  rpm: { field: 'requestsPerMinute', check: (v) => /^[1-9]\d{0,6}$/.test(v), expect: 'a whole number of requests per minute (1-9999999)' },
  burst: { field: 'requestsBurst', check: (v) => /^[1-9]\d{0,6}$/.test(v), expect: 'a whole number of requests (1-9999999)' },
};

/** Characters that survive an HTTP header, an nginx quoted string and a shell word unchanged. */
export const GATEWAY_KEY_RE = /^[A-Za-z0-9._~+/=-]{16,256}$/;

/** Parses the keys file; errors name the line (never the key itself: it would land in logs). */
export function parseGatewayKeys(text: string, source = 'gateway keys'): GatewayKey[] {
  const keys: GatewayKey[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) return;
    const [role, key, ...rest] = line.split(/\s+/);
    if (role !== 'client' && role !== 'operator') {
      throw new Error(`${source} line ${i + 1}: expected "client <key>" or "operator <key>", the role is ${JSON.stringify(role)}`);
    }
    if (!key || !GATEWAY_KEY_RE.test(key)) {
      throw new Error(`${source} line ${i + 1}: a key is 16-256 characters of letters, digits and . _ ~ + / = -`);
    }
    const entry: GatewayKey = { role, key };
    for (const opt of rest) {
      const [k, v = ''] = opt.split(/=(.*)/s);
      const o = OPTIONS[k!];
      if (!o) throw new Error(`${source} line ${i + 1}: after the key come name=<caller>, rpm=<n> or burst=<n>, not ${JSON.stringify(k)}`);
      if (!o.check(v)) throw new Error(`${source} line ${i + 1}: ${k} must be ${o.expect}`);
      if (o.field === 'name') entry.name = v;
      else entry[o.field] = Number(v);
    }
    if ((entry.requestsPerMinute || entry.requestsBurst) && !entry.name) {
      throw new Error(`${source} line ${i + 1}: a limit needs name=<caller> (the limit is per caller, shared by its keys)`);
    }
    if (entry.requestsBurst && !entry.requestsPerMinute) throw new Error(`${source} line ${i + 1}: burst= needs rpm=`);
    keys.push(entry);
  });
  if (keys.length === 0) throw new Error(`${source} has no keys; add lines like "client <key>" and "operator <key>"`);
  return keys;
}

export function formatGatewayKeys(keys: GatewayKey[]): string {
  const line = (k: GatewayKey) =>
    [k.role, k.key, k.name && `name=${k.name}`, k.requestsPerMinute && `rpm=${k.requestsPerMinute}`, k.requestsBurst && `burst=${k.requestsBurst}`].filter(Boolean).join(' ');
  return `# embedctl gateway keys (mode 0600): role key [name= rpm= burst=]. Operators may send X-Embedctl-Route.\n${keys.map(line).join('\n')}\n`;
}

/** The nginx map snippet for `map $http_authorization $embedctl_role { include ...; }`. */
export function renderGatewayKeysMap(keys: GatewayKey[]): string {
  for (const k of keys) if (!GATEWAY_KEY_RE.test(k.key)) throw new Error('a gateway key has characters nginx cannot carry');
  return `# Written by embedctl; mode 0600. Gateway keys: never commit or share.\n${keys.map((k) => `"Bearer ${k.key}" ${k.role};`).join('\n')}\n`;
}

export function operatorKey(keys: GatewayKey[]): string | undefined {
  return keys.find((k) => k.role === 'operator')?.key;
}
