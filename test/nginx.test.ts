import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { reloadNginx, startNginx, testNginxConfig, type NginxInstance } from '../src/adapters/nginx.js';
import { renderHostedAuthSnippet, renderNginxConf, type NginxConfOptions } from '../src/core/render.js';
import { ExternalError } from '../src/errors.js';
import { embed, freePort, makePki, nginxOrSkip, pool, startStandin, tempDir, writeFile, type Standin, stopAfterEach } from './helpers/gateway.js';

const { skip } = nginxOrSkip();
const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

const tmp = tempDir('embedctl-nginx-');
afterAll(() => tmp.cleanup());

let seq = 0;
const running = stopAfterEach();

async function standin(name: string, o?: Parameters<typeof startStandin>[1]): Promise<Standin> {
  const s = await startStandin(name, o);
  running.push(s);
  return s;
}

/** Renders a config into a fresh non-root prefix and starts nginx on a free loopback port. */
async function gateway(o: Omit<NginxConfOptions, 'listen'>): Promise<{ nginx: NginxInstance; confPath: string; prefix: string; write(o2: Omit<NginxConfOptions, 'listen'>): void }> {
  const prefix = join(tmp.dir, `gw-${++seq}`);
  const port = await freePort();
  const confPath = join(prefix, 'nginx.conf');
  const write = (o2: Omit<NginxConfOptions, 'listen'>) =>
    writeFile(confPath, renderNginxConf({ workerProcesses: 1, errorLog: 'error.log', accessLog: 'access.log', ...o2, listen: { host: '127.0.0.1', port } }));
  mkdirSync(prefix, { recursive: true });
  write(o);
  const nginx = await startNginx({ confPath, prefix });
  running.push(nginx);
  return { nginx, confPath, prefix, write };
}

