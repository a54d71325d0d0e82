import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultDeployConfig } from '../src/core/deploy-config.js';
import { renderDeploy, renderUserData } from '../src/core/render.js';
import { runCli } from './helpers/cli.js';
import { freePort, makePki, nginxOrSkip, startGateway, startStandin, tempDir, stopAfterEach } from './helpers/gateway.js';

const { skip } = nginxOrSkip();
const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
const tmp = tempDir('embedctl-nginx-tls-');
afterAll(() => tmp.cleanup());
const running = stopAfterEach();

const DOMAIN = 'embed.example.com';

function httpsPost(port: number, ca: string, body: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      // Connect to loopback, verify the certificate as embed.example.com against the test CA.
      { host: '127.0.0.1', port, servername: DOMAIN, ca, method: 'POST', path: '/v1/embeddings', headers: { host: DOMAIN, 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe.skipIf(skip || !hasOpenssl)('TLS at the gateway (real nginx, a CA made in the test)', () => {
  it('render --tls-cert/--tls-key/--domain: nginx -t passes, the key is referenced by path and never copied', async () => {
    const pki = makePki(join(tmp.dir, 'render-pki'), DOMAIN);
    const r = await runCli(['render', '--allow-demo-model', '--tls-cert', pki.certPath, '--tls-key', pki.keyPath, '--domain', DOMAIN, '--hsts', '--json'], { cwd: tmp.dir, env: {} });
    expect(r.code, r.stderr).toBe(0);
    const doc = r.json<{ nginxCheck: { status: string; note?: string }; outDir: string }>();
    expect(doc.nginxCheck).toEqual({ status: 'passed' });
    const conf = readFileSync(join(doc.outDir, 'nginx', 'nginx.conf'), 'utf8');
    expect(conf).toContain(`ssl_certificate_key ${pki.keyPath};`);
    expect(conf).toMatch(/listen 0\.0\.0\.0:443 ssl http2;/);
    expect(conf).toContain('ssl_protocols TLSv1.2 TLSv1.3;');
    expect(conf).toContain(`return 308 https://${DOMAIN}$request_uri;`);
    const compose = readFileSync(join(doc.outDir, 'docker-compose.yml'), 'utf8');
    expect(compose).toContain(`- ${pki.keyPath}:${pki.keyPath}:ro`);
    // The private key's text appears in no rendered file.
    const keyBody = pki.key.split('\n')[1]!;
    for (const f of ['nginx/nginx.conf', 'docker-compose.yml', 'user-data.sh']) expect(readFileSync(join(doc.outDir, f), 'utf8')).not.toContain(keyBody);
  });

  it('a missing --domain or half a pair is a usage error naming the flag', async () => {
    const a = await runCli(['render', '--dry-run', '--tls-cert', '/x/c.pem', '--tls-key', '/x/k.pem'], { cwd: tmp.dir, env: {} });
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/--domain/);
    const b = await runCli(['render', '--dry-run', '--tls-cert', '/x/c.pem', '--domain', DOMAIN], { cwd: tmp.dir, env: {} });
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/--tls-key/);
    const le = await runCli(['render', '--dry-run', '--json', '--tls', 'letsencrypt', '--domain', DOMAIN, '--email', 'ops@example.com'], { cwd: tmp.dir, env: {} });
    expect(le.code, le.stderr).toBe(0);
    // Let's Encrypt on the instance: certbot, its renewal timer and a reload hook in user data.
    const script = renderUserData(defaultDeployConfig({ tls: 'letsencrypt', domain: DOMAIN, email: 'ops@example.com' }));
    expect(script).toContain(`certbot certonly --standalone --non-interactive --agree-tos --keep-until-expiring -m ops@example.com -d ${DOMAIN}`);
    expect(script).toContain('systemctl enable --now certbot.timer');
    expect(script).toMatch(/renewal-hooks\/deploy\/embedctl-nginx-reload\.sh[\s\S]*docker compose exec -T gateway nginx -s reload/);
    const path = join(tmp.dir, 'le-user-data.sh');
    writeFileSync(path, script);
    execFileSync('bash', ['-n', path]);
    const nginx = renderDeploy(defaultDeployConfig({ tls: 'letsencrypt', domain: DOMAIN, email: 'ops@example.com' })).find((f) => f.path === 'nginx/nginx.conf')!.content;
    expect(nginx).toContain(`ssl_certificate /etc/letsencrypt/live/${DOMAIN}/fullchain.pem;`);
  });

  it('an HTTPS request through the local gateway succeeds with the CA; HTTP redirects; HSTS; HTTP/2 offered', async () => {
    const pki = makePki(join(tmp.dir, 'pki'), DOMAIN);
    const self = await startStandin('self');
    running.push(self);
    const httpsPort = await freePort();
    const gw = await startGateway(tmp.dir, {
      selfHosted: [`127.0.0.1:${self.port}`],
      hostedUrl: 'http://127.0.0.1:9/v1/embeddings',
      selfHostedPercent: 100,
      tls: { certPath: pki.certPath, keyPath: pki.keyPath, domain: DOMAIN, port: httpsPort, hsts: true },
    });
    running.push(gw);
    const ca = readFileSync(pki.caPath, 'utf8');
    const r = await httpsPost(httpsPort, ca, JSON.stringify({ input: 'over tls' }));
    expect(r.status).toBe(200);
    expect(r.headers['x-embedctl-backend']).toBe('selfhosted');
    expect(r.headers['strict-transport-security']).toMatch(/max-age=63072000/);
    expect(JSON.parse(r.body).echo).toBe('over tls');
    // Without the CA the certificate is refused.
    await expect(httpsPost(httpsPort, '', '{}')).rejects.toThrow(/self.signed|unable to (get|verify)/i);
    // Plain HTTP: /health still answers (container health check), everything else is redirected.
    const plain = await fetch(`${gw.nginx.url}/v1/embeddings`, { method: 'POST', body: '{}', redirect: 'manual' });
    expect(plain.status).toBe(308);
    expect(plain.headers.get('location')).toBe(`https://${DOMAIN}:${httpsPort}/v1/embeddings`);
    expect((await fetch(`${gw.nginx.url}/health`)).status).toBe(200);
    // Modern protocols only, HTTP/2 by ALPN.
    const alpn = await new Promise<string | false>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: httpsPort, servername: DOMAIN, ca, ALPNProtocols: ['h2', 'http/1.1'] }, () => {
        resolve(s.alpnProtocol ?? false);
        s.end();
      });
      s.on('error', reject);
    });
    expect(alpn).toBe('h2');
    await expect(
      new Promise((resolve, reject) => {
        const s = connect({ host: '127.0.0.1', port: httpsPort, servername: DOMAIN, ca, maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }, () => resolve(s.getProtocol()));
        s.on('error', reject);
      }),
    ).rejects.toThrow();
  });
});
