import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatGatewayKeys, parseGatewayKeys, renderGatewayKeysMap } from '../src/core/gateway-keys.js';
import { renderHostedAuthSnippet, type NginxConfOptions } from '../src/core/render.js';
import { embed, nginxOrSkip, pool, startGateway, startStandin, tempDir, writeFile, type Standin, type TestGateway, stopAfterEach } from './helpers/gateway.js';

const { skip } = nginxOrSkip();
const tmp = tempDir('embedctl-nginx-auth-');
afterAll(() => tmp.cleanup());
const running = stopAfterEach();

const CLIENT = 'ek_client_0123456789abcdef';
const OPERATOR = 'ek_operator_0123456789abcdef';
const HOSTED_KEY = 'sk-hosted-SECRET-42';

async function setup(o: Partial<Omit<NginxConfOptions, 'listen'>> & { required?: boolean } = {}): Promise<{ gw: TestGateway; self: Standin; hosted: Standin }> {
  const self = await startStandin('self');
  const hosted = await startStandin('hosted');
  running.push(self, hosted);
  const keys = parseGatewayKeys(formatGatewayKeys([{ role: 'client', key: CLIENT }, { role: 'operator', key: OPERATOR }]));
  const keysInclude = writeFile(join(tmp.dir, `keys-${self.port}.conf`), renderGatewayKeysMap(keys), 0o600);
  const hostedAuthInclude = writeFile(join(tmp.dir, `hosted-${self.port}.conf`), renderHostedAuthSnippet(HOSTED_KEY), 0o600);
  const { required = true, ...rest } = o;
  const gw = await startGateway(tmp.dir, {
    selfHosted: [`127.0.0.1:${self.port}`],
    hostedUrl: `${hosted.url}/v1/embeddings`,
    selfHostedPercent: 0,
    clientAuth: { keysInclude, required },
    hostedAuthInclude,
    ...rest,
  });
  running.push(gw);
  return { gw, self, hosted };
}

const bearer = (k: string) => ({ authorization: `Bearer ${k}` });

