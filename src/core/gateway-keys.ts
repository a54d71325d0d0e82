/**
 * Gateway keys: who may call the gateway (clients) and who may pin a side for evidence
 * (operators). One text format everywhere, so a file locally and an SSM parameter on the instance
 * hold the same thing:
 *
 *   # role   key
 *   operator ek_3Jm...   (may send X-Embedctl-Route)
 *   client   ek_Qa9...
 *
 * nginx reads it as a map snippet (renderGatewayKeysMap): `"Bearer <key>" <role>;` per key.
 */

export type GatewayRole = 'client' | 'operator';

export interface GatewayKey {
  role: GatewayRole;
  key: string;
}

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
    if (!key || rest.length > 0 || !GATEWAY_KEY_RE.test(key)) {
      throw new Error(`${source} line ${i + 1}: a key is 16-256 characters of letters, digits and . _ ~ + / = -`);
    }
    keys.push({ role, key });
  });
  if (keys.length === 0) throw new Error(`${source} has no keys; add lines like "client <key>" and "operator <key>"`);
  return keys;
}

export function formatGatewayKeys(keys: GatewayKey[]): string {
  return `# embedctl gateway keys (mode 0600): role key. Operators may send X-Embedctl-Route.\n${keys.map((k) => `${k.role} ${k.key}`).join('\n')}\n`;
}

/** The nginx map snippet for `map $http_authorization $embedctl_role { include ...; }`. */
export function renderGatewayKeysMap(keys: GatewayKey[]): string {
  for (const k of keys) if (!GATEWAY_KEY_RE.test(k.key)) throw new Error('a gateway key has characters nginx cannot carry');
  return `# Written by embedctl; mode 0600. Gateway keys: never commit or share.\n${keys.map((k) => `"Bearer ${k.key}" ${k.role};`).join('\n')}\n`;
}

export function operatorKey(keys: GatewayKey[]): string | undefined {
  return keys.find((k) => k.role === 'operator')?.key;
}

/** The keys file text straight to the nginx map snippet (what user data does on the instance). */
export function renderGatewayKeysMapFor(keysFile: string): string {
  return renderGatewayKeysMap(parseGatewayKeys(keysFile));
}