describe.skipIf(skip)('nginx gateway (real nginx on loopback)', () => {
  it('passes nginx -t for every share, replica count, split key and hosted kind', async () => {
    const dir = join(tmp.dir, 'matrix');
    const auth = writeFile(join(tmp.dir, 'matrix-auth.conf'), renderHostedAuthSnippet('sk-matrix'), 0o600);
    const cases: Array<Omit<NginxConfOptions, 'listen'>> = [];
    for (const selfHostedPercent of [0, 1, 10, 25, 50, 99, 100]) {
      for (const replicas of [1, 2, 3]) {
        cases.push({
          selfHostedPercent,
          selfHosted: Array.from({ length: replicas }, (_, i) => `127.0.0.1:${8081 + i}`),
          hostedUrl: replicas === 2 ? 'http://127.0.0.1:9000/v1/embeddings' : 'https://api.jina.ai/v1/embeddings',
          splitKey: (['auto', 'tenant', 'api-key', 'request'] as const)[(selfHostedPercent + replicas) % 4],
          hostedAuthInclude: replicas === 3 ? auth : undefined,
          resolvers: ['127.0.0.1'],
        });
      }
    }
    for (const [i, c] of cases.entries()) {
      mkdirSync(dir + i, { recursive: true });
      const confPath = writeFile(join(dir + i, 'nginx.conf'), renderNginxConf({ ...c, listen: { host: '127.0.0.1', port: 18080 } }));
      await expect(testNginxConfig(confPath, dir + i), JSON.stringify(c)).resolves.toBeUndefined();
    }
  });

  it('reports nginx\'s own message when a config is invalid', async () => {
    const prefix = join(tmp.dir, 'bad');
    mkdirSync(prefix, { recursive: true });
    const good = renderNginxConf({ selfHosted: ['127.0.0.1:1'], hostedUrl: 'http://127.0.0.1:2', selfHostedPercent: 50, listen: { port: 18081 } });
    const confPath = writeFile(join(prefix, 'nginx.conf'), good.replace('least_conn;', 'least_conn;\n        bogus_directive on;'));
    const err = await testNginxConfig(confPath, prefix).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExternalError);
    expect((err as Error).message).toMatch(/unknown directive "bogus_directive"/);
  });

  it('spreads self-hosted requests across both replicas and labels who answered', async () => {
    const a = await standin('a', { delayMs: 5 });
    const b = await standin('b', { delayMs: 5 });
    const hosted = await standin('hosted');
    const { nginx } = await gateway({ selfHosted: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`], hostedUrl: `${hosted.url}/v1/embeddings`, selfHostedPercent: 100 });
    const answers = await pool(200, 8, () => embed(nginx.url));
    expect(answers.every((r) => r.status === 200 && r.backend === 'selfhosted')).toBe(true);
    expect(hosted.received).toHaveLength(0);
    // least_conn with equal latency: neither replica is starved.
    expect(a.received.length).toBeGreaterThan(40);
    expect(b.received.length).toBeGreaterThan(40);
    expect(a.received.length + b.received.length).toBe(200);
    const health = await fetch(`${nginx.url}/health`);
    expect(health.headers.get('x-embedctl-backend')).toBe('nginx');
    expect(await health.json()).toMatchObject({ status: 'ok', selfHostedPercent: 100 });
  });

  it('sends the configured share to hosted, keeps each key on one side, and only moves keys hosted -> self-hosted when raised', async () => {
    const self = await standin('self');
    const hosted = await standin('hosted');
    const opts = { selfHosted: [`127.0.0.1:${self.port}`], hostedUrl: `${hosted.url}/v1/embeddings`, selfHostedPercent: 10 };
    const gw = await gateway(opts);
    const keys = Array.from({ length: 1200 }, (_, i) => `tenant-${i}`);
    const sideAt = async () => (await pool(keys.length, 16, (i) => embed(gw.nginx.url, { 'x-tenant-id': keys[i]! }))).map((r) => r.backend);
    const at10 = await sideAt();
    const share10 = at10.filter((s) => s === 'selfhosted').length / keys.length;
    expect(share10).toBeGreaterThan(0.05);
    expect(share10).toBeLessThan(0.15);
    expect(hosted.received.length).toBe(at10.filter((s) => s === 'hosted').length);

    // Sticky: the same tenant lands on the same side every time.
    const again = await pool(40, 8, (i) => embed(gw.nginx.url, { 'x-tenant-id': keys[i % 4]! }));
    for (const [i, r] of again.entries()) expect(r.backend).toBe(at10[i % 4]);

    gw.write({ ...opts, selfHostedPercent: 25 });
    await reloadNginx({ confPath: gw.confPath, prefix: gw.prefix });
    const at25 = await sideAt();
    const share25 = at25.filter((s) => s === 'selfhosted').length / keys.length;
    expect(share25).toBeGreaterThan(0.2);
    expect(share25).toBeLessThan(0.3);
    // Every key that was self-hosted at 10 % is still self-hosted at 25 %.
    at10.forEach((s, i) => {
      if (s === 'selfhosted') expect(at25[i]).toBe('selfhosted');
    });
  });

  it('keys on the API key when there is no tenant header', async () => {
    const self = await standin('self');
    const hosted = await standin('hosted');
    const { nginx } = await gateway({ selfHosted: [`127.0.0.1:${self.port}`], hostedUrl: `${hosted.url}/v1/embeddings`, selfHostedPercent: 50 });
    const sides = await pool(60, 6, async (i) => (await embed(nginx.url, { authorization: `Bearer key-${i % 20}` })).backend);
    for (let i = 20; i < 60; i++) expect(sides[i]).toBe(sides[i % 20]);
    expect(new Set(sides).size).toBe(2);
  });

  it('falls back to hosted with zero failed requests when every self-hosted replica dies mid-load', async () => {
    const a = await standin('a', { delayMs: 2 });
    const b = await standin('b', { delayMs: 2 });
    const hosted = await standin('hosted');
    const { nginx } = await gateway({ selfHosted: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`], hostedUrl: `${hosted.url}/v1/embeddings`, selfHostedPercent: 100, sameModel: true });
    let killed = false;
    const answers = await pool(300, 10, async (i) => {
      if (i === 100 && !killed) {
        killed = true;
        await Promise.all([a.kill(), b.kill()]);
      }
      return embed(nginx.url, { 'x-tenant-id': `t${i}` }, `text ${i}`);
    });
    expect(answers.filter((r) => r.status !== 200)).toEqual([]);
    expect(answers.slice(0, 90).every((r) => r.backend === 'selfhosted')).toBe(true);
    const late = answers.slice(150);
    expect(late.every((r) => r.backend === 'hosted' && r.fallback === 'yes' && r.standin === 'hosted')).toBe(true);
    // The POST body is replayed intact to hosted.
    expect(JSON.parse(late[0]!.body).echo).toBe('text 150');
    expect(hosted.received.some((r) => r.body.includes('"text 299"'))).toBe(true);
  });

  it('falls back to hosted when a replica answers 503 (overloaded)', async () => {
    const busy = await standin('busy', { status: 503 });
    const hosted = await standin('hosted');
    const { nginx } = await gateway({ selfHosted: [`127.0.0.1:${busy.port}`], hostedUrl: `${hosted.url}/v1/embeddings`, selfHostedPercent: 100, sameModel: true });
    const r = await embed(nginx.url);
    expect(r).toMatchObject({ status: 200, backend: 'hosted', fallback: 'yes', standin: 'hosted' });
    expect(busy.received.length).toBeGreaterThanOrEqual(1);
  });

  it('injects the hosted API key from a 0600 snippet and never writes it into nginx.conf', async () => {
    const key = 'jina_SECRET_7f3a9c';
    const self = await standin('self');
    const hosted = await standin('hosted');
    const authPath = writeFile(join(tmp.dir, 'hosted-auth.conf'), renderHostedAuthSnippet(key), 0o600);
    const gw = await gateway({ selfHosted: [`127.0.0.1:${self.port}`], hostedUrl: `${hosted.url}/v1/embeddings`, selfHostedPercent: 0, hostedAuthInclude: authPath });
    const r = await embed(gw.nginx.url, { authorization: 'Bearer client-key' });
    expect(r).toMatchObject({ status: 200, backend: 'hosted', fallback: 'no' });
    expect(hosted.received[0]).toMatchObject({ authorization: `Bearer ${key}`, host: `127.0.0.1:${hosted.port}`, path: '/v1/embeddings' });
    expect(readFileSync(gw.confPath, 'utf8')).not.toContain(key);
    expect(statSync(authPath).mode & 0o777).toBe(0o600);
  });

  it.skipIf(!hasOpenssl)('verifies the hosted API over TLS with SNI and its Host header, and refuses a certificate it cannot trust', async () => {
    const pki = makePki(join(tmp.dir, 'pki'));
    const hosted = await standin('hosted', { tls: { key: pki.key, cert: pki.cert } });
    const self = await standin('self');
    const hostedUrl = `https://localhost:${hosted.port}/v1/embeddings`;
    const trusted = await gateway({ selfHosted: [`127.0.0.1:${self.port}`], hostedUrl, selfHostedPercent: 0, caCertPath: pki.caPath });
    const ok = await embed(trusted.nginx.url);
    expect(ok).toMatchObject({ status: 200, backend: 'hosted', standin: 'hosted' });
    expect(hosted.received[0]).toMatchObject({ servername: 'localhost', host: `localhost:${hosted.port}` });

    const untrusted = await gateway({ selfHosted: [`127.0.0.1:${self.port}`], hostedUrl, selfHostedPercent: 0, caCertPath: '/etc/ssl/certs/ca-certificates.crt' });
    const refused = await embed(untrusted.nginx.url);
    expect(refused.status).toBe(502);
    expect(hosted.received).toHaveLength(1);
    expect(readFileSync(join(untrusted.prefix, 'error.log'), 'utf8')).toMatch(/upstream SSL certificate verify error/);
  });

  it('a port already in use: ExternalError with nginx\'s bind message, nothing left running', async () => {
    const busy = await standin('busy');
    const prefix = join(tmp.dir, 'busy');
    mkdirSync(prefix, { recursive: true });
    const confPath = writeFile(join(prefix, 'nginx.conf'), renderNginxConf({ selfHosted: ['127.0.0.1:1'], hostedUrl: 'http://127.0.0.1:2', selfHostedPercent: 0, errorLog: 'stderr', accessLog: 'access.log', listen: { host: '127.0.0.1', port: busy.port } }));
    const err = (await startNginx({ confPath, prefix, timeoutMs: 3000 }).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(ExternalError);
    expect(err.message).toMatch(/nginx: exited at start: .*bind\(\) to 127\.0\.0\.1:\d+ failed \(98: Address already in use\)/);
  });

  it('answers in the OpenAI error shape when hosted is unreachable too', async () => {
    const self = await standin('self');
    await self.kill();
    const { nginx } = await gateway({ selfHosted: [`127.0.0.1:${self.port}`], hostedUrl: 'http://127.0.0.1:9/v1/embeddings', selfHostedPercent: 100, sameModel: true });
    const r = await embed(nginx.url);
    expect(r.status).toBe(502);
    expect(r.backend).toBe('nginx');
    expect(JSON.parse(r.body).error).toMatchObject({ type: 'upstream_unavailable' });
  });

  it('passes a multi-megabyte answer through intact (no temp files a worker could not write)', async () => {
    const self = await standin('self', { dimensions: 200_000 });
    const { nginx, prefix } = await gateway({ selfHosted: [`127.0.0.1:${self.port}`], hostedUrl: 'http://127.0.0.1:9/v1/embeddings', selfHostedPercent: 100 });
    const r = await embed(nginx.url);
    expect(r.status).toBe(200);
    expect(r.body.length).toBeGreaterThan(2_000_000);
    expect(JSON.parse(r.body).data[0].embedding).toHaveLength(200_000);
    expect(readFileSync(join(prefix, 'error.log'), 'utf8')).not.toMatch(/Permission denied|temporary file/);
  });

  it('answers 404 with a JSON pointer for other paths', async () => {
    const self = await standin('self');
    const { nginx } = await gateway({ selfHosted: [`127.0.0.1:${self.port}`], hostedUrl: 'http://127.0.0.1:9/v1/embeddings', selfHostedPercent: 100 });
    const res = await fetch(`${nginx.url}/v2/whatever`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { type: string } }).error.type).toBe('not_found');
  });
});