describe.skipIf(skip)('gateway authentication (real nginx)', () => {
  it('without a client key: 401 in the OpenAI error shape, and hosted is never contacted', async () => {
    const { gw, self, hosted } = await setup({ selfHostedPercent: 50, sameModel: true });
    const answers = await pool(40, 4, (i) => embed(gw.nginx.url, i % 2 ? {} : bearer('ek_wrong_key_0123456789abc'), `x${i}`));
    for (const r of answers) {
      expect(r.status).toBe(401);
      expect(r.backend).toBe('nginx');
      expect(JSON.parse(r.body).error).toMatchObject({ code: 'invalid_api_key' });
    }
    expect(hosted.received).toHaveLength(0);
    expect(self.received).toHaveLength(0);
    // A key sent as a tenant header or in the body does not count.
    expect((await embed(gw.nginx.url, { 'x-tenant-id': CLIENT })).status).toBe(401);
    expect(hosted.received).toHaveLength(0);
  });

  it('a client key: hosted gets the injected hosted key, never the client\'s key; the keys stay out of nginx.conf', async () => {
    const { gw, hosted } = await setup();
    const r = await embed(gw.nginx.url, bearer(CLIENT));
    expect(r).toMatchObject({ status: 200, backend: 'hosted' });
    expect(hosted.received[0]!.authorization).toBe(`Bearer ${HOSTED_KEY}`);
    const conf = readFileSync(gw.confPath, 'utf8');
    for (const secret of [CLIENT, OPERATOR, HOSTED_KEY]) expect(conf).not.toContain(secret);
    expect(statSync(join(tmp.dir, readdirKeys(gw.confPath))).mode & 0o777).toBe(0o600);
  });

  it('without a hosted key to inject, the caller\'s gateway key is not passed on to hosted', async () => {
    const { gw, hosted } = await setup({ hostedAuthInclude: undefined });
    expect((await embed(gw.nginx.url, bearer(CLIENT))).status).toBe(200);
    expect(hosted.received[0]!.authorization ?? '').toBe('');
  });

  it('the operator route pins a side whatever the split; clients may not use it', async () => {
    const { gw, self, hosted } = await setup({ selfHostedPercent: 0 });
    const pinnedSelf = await pool(20, 4, () => embed(gw.nginx.url, { ...bearer(OPERATOR), 'x-embedctl-route': 'self-hosted' }));
    expect(pinnedSelf.every((r) => r.status === 200 && r.backend === 'selfhosted' && r.standin === 'self')).toBe(true);
    expect(hosted.received).toHaveLength(0);
    expect(self.received).toHaveLength(20);

    const refused = await embed(gw.nginx.url, { ...bearer(CLIENT), 'x-embedctl-route': 'self-hosted' });
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body).error.code).toBe('route_forbidden');
    expect((await embed(gw.nginx.url, { ...bearer(OPERATOR), 'x-embedctl-route': 'sideways' })).status).toBe(403);
    expect(self.received).toHaveLength(20);

    gw.write({ selfHosted: [`127.0.0.1:${self.port}`], hostedUrl: `${hosted.url}/v1/embeddings`, selfHostedPercent: 100, clientAuth: { keysInclude: keysPath(self), required: true } });
    const { reloadNginx } = await import('../src/adapters/nginx.js');
    await reloadNginx({ confPath: gw.confPath, prefix: gw.prefix });
    const pinnedHosted = await embed(gw.nginx.url, { ...bearer(OPERATOR), 'x-embedctl-route': 'hosted' });
    expect(pinnedHosted).toMatchObject({ status: 200, backend: 'hosted', fallback: 'no' });
  });

  it('a pinned self-hosted request never falls back, even when the model is the same', async () => {
    const { gw, self, hosted } = await setup({ selfHostedPercent: 100, sameModel: true });
    self.setStatus(500);
    const pinned = await embed(gw.nginx.url, { ...bearer(OPERATOR), 'x-embedctl-route': 'self-hosted' });
    expect(pinned.status).toBe(503);
    expect(JSON.parse(pinned.body).error.message).toMatch(/X-Embedctl-Route pins it to self-hosted/);
    expect(hosted.received).toHaveLength(0);
    // The same failure for an ordinary client falls back (same model declared).
    expect(await embed(gw.nginx.url, bearer(CLIENT))).toMatchObject({ status: 200, backend: 'hosted', fallback: 'yes' });
  });

  it('optional keys (a loopback stack): callers without a key are clients, operators still pin', async () => {
    const { gw } = await setup({ required: false, selfHostedPercent: 0 });
    expect(await embed(gw.nginx.url)).toMatchObject({ status: 200, backend: 'hosted' });
    expect((await embed(gw.nginx.url, { 'x-embedctl-route': 'self-hosted' })).status).toBe(403);
    expect(await embed(gw.nginx.url, { ...bearer(OPERATOR), 'x-embedctl-route': 'self-hosted' })).toMatchObject({ status: 200, backend: 'selfhosted' });
  });

  it('refuses a body over the runtime\'s limit with 413 before contacting anyone', async () => {
    const { gw, self, hosted } = await setup({ clientMaxBodySize: '64k', selfHostedPercent: 100 });
    const res = await fetch(`${gw.nginx.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json', ...bearer(CLIENT) }, body: JSON.stringify({ input: 'x'.repeat(70_000) }) });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('request_too_large');
    expect(self.received.length + hosted.received.length).toBe(0);
    // Under the limit but over the in-memory buffer: buffered to a temp file, replayed intact.
    const ok = await embed(gw.nginx.url, bearer(CLIENT), 'y'.repeat(60_000));
    expect(ok.status).toBe(200);
    expect(JSON.parse(self.received[0]!.body).input).toHaveLength(60_000);
  });
});

function keysPath(self: Standin): string {
  return join(tmp.dir, `keys-${self.port}.conf`);
}

function readdirKeys(confPath: string): string {
  return /include (\S+keys-\d+\.conf);/.exec(readFileSync(confPath, 'utf8'))![1]!.split('/').pop()!;
}
