import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { isAbsolute, join, resolve } from 'node:path';
import { connect } from 'node:tls';

/**
 * `status`'s certificate lines (issue 18): how long the gateway's TLS certificate has left, from
 * the certificate the gateway actually serves (a TLS handshake to an https gateway, or to the
 * HTTPS port of a rendered nginx.conf next to a plain-HTTP gateway URL) and from certificate files
 * a rendered nginx.conf names when they lie on this machine. Under 14 days is a warning (Let's
 * Encrypt renews at 30, so 14 means renewal has been failing for two weeks); expired is a failure.
 */

export const EXPIRY_WARNING_DAYS = 14;

export interface CertificateStatus {
  /** Where it was read: "tls embed.example.com:443" or a file path. */
  source: string;
  /** Why this one: the gateway or nginx.conf it belongs to. */
  for: string;
  subject?: string;
  issuer?: string;
  validTo?: string;
  daysLeft?: number;
  state: 'ok' | 'expiring' | 'expired' | 'unreadable';
  /** The handshake's verdict on the chain (informational: a self-signed certificate still has an expiry). */
  trusted?: boolean;
  error?: string;
}

const DAY_MS = 86_400_000;
const cn = (dn: string) => /(?:^|\n)CN=([^\n]+)/.exec(dn)?.[1] ?? dn.replace(/\n/g, ', ');

function describe(cert: X509Certificate, now: Date, base: Pick<CertificateStatus, 'source' | 'for' | 'trusted'>): CertificateStatus {
  const validTo = new Date(cert.validTo);
  const daysLeft = Math.floor((validTo.getTime() - now.getTime()) / DAY_MS);
  const state = validTo.getTime() <= now.getTime() ? 'expired' : daysLeft < EXPIRY_WARNING_DAYS ? 'expiring' : 'ok';
  return { ...base, subject: cn(cert.subject), issuer: cn(cert.issuer), validTo: validTo.toISOString(), daysLeft, state };
}

/** The certificate a TLS server presents (not verified: an expiring or self-signed one must still be read). */
export function peerCertificate(host: string, port: number, servername: string | undefined, timeoutMs: number): Promise<{ cert: X509Certificate; trusted: boolean }> {
  return new Promise((ok, fail) => {
    const socket = connect({ host, port, servername: servername && isIP(servername) === 0 ? servername : undefined, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    const timer = setTimeout(() => socket.destroy(new Error(`no TLS handshake within ${timeoutMs} ms`)), timeoutMs);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const cert = socket.getPeerX509Certificate();
      const trusted = socket.authorized;
      socket.end();
      if (cert) ok({ cert, trusted });
      else fail(new Error('the server sent no certificate'));
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      fail(err);
    });
  });
}

/** TLS facts of a rendered nginx.conf: certificate path, server name and HTTPS port. */
export function tlsFromNginxConf(text: string): { certPath: string; domain?: string; port: number } | undefined {
  const cert = /^\s*ssl_certificate\s+(\S+?);/m.exec(text)?.[1];
  if (!cert) return undefined;
  const port = Number(/^\s*listen\s+\S*?:?(\d+)\s+ssl\b/m.exec(text)?.[1] ?? 443);
  return { certPath: cert, domain: /^\s*server_name\s+(\S+?);/m.exec(text)?.[1], port };
}

export interface CertificateTargets {
  /** Gateways `status` probes (deployments' and the local stack's, source "up --local"). */
  gateways: Array<{ url: string; source: string }>;
  /** The local stack's nginx.conf, if any; deployments pair with deploy/nginx/nginx.conf. */
  localConf?: string;
}

type ConfTls = { path: string; certPath: string; domain?: string; port: number };

function readConf(path: string | undefined, cwd: string): ConfTls | undefined {
  if (!path) return undefined;
  const p = isAbsolute(path) ? path : resolve(cwd, path);
  if (!existsSync(p)) return undefined;
  const tls = tlsFromNginxConf(readFileSync(p, 'utf8'));
  return tls && { path: p, ...tls };
}

/** Every certificate status can find for these targets, each read once. */
export async function certificateStatuses(t: CertificateTargets, o: { cwd: string; now: Date; timeoutMs: number }): Promise<CertificateStatus[]> {
  const local = readConf(t.localConf, o.cwd);
  const deploy = deployNginxConfs(o.cwd).map((p) => readConf(p, o.cwd)).find(Boolean);
  const handshakes = new Map<string, { host: string; port: number; servername?: string; for: string }>();
  for (const g of t.gateways) {
    let u: URL;
    try {
      u = new URL(g.url);
    } catch {
      continue;
    }
    const host = u.hostname.replace(/^\[|\]$/g, '');
    // A plain-HTTP gateway URL whose rendered config serves HTTPS: ask its HTTPS port, by name.
    const conf = u.protocol === 'https:' ? undefined : g.source === 'up --local' ? local : deploy;
    if (u.protocol !== 'https:' && !conf) continue;
    const port = conf ? conf.port : Number(u.port || 443);
    const servername = conf?.domain ?? (isIP(host) ? undefined : host);
    handshakes.set(`${host}:${port}`, { host, port, servername, for: `gateway ${g.url} (${g.source})` });
  }
  const fromTls = [...handshakes.values()].map(async (h): Promise<CertificateStatus> => {
    const base = { source: `tls ${h.servername ?? h.host}:${h.port}`, for: h.for };
    try {
      const { cert, trusted } = await peerCertificate(h.host, h.port, h.servername, o.timeoutMs);
      return describe(cert, o.now, { ...base, trusted });
    } catch (err) {
      return { ...base, state: 'unreadable', error: (err as Error).message };
    }
  });
  // Deploy configs name paths on the gateway host: only files that lie here are read (the
  // handshake above covers the served one).
  const files = [...new Map([local, deploy].filter((c): c is ConfTls => !!c && existsSync(c.certPath)).map((c) => [c.certPath, c])).values()];
  const fromFiles = files.map((c): CertificateStatus => {
    const base = { source: c.certPath, for: `nginx.conf ${c.path}` };
    try {
      return describe(new X509Certificate(readFileSync(c.certPath)), o.now, base);
    } catch (err) {
      return { ...base, state: 'unreadable', error: `not a PEM certificate (${(err as Error).message})` };
    }
  });
  return [...(await Promise.all(fromTls)), ...fromFiles];
}

/** The rendered nginx.conf paths status looks at besides the local stack's. */
export const deployNginxConfs = (cwd: string) => [join(cwd, 'deploy', 'nginx', 'nginx.conf'), join(cwd, 'deploy', 'nginx.conf')];

/** An expired certificate makes the gateway unusable for every client: status exits 1 for it. */
export const certificateFailed = (c: CertificateStatus) => c.state === 'expired';

export function certificateLines(certs: CertificateStatus[]): string[] {
  return certs.map((c) => {
    const head = `certificate ${c.source} (${c.for})`;
    if (c.state === 'unreadable') return `${head}: unreadable: ${c.error}`;
    const when = `${c.subject}, expires ${c.validTo!.slice(0, 10)}`;
    const trust = c.trusted === false ? ', not trusted by this machine' : '';
    if (c.state === 'expired') return `${head}: EXPIRED ${-c.daysLeft!} day(s) ago (${when})${trust}`;
    if (c.state === 'expiring') return `${head}: WARNING ${c.daysLeft} day(s) left, renew now (${when})${trust}`;
    return `${head}: ${c.daysLeft} days left (${when})${trust}`;
  });
}
