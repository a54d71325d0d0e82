import { z } from 'zod';
import { booleanSchema } from './schema-values.js';
import { UsageError } from '../errors.js';

/**
 * The gateway's deploy settings (fallback, client keys, TLS), merged into deploy-config's
 * FIELDS so `render`, `up` and `provision` resolve them like every other setting
 * (flag > EMBEDCTL_* env > embedctl.yaml deploy: > default).
 */

const path = z.string().regex(/^$|^\/?[A-Za-z0-9._/-]+$/, 'expected a file path (letters, digits, . _ / -)');
const domain = z
  .string()
  .regex(/^$|^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$/, 'expected a DNS name such as embed.example.com');
const email = z.string().regex(/^$|^[^\s@'"`$\\]+@[^\s@'"`$\\]+\.[A-Za-z]{2,}$/, 'expected an e-mail address');

export const GATEWAY_FIELDS = {
  sameModel: {
    flag: '--same-model',
    env: 'EMBEDCTL_SAME_MODEL',
    default: false,
    schema: booleanSchema,
    help: 'declare that hosted serves the same model as the runtimes: self-hosted failures then fall back to hosted (otherwise clients get a 503)',
  },
  gatewayKeysParameter: {
    flag: '--gateway-keys-parameter',
    env: 'EMBEDCTL_GATEWAY_KEYS_PARAMETER',
    // Empty: one per deployment (gatewayKeysParameterFor). A shared default let `teardown --name
    // blue` delete the keys every other deployment's gateway reads.
    default: '',
    schema: z.string().regex(/^$|^\/?[\w./-]+$/, 'expected an SSM parameter name'),
    help: 'SSM SecureString with the gateway keys ("client <key>" / "operator <key>" lines) the instance enforces; empty: /embedctl/<name>/gateway-keys, one per deployment (an existing deployment keeps the one its state records)',
  },
  tls: {
    flag: '--tls',
    env: 'EMBEDCTL_TLS',
    default: 'off' as 'off' | 'files' | 'letsencrypt',
    schema: z.enum(['off', 'files', 'letsencrypt']),
    help: 'HTTPS at the gateway: off, files (--tls-cert/--tls-key) or letsencrypt (certbot on the instance; needs --domain, --email)',
  },
  tlsCert: { flag: '--tls-cert', env: 'EMBEDCTL_TLS_CERT', default: '', schema: path, help: 'certificate chain (PEM) path on the gateway host; implies --tls files' },
  tlsKey: { flag: '--tls-key', env: 'EMBEDCTL_TLS_KEY', default: '', schema: path, help: 'private key (PEM) path on the gateway host; referenced, never copied' },
  domain: { flag: '--domain', env: 'EMBEDCTL_DOMAIN', default: '', schema: domain, help: 'the gateway\'s DNS name (TLS server name and redirect target)' },
  email: { flag: '--email', env: 'EMBEDCTL_TLS_EMAIL', default: '', schema: email, help: 'contact for Let\'s Encrypt (expiry notices)' },
  hsts: { flag: '--hsts', env: 'EMBEDCTL_HSTS', default: false, schema: booleanSchema, help: 'send Strict-Transport-Security on HTTPS answers' },
  httpsPort: { flag: '--https-port', env: 'EMBEDCTL_HTTPS_PORT', default: 443, schema: z.coerce.number().int().min(1).max(65535), help: 'port nginx serves HTTPS on (plain HTTP on --gateway-port then redirects)' },
} as const;

export const GATEWAY_FLAGS = Object.keys(GATEWAY_FIELDS) as Array<keyof typeof GATEWAY_FIELDS>;

/** Where a deployment's gateway keys live when --gateway-keys-parameter does not say. */
export const perDeploymentKeysParameter = (name: string) => `/embedctl/${name}/gateway-keys`;

/**
 * The gateway keys parameter of deployment `name`: the one asked for, else the one its state
 * records (instances already running read that one), else its own.
 */
export function gatewayKeysParameterFor(asked: string | undefined, name: string, recorded?: string): string {
  return asked || recorded || perDeploymentKeysParameter(name);
}

export interface GatewayDeploy {
  sameModel?: boolean;
  gatewayKeysParameter?: string;
  tls?: 'off' | 'files' | 'letsencrypt';
  tlsCert?: string;
  tlsKey?: string;
  domain?: string;
  email?: string;
  hsts?: boolean;
  httpsPort?: number;
}

export type TlsPlan = { mode: 'off' } | { mode: 'files' | 'letsencrypt'; certPath: string; keyPath: string; domain: string; email?: string; hsts: boolean; port: number };

/** Where certbot puts a domain's certificate: nginx reads it there (mounted read-only). */
export const letsEncryptPaths = (domain: string) => ({
  certPath: `/etc/letsencrypt/live/${domain}/fullchain.pem`,
  keyPath: `/etc/letsencrypt/live/${domain}/privkey.pem`,
});

/**
 * The TLS plan, or a UsageError naming the flag to fix.
 * --tls-cert alone implies --tls files.
 */
export function tlsPlan(c: GatewayDeploy): TlsPlan {
  const mode = c.tls && c.tls !== 'off' ? c.tls : c.tlsCert || c.tlsKey ? 'files' : 'off';
  if (mode === 'off') return { mode };
  const port = c.httpsPort ?? 443;
  if (!c.domain) throw new UsageError("HTTPS needs the gateway's DNS name", { field: '--domain', hint: 'e.g. --domain embed.example.com' });
  if (mode === 'letsencrypt') {
    if (!c.email) throw new UsageError("Let's Encrypt needs a contact address for expiry notices", { field: '--email' });
    return { mode, ...letsEncryptPaths(c.domain), domain: c.domain, email: c.email, hsts: Boolean(c.hsts), port };
  }
  if (!c.tlsCert || !c.tlsKey) {
    throw new UsageError('HTTPS from files needs both --tls-cert and --tls-key', { field: c.tlsCert ? '--tls-key' : '--tls-cert' });
  }
  if (!c.tlsCert.startsWith('/') || !c.tlsKey.startsWith('/')) {
    throw new UsageError('certificate and key paths must be absolute (nginx reads them where they lie)', { field: c.tlsCert.startsWith('/') ? '--tls-key' : '--tls-cert' });
  }
  return { mode, certPath: c.tlsCert, keyPath: c.tlsKey, domain: c.domain, hsts: Boolean(c.hsts), port };
}
