import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderGatewayCallers } from '../src/core/gateway-callers.js';
import { formatGatewayKeys, parseGatewayKeys, renderGatewayKeysMap, type GatewayKey } from '../src/core/gateway-keys.js';
import type { NginxConfOptions } from '../src/core/render.js';
import { embed, nginxOrSkip, startGateway, startStandin, tempDir, writeFile, type Standin, type TestGateway, stopAfterEach } from './helpers/gateway.js';
import { startRuntime, type RuntimeHandle } from './helpers/runtime.js';

/**
 * Issue 17: the gateway names the caller to the runtime (X-Embedctl-Caller, believed only from
 * --trusted-proxy) and holds each caller's requests per minute whichever side answers. Real nginx,
 * a real runtime and a hosted stand-in, all on 127.0.0.1.
 */

const { skip } = nginxOrSkip();
const tmp = tempDir('embedctl-nginx-callers-');
const running = stopAfterEach();

const RPM = 5;
// One caller per scenario, so each starts with a full quota on the shared runtime as well.
const TENANTS = ['tenant-hosted', 'tenant-self', 'tenant-mixed', 'tenant-fallback', 'tenant-other'] as const;
const keyOf = (name: string) => `ek_${name.replace(/-/g, '_')}_0123456789`;
const KEYS: GatewayKey[] = [
  ...TENANTS.map((name) => ({ role: 'client' as const, key: keyOf(name), name, requestsPerMinute: RPM })),
  { role: 'client', key: 'ek_anonymous_client_0123456789' },
  // No limit at the gateway; the runtime holds it to a tokens-per-minute quota nginx cannot count.
  { role: 'client', key: keyOf('tenant-tokens'), name: 'tenant-tokens' },
];
const OPS_KEY = 'sk-ops-admin-0123456789';

let runtime: RuntimeHandle;
beforeAll(async () => {
  if (skip) return;
  // The runtime's keys file names the same callers with the same limit: direct callers are held to
  // it there, and a caller the gateway names is counted under that name.
  const keysYaml = [
    'keys:',
    ...TENANTS.map((n) => `  - {name: ${n}, key: ${keyOf(n)}-direct, requestsPerMinute: ${RPM}}`),
    `  - {name: tenant-tokens, key: ${keyOf('tenant-tokens')}-direct, tokensPerMinute: 1}`,
    `  - {name: ops, key: ${OPS_KEY}, scopes: [admin]}`,
  ].join('\n');
  const keysFile = writeFile(join(tmp.dir, 'runtime-keys.yaml'), `${keysYaml}\n`, 0o600);
  runtime = await startRuntime({ args: ['--keys-file', keysFile, '--trusted-proxy', '127.0.0.1'] });
}, 60_000);
afterAll(async () => {
  await runtime?.stop();
  tmp.cleanup();
});

async function gateway(o: Partial<Omit<NginxConfOptions, 'listen'>>, selfHosted?: Standin): Promise<{ gw: TestGateway; hosted: Standin }> {
  const hosted = await startStandin('hosted');
  running.push(hosted);
  const keys = parseGatewayKeys(formatGatewayKeys(KEYS));
  const snippets = renderGatewayCallers(keys);
  const id = `${hosted.port}`;
  const gw = await startGateway(tmp.dir, {
    selfHosted: [`127.0.0.1:${selfHosted?.port ?? runtime.port}`],
    hostedUrl: `${hosted.url}/v1/embeddings`,
    selfHostedPercent: 0,
    clientAuth: {
      keysInclude: writeFile(join(tmp.dir, `keys-${id}.conf`), renderGatewayKeysMap(keys), 0o600),
      required: true,
      callers: {
        httpInclude: writeFile(join(tmp.dir, `callers-${id}.conf`), snippets.http, 0o600),
        locationInclude: writeFile(join(tmp.dir, `limits-${id}.conf`), snippets.location, 0o600),
      },
    },
    ...o,
  });
  running.push(gw);
  return { gw, hosted };
}

const as = (name: string, extra: Record<string, string> = {}) => ({ authorization: `Bearer ${keyOf(name)}`, ...extra });

