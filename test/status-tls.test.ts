import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { certificateStatuses, tlsFromNginxConf } from '../src/commands/status-tls.js';
import { defaultDeployConfig } from '../src/core/deploy-config.js';
import { renderDeploy } from '../src/core/render.js';
import { runCli } from './helpers/cli.js';
import { freePort, nginxOrSkip, startGateway, startStandin, tempDir, stopAfterEach } from './helpers/gateway.js';

/** Issue 18: `status` shows the gateway certificate's expiry, warning under 14 days. */

const { skip } = nginxOrSkip();
const tmp = tempDir('embedctl-status-tls-');
afterAll(() => tmp.cleanup());
const running = stopAfterEach();

const DOMAIN = 'embed.example.com';
const DAY = 86_400_000;

/** A self-signed pair valid for `days` days from now (openssl). */
function selfSigned(days: number) {
  const dir = join(tmp.dir, `pki-${days}-${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(dir);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-days', String(days), '-subj', `/CN=${DOMAIN}`, '-addext', `subjectAltName=DNS:${DOMAIN}`], { cwd: dir, stdio: 'pipe' });
  return { certPath: join(dir, 'cert.pem'), keyPath: join(dir, 'key.pem') };
}

describe.skipIf(skip)('status: certificate expiry (real nginx serving a self-signed pair)', () => {
  it('reads the served certificate by TLS handshake and the file the rendered nginx.conf names: days left, a warning under 14 days, exit 1 once expired', async () => {
    const pki = selfSigned(90);
    const self = await startStandin('self');
    const hosted = await startStandin('hosted');
    running.push(self, hosted);
    const httpsPort = await freePort();
    const gw = await startGateway(tmp.dir, {
      selfHosted: [`127.0.0.1:${self.port}`],
      hostedUrl: `${hosted.url}/v1/embeddings`,
      selfHostedPercent: 0,
      tls: { certPath: pki.certPath, keyPath: pki.keyPath, domain: DOMAIN, port: httpsPort },
    });
    running.push(gw);
    // The local stack as `up --local` records it: a plain-HTTP gateway URL and its nginx.conf.
    const cwd = join(tmp.dir, 'project');
    mkdirSync(join(cwd, '.embedctl'), { recursive: true });
    writeFileSync(join(cwd, '.embedctl', 'local.json'), JSON.stringify({ gateway: gw.nginx.url, nginx: { confPath: gw.confPath } }));

    const now = new Date();
    const r = await runCli(['status', '--json'], { cwd, now: () => now });
    expect(r.code, r.stderr).toBe(0);
    const certs = r.json<any>().certificates;
    expect(certs).toHaveLength(2);
    const [served, file] = certs;
    expect(served).toMatchObject({ source: `tls ${DOMAIN}:${httpsPort}`, subject: DOMAIN, state: 'ok', trusted: false, daysLeft: 89 });
    expect(file).toMatchObject({ source: pki.certPath, subject: DOMAIN, state: 'ok', daysLeft: 89 });
    expect(served.validTo).toBe(file.validTo);
    const text = await runCli(['status'], { cwd, now: () => now });
    expect(text.stdout).toContain(`certificate tls ${DOMAIN}:${httpsPort} (gateway ${gw.nginx.url} (up --local)): 89 days left (${DOMAIN}, expires ${served.validTo.slice(0, 10)}), not trusted by this machine`);

    // 80 days on: 9 days left is a warning, not a failure.
    const later = await runCli(['status'], { cwd, now: () => new Date(now.getTime() + 80 * DAY) });
    expect(later.code).toBe(0);
    expect(later.stdout).toMatch(new RegExp(`certificate tls ${DOMAIN.replace(/\./g, '\\.')}:${httpsPort} .*: WARNING 9 day\\(s\\) left, renew now`));
    // 91 days on: expired, and status exits 1.
    const expired = await runCli(['status', '--json'], { cwd, now: () => new Date(now.getTime() + 91 * DAY) });
    expect(expired.code).toBe(1);
    expect(expired.json<any>().certificates.map((c: { state: string }) => c.state)).toEqual(['expired', 'expired']);
  });
});

describe('status-tls', () => {
  it('an https gateway URL is read by handshake (SNI from its host name); an unreachable one is reported, not thrown', async () => {
    const pki = selfSigned(10);
    const server = createServer({ cert: readFileSync(pki.certPath), key: readFileSync(pki.keyPath) }, (_q, s) => s.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const certs = await certificateStatuses(
        { gateways: [{ url: `https://127.0.0.1:${port}`, source: 'deployment main' }, { url: `https://127.0.0.1:${await freePort()}`, source: 'deployment dead' }] },
        { cwd: tmp.dir, now: new Date(), timeoutMs: 3000 },
      );
      expect(certs[0]).toMatchObject({ state: 'expiring', daysLeft: 9, subject: DOMAIN, for: `gateway https://127.0.0.1:${port} (deployment main)` });
      expect(certs[1]).toMatchObject({ state: 'unreadable', error: expect.stringContaining('ECONNREFUSED') });
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('finds the certificate, server name and HTTPS port in what render writes', () => {
    const conf = renderDeploy(defaultDeployConfig({ tlsCert: '/etc/embedctl/tls/fullchain.pem', tlsKey: '/etc/embedctl/tls/privkey.pem', domain: DOMAIN, httpsPort: 8443 })).find((f) => f.path === 'nginx/nginx.conf')!.content;
    expect(tlsFromNginxConf(conf)).toEqual({ certPath: '/etc/embedctl/tls/fullchain.pem', domain: DOMAIN, port: 8443 });
    expect(tlsFromNginxConf(renderDeploy(defaultDeployConfig()).find((f) => f.path === 'nginx/nginx.conf')!.content)).toBeUndefined();
    // A deploy config beside a project whose certificate lies on the gateway host: no file line.
    const cwd = join(tmp.dir, 'deploy-only');
    mkdirSync(join(cwd, 'deploy', 'nginx'), { recursive: true });
    writeFileSync(join(cwd, 'deploy', 'nginx', 'nginx.conf'), conf);
    return expect(certificateStatuses({ gateways: [] }, { cwd, now: new Date(), timeoutMs: 1000 })).resolves.toEqual([]);
  });
});