async function runtimeCallers(): Promise<Record<string, { requests: number }>> {
  const res = await fetch(`${runtime.url}/admin/stats`, { headers: { authorization: `Bearer ${OPS_KEY}` } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { callers: Record<string, { requests: number }> }).callers;
}

/** N+1 requests in a row: the first N answered by `side`, the last refused at the gateway. */
async function spend(base: string, name: string) {
  const answers = [];
  for (let i = 0; i <= RPM; i++) answers.push(await embed(base, as(name), `${name} ${i}`));
  return answers;
}

function expectRefused(a: Awaited<ReturnType<typeof embed>>, name: string) {
  expect(a.status).toBe(429);
  expect(a.backend).toBe('nginx');
  const err = JSON.parse(a.body).error;
  expect(err).toMatchObject({ code: 'rate_limit_exceeded', type: 'rate_limit_error' });
  expect(err.message).toContain(`caller ${name}: ${RPM} requests per minute`);
}

describe.skipIf(skip)('gateway callers and per-caller limits (real nginx + real runtime)', () => {
  it(`hosted side: ${RPM} requests a minute pass, request ${RPM + 1} gets 429 with the OpenAI rate-limit headers; hosted saw ${RPM}`, async () => {
    const { gw, hosted } = await gateway({ selfHostedPercent: 0 });
    const answers = await spend(gw.nginx.url, 'tenant-hosted');
    expect(answers.slice(0, RPM).map((a) => [a.status, a.backend])).toEqual(Array(RPM).fill([200, 'hosted']));
    expectRefused(answers[RPM]!, 'tenant-hosted');
    expect(hosted.received).toHaveLength(RPM);
    // The headers, on a fresh request.
    const res = await fetch(`${gw.nginx.url}/v1/embeddings`, { method: 'POST', headers: { ...as('tenant-hosted'), 'content-type': 'application/json' }, body: '{"input":"x"}' });
    expect(res.status).toBe(429);
    expect(res.headers.get('x-ratelimit-limit-requests')).toBe(String(RPM));
    expect(res.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(res.headers.get('x-ratelimit-reset-requests')).toBe(`${60 / RPM}s`);
    expect(res.headers.get('retry-after')).toBe(String(60 / RPM));
    // Another caller, and a caller without a name or limit, are not held by it.
    expect((await embed(gw.nginx.url, as('tenant-other'))).status).toBe(200);
    expect((await embed(gw.nginx.url, { authorization: 'Bearer ek_anonymous_client_0123456789' })).status).toBe(200);
  });

  it(`self-hosted side: the runtime counts the requests under the caller's name; request ${RPM + 1} gets 429 at the gateway`, async () => {
    const before = (await runtimeCallers())['tenant-self']?.requests ?? 0;
    const { gw, hosted } = await gateway({ selfHostedPercent: 100 });
    const answers = await spend(gw.nginx.url, 'tenant-self');
    expect(answers.slice(0, RPM).map((a) => [a.status, a.backend])).toEqual(Array(RPM).fill([200, 'selfhosted']));
    expectRefused(answers[RPM]!, 'tenant-self');
    expect(hosted.received).toHaveLength(0);
    expect((await runtimeCallers())['tenant-self']!.requests - before).toBe(RPM);
  });

  it('split per request: the quota is one for both sides together', async () => {
    const before = (await runtimeCallers())['tenant-mixed']?.requests ?? 0;
    const { gw, hosted } = await gateway({ selfHostedPercent: 50, splitKey: 'request' });
    const answers = await spend(gw.nginx.url, 'tenant-mixed');
    expect(answers.slice(0, RPM).every((a) => a.status === 200)).toBe(true);
    expectRefused(answers[RPM]!, 'tenant-mixed');
    const self = (await runtimeCallers())['tenant-mixed']?.requests ?? 0;
    expect(hosted.received.length + (self - before)).toBe(RPM);
  });

  it('a request that falls back from a failing self-hosted replica to hosted is counted once', async () => {
    const broken = await startStandin('broken', { status: 503 });
    running.push(broken);
    const { gw, hosted } = await gateway({ selfHostedPercent: 100, sameModel: true }, broken);
    const answers = await spend(gw.nginx.url, 'tenant-fallback');
    expect(answers.slice(0, RPM).map((a) => [a.status, a.backend, a.fallback])).toEqual(Array(RPM).fill([200, 'hosted', 'yes']));
    expectRefused(answers[RPM]!, 'tenant-fallback');
    expect(hosted.received).toHaveLength(RPM);
  });

  it("a runtime's quota refusal (tokens per minute) reaches the client as a 429: never retried on the other replica or on hosted, never held against the replica", async () => {
    // Two replicas (the same runtime twice) with a hosted side serving the same model: before the
    // quota status, the runtime's 429 went to the next replica, then to hosted (the quota was
    // bypassed) and counted as a failure of both replicas.
    const { gw, hosted } = await gateway({ selfHosted: [`127.0.0.1:${runtime.port}`, `127.0.0.1:${runtime.port}`], selfHostedPercent: 100, sameModel: true, maxFails: 1 });
    const first = await embed(gw.nginx.url, as('tenant-tokens'), 'tokens one');
    expect([first.status, first.backend]).toEqual([200, 'selfhosted']);
    // The first request put the caller over its 1 token a minute (debited once its size is known).
    const res = await fetch(`${gw.nginx.url}/v1/embeddings`, { method: 'POST', headers: { ...as('tenant-tokens'), 'content-type': 'application/json' }, body: '{"input":"tokens two"}' });
    const body = await res.text();
    expect(res.status).toBe(429);
    expect(res.headers.get('x-embedctl-backend')).toBe('selfhosted');
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(res.headers.get('x-ratelimit-limit-tokens')).toBe('1');
    expect(JSON.parse(body).error).toMatchObject({ code: 'rate_limit_exceeded', type: 'rate_limit_error' });
    expect(JSON.parse(body).error.message).toContain('refused caller tenant-tokens');
    expect(hosted.received).toHaveLength(0);
    // Neither replica was marked down (max_fails 1): other callers keep being served self-hosted.
    for (let i = 0; i < 4; i++) expect(await embed(gw.nginx.url, as('tenant-other'), `other ${i}`)).toMatchObject({ status: 200, backend: 'selfhosted', fallback: null });
    expect(hosted.received).toHaveLength(0);
    // The access log shows one attempt on one replica for the refused request, not a retry.
    const log = readFileSync(join(gw.prefix, 'access.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { status: number; upstream_status: string });
    const refused = log.filter((e) => e.status === 429);
    expect(refused.map((e) => e.upstream_status)).toEqual(['472']);
  });

  it('a client cannot name itself: its own X-Embedctl-Caller is replaced by the name of its key, or dropped', async () => {
    const before = await runtimeCallers();
    const { gw } = await gateway({ selfHostedPercent: 100 });
    const forged = await embed(gw.nginx.url, as('tenant-other', { 'x-embedctl-caller': 'ops' }));
    expect(forged).toMatchObject({ status: 200, backend: 'selfhosted' });
    const after = await runtimeCallers();
    expect(after['tenant-other']!.requests - (before['tenant-other']?.requests ?? 0)).toBe(1);
    expect(after.ops?.requests ?? 0).toBe(before.ops?.requests ?? 0);
    // An unnamed gateway key sends no caller: the runtime then wants its own credentials.
    const unnamed = await embed(gw.nginx.url, { authorization: 'Bearer ek_anonymous_client_0123456789', 'x-embedctl-caller': 'ops' });
    expect(unnamed.status).toBe(401);
    expect((await runtimeCallers()).ops?.requests ?? 0).toBe(before.ops?.requests ?? 0);
  });
});

describe('gateway keys with names and limits', () => {
  it('round-trips name=, rpm=, burst= and refuses bad lines naming the line', () => {
    const text = 'client ek_team_a_0123456789abc name=team-a rpm=600 burst=50\noperator ek_ops_0123456789abcdef\n';
    const keys = parseGatewayKeys(text);
    expect(keys).toEqual([
      { role: 'client', key: 'ek_team_a_0123456789abc', name: 'team-a', requestsPerMinute: 600, requestsBurst: 50 },
      { role: 'operator', key: 'ek_ops_0123456789abcdef' },
    ]);
    expect(parseGatewayKeys(formatGatewayKeys(keys))).toEqual(keys);
    const bad: Array<[string, RegExp]> = [
      ['client ek_team_a_0123456789abc rpm=5', /line 1: a limit needs name=/],
      ['client ek_team_a_0123456789abc name=a b', /line 1: after the key come name=/],
      ['client ek_team_a_0123456789abc name=a rpm=0', /line 1: rpm must be a whole number/],
      ['client ek_team_a_0123456789abc name=a"b', /line 1: name must be/],
    ];
    for (const [line, re] of bad) expect(() => parseGatewayKeys(line)).toThrow(re);
  });

  it('one zone per distinct limit; a caller with two keys shares one quota and must not have two limits', () => {
    const s = renderGatewayCallers([
      { role: 'client', key: 'ek_a1_0123456789abcdef', name: 'a', requestsPerMinute: 60 },
      { role: 'client', key: 'ek_a2_0123456789abcdef', name: 'a', requestsPerMinute: 60 },
      { role: 'client', key: 'ek_b1_0123456789abcdef', name: 'b', requestsPerMinute: 60, requestsBurst: 1 },
      { role: 'client', key: 'ek_c1_0123456789abcdef', name: 'c' },
    ]);
    expect(s.limits).toEqual({ a: { requestsPerMinute: 60, burst: 60 }, b: { requestsPerMinute: 60, burst: 1 } });
    expect(s.location.split('\n').filter((l) => l.startsWith('limit_req '))).toEqual(['limit_req zone=embedctl_rpm_60_60 burst=59 nodelay;', 'limit_req zone=embedctl_rpm_60_1;']);
    expect(s.http).toContain('"Bearer ek_c1_0123456789abcdef" "c";');
    expect(() =>
      renderGatewayCallers([
        { role: 'client', key: 'ek_a1_0123456789abcdef', name: 'a', requestsPerMinute: 60 },
        { role: 'client', key: 'ek_a2_0123456789abcdef', name: 'a', requestsPerMinute: 30 },
      ]),
    ).toThrow(/caller "a" has two different limits/);
  });
});
