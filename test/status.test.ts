import { createServer, type Server } from 'node:http';
import { DEFAULT_DWELL_MS, DEFAULT_STEPS, initialState } from '../src/core/rollout/plan.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { runCli } from './helpers/cli.js';
import { startRuntime, type RuntimeHandle } from './helpers/runtime.js';
import { splitFromNginxConf } from '../src/commands/status.js';
import { awsError, ec2, resetAws, tempProject } from './provision-fakes.js';

/** A runtime stand-in whose /ready and /metrics the test controls. */
async function standIn(state: { ready: boolean; metrics: string }) {
  const server: Server = createServer((req, res) => {
    if (req.url === '/health') return res.writeHead(200).end('{"status":"ok"}');
    if (req.url === '/ready') return res.writeHead(state.ready ? 200 : 503).end();
    if (req.url === '/metrics') return res.writeHead(200, { 'content-type': 'text/plain' }).end(state.metrics);
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/** Prometheus text for `ok` 200s and `bad` 500s with all of them in the buckets given. */
function metricsText(ok: number, bad: number, buckets: Array<[string, number]>) {
  return [
    '# TYPE embedctl_requests_total counter',
    `embedctl_requests_total{route="/v1/embeddings",status="200"} ${ok}`,
    `embedctl_requests_total{route="/v1/embeddings",status="500"} ${bad}`,
    `embedctl_requests_total{route="/health",status="200"} 999`,
    '# TYPE embedctl_request_duration_seconds histogram',
    ...buckets.map(([le, c]) => `embedctl_request_duration_seconds_bucket{route="/v1/embeddings",le="${le}"} ${c}`),
    `embedctl_request_duration_seconds_count{route="/v1/embeddings"} ${ok + bad}`,
    '',
  ].join('\n');
}

function writeLocal(cwd: string, doc: unknown) {
  mkdirSync(join(cwd, '.embedctl'), { recursive: true });
  writeFileSync(join(cwd, '.embedctl', 'local.json'), JSON.stringify(doc));
}

const closers: Array<() => Promise<void>> = [];

/** A gateway answering /health as the instance's nginx does, closed after the test. */
async function gatewayStandin(percent = 40) {
  const gw = createServer((req, res) => {
    if (req.url === '/health') return res.writeHead(200).end(`{"status":"ok","component":"nginx","config":"abc","selfHostedPercent":${percent}}\n`);
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => gw.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise<void>((r) => gw.close(() => r())));
  const port = (gw.address() as AddressInfo).port;
  return { port, url: `http://127.0.0.1:${port}` };
}
beforeEach(() => resetAws());
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

describe('status', () => {
  it('with nothing provisioned says so and exits 0', async () => {
    const cwd = tempProject();
    const r = await runCli(['status'], { cwd });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Nothing provisioned/);
    const j = await runCli(['status', '--json'], { cwd });
    expect(j.json()).toMatchObject({ schema: 'embedctl.status/v1', nothingProvisioned: true, backends: [], deployments: [] });
    expect(ec2.calls()).toHaveLength(0);
  });

  it('instance from EC2, backend health and readiness, error rate and p95 from /metrics, split from rollout.json', async () => {
    // 100 requests: 90 under 50 ms, 10 between 50 and 100 ms -> p95 = 50 + 50 * (95 - 90) / 10 = 75 ms.
    const s = { ready: false, metrics: metricsText(98, 2, [['0.01', 40], ['0.05', 90], ['0.1', 100], ['+Inf', 100]]) };
    const b = await standIn(s);
    closers.push(b.close);
    const cwd = tempProject();
    mkdirSync(join(cwd, '.embedctl'));
    writeFileSync(
      join(cwd, '.embedctl', 'state.json'),
      JSON.stringify({
        version: 1,
        attempts: { main: 1 },
        deployments: {
          main: {
            name: 'main', region: 'eu-west-1', createdAt: 'x', updatedAt: 'x', attempt: 1, alarms: [],
            instance: { id: 'i-0abc', instanceType: 'g5.xlarge', market: 'spot' },
            endpoints: [b.url],
          },
        },
      }),
    );
    // A rollout state as rollout writes it (src/contracts/rollout.ts), at 25%.
    writeFileSync(join(cwd, '.embedctl', 'rollout.json'), JSON.stringify({ ...initialState(DEFAULT_STEPS, DEFAULT_DWELL_MS, 'env'), percent: 25, stepIndex: 0 }));
    // The instance's public address is loopback here, where its gateway answers (on the port
    // EMBEDCTL_GATEWAY_PORT says: the state records none).
    const gw = await gatewayStandin();
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [{ Instances: [{ InstanceId: 'i-0abc', State: { Name: 'running' }, PublicDnsName: '', PublicIpAddress: '127.0.0.1' }] }],
    });
    const env = { EMBEDCTL_GATEWAY_PORT: String(gw.port) };

    const r = await runCli(['status', '--json'], { cwd, env });
    expect(r.code, r.stdout).toBe(0);
    const doc = r.json<any>();
    expect(doc.deployments).toEqual([
      { name: 'main', region: 'eu-west-1', instanceId: 'i-0abc', instanceType: 'g5.xlarge', market: 'spot', state: 'running', publicIp: '127.0.0.1' },
    ]);
    expect(doc.backends).toHaveLength(1);
    const be = doc.backends[0];
    expect(be.health.ok).toBe(true);
    expect(be.ready).toMatchObject({ ok: false, status: 503 });
    expect(be.metrics).toEqual({ window: 'since-start', requests: 100, errors: 2, errorRate: 0.02, p95Ms: 75 });
    expect(doc.split).toEqual({ percent: 25, source: join(cwd, '.embedctl', 'rollout.json') });

    const human = await runCli(['status'], { cwd, env });
    expect(human.stdout).toMatch(/deployment "main" in eu-west-1: i-0abc \(g5\.xlarge, spot\) running, 127\.0\.0\.1/);
    expect(human.stdout).toMatch(new RegExp(`${b.url.replace(/\./g, '\\.')} +ok +503 +100 +2 +2\\.00% +75 +since start`));
    expect(human.stdout).toMatch(/traffic split: 25% self-hosted, 75% hosted/);
  });

  it('a dead backend or an AWS failure shows in the output and makes the exit code 1', async () => {
    const dead = await standIn({ ready: true, metrics: '' });
    await dead.close();
    const cwd = tempProject();
    writeLocal(cwd, { backends: [{ url: dead.url }] });
    const r = await runCli(['status', '--json', '--timeout', '1s'], { cwd });
    expect(r.code).toBe(1);
    expect(r.json<any>().backends[0].health).toEqual({ ok: false, error: 'ECONNREFUSED' });

    mkdirSync(join(cwd, '.embedctl'), { recursive: true });
    writeFileSync(
      join(cwd, '.embedctl', 'state.json'),
      JSON.stringify({ version: 1, attempts: {}, deployments: { main: { name: 'main', region: 'us-east-1', createdAt: 'x', updatedAt: 'x', attempt: 1, alarms: [], endpoints: [], instance: { id: 'i-1', instanceType: 'g4dn.xlarge', market: 'on-demand' } } } }),
    );
    writeLocal(cwd, { backends: [] });
    ec2.on(DescribeInstancesCommand).rejects(awsError('UnauthorizedOperation', 'denied', 403));
    const h = await runCli(['status'], { cwd });
    expect(h.code).toBe(1);
    expect(h.stdout).toMatch(/deployment "main" in us-east-1: i-1 .*\[AWS EC2 \(us-east-1\): not allowed to call ec2:DescribeInstances\]/);
  });

  it('--watch redraws each interval with the traffic of that interval, until Ctrl-C (exit 130)', async () => {
    const s = { ready: true, metrics: metricsText(10, 0, [['0.01', 10], ['+Inf', 10]]) };
    const b = await standIn(s);
    closers.push(b.close);
    const cwd = tempProject();
    writeLocal(cwd, { backends: [b.url], nginx: { url: 'http://127.0.0.1:9' } });
    const ac = new AbortController();
    const sleeps: number[] = [];
    const r = await runCli(['status', '--watch', '--interval', '5s', '--json'], {
      cwd,
      signal: ac.signal,
      sleep: async (ms) => {
        sleeps.push(ms);
        // Between frames the backend served 30 more requests, 3 of them failing, all 10-50 ms.
        s.metrics = metricsText(37, 3, [['0.01', 10], ['0.05', 40], ['+Inf', 40]]);
        if (sleeps.length === 2) ac.abort();
      },
    });
    // Ctrl-C ends a watch as it ends every command: 130, and no error document after the frames.
    expect(r.code).toBe(130);
    const frames = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(frames).toHaveLength(2);
    expect(sleeps).toEqual([5000, 5000]);
    expect(frames[0].schema).toBe('embedctl.status/v1');
    expect(frames[0].gateways).toMatchObject([{ url: 'http://127.0.0.1:9', source: 'up --local', health: { ok: false } }]);
    expect(frames[0].backends[0].metrics).toMatchObject({ window: 'since-start', requests: 10, errors: 0 });
    expect(frames[1].backends[0].metrics).toMatchObject({ window: 'interval', requests: 30, errors: 3, errorRate: 0.1 });
    expect(frames[1].backends[0].metrics.p95Ms).toBeGreaterThan(10);
    expect(frames[1].backends[0].metrics.p95Ms).toBeLessThanOrEqual(50);
  });

  it("a provisioned deployment's gateway: health and the live split from its /health", async () => {
    const gw = createServer((req, res) => {
      if (req.url === '/health') return res.writeHead(200).end('{"status":"ok","component":"nginx","config":"abc","selfHostedPercent":40}\n');
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => gw.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise<void>((r) => gw.close(() => r())));
    const url = `http://127.0.0.1:${(gw.address() as AddressInfo).port}`;
    const cwd = tempProject();
    mkdirSync(join(cwd, '.embedctl'));
    writeFileSync(
      join(cwd, '.embedctl', 'state.json'),
      JSON.stringify({ version: 1, attempts: {}, deployments: { main: { name: 'main', region: 'us-east-1', createdAt: 'x', updatedAt: 'x', attempt: 1, alarms: [], endpoints: [], gateway: url, instance: { id: 'i-1', instanceType: 'g4dn.xlarge', market: 'on-demand' } } } }),
    );
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: 'i-1', State: { Name: 'running' }, PublicIpAddress: '127.0.0.1' }] }] });
    const r = await runCli(['status', '--json'], { cwd });
    expect(r.code).toBe(0);
    const doc = r.json<any>();
    expect(doc.gateways[0]).toMatchObject({ url, source: 'deployment main', health: { ok: true, status: 200 }, selfHostedPercent: 40 });
    expect(doc.split).toEqual({ percent: 40, source: `${url}/health` });
    const h = await runCli(['status'], { cwd });
    expect(h.stdout).toMatch(/gateway http:\/\/127\.0\.0\.1:\d+ \(deployment main\): ok in [\d.]+ ms, serving 40% self-hosted/);
    expect(h.stdout).toMatch(/traffic split: 40% self-hosted, 60% hosted/);
  });

  it('bad --interval names the flag', async () => {
    const r = await runCli(['status', '--watch', '--interval', 'soon'], { cwd: tempProject() });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--interval: bad duration "soon"/);
  });

  it('reads the split from a rendered nginx.conf when there is no rollout state', async () => {
    expect(splitFromNginxConf('split_clients "${x}" $embedctl_backend {\n        30% selfhosted;\n        * hosted;\n    }')).toBe(30);
    expect(splitFromNginxConf('split_clients "$request_id" $embedctl_backend {\n        * selfhosted;\n    }')).toBe(100);
    expect(splitFromNginxConf('split_clients "$request_id" $embedctl_backend {\n        * hosted;\n    }')).toBe(0);
    expect(splitFromNginxConf('events {}')).toBeUndefined();

    const b = await standIn({ ready: true, metrics: metricsText(0, 0, [['+Inf', 0]]) });
    closers.push(b.close);
    const cwd = tempProject();
    writeLocal(cwd, { backends: [b.url] });
    mkdirSync(join(cwd, 'deploy', 'nginx'), { recursive: true });
    writeFileSync(join(cwd, 'deploy', 'nginx', 'nginx.conf'), 'http {\n    split_clients "$http_authorization" $embedctl_backend {\n        10% selfhosted;\n        * hosted;\n    }\n}\n');
    const r = await runCli(['status', '--json'], { cwd });
    expect(r.code).toBe(0);
    expect(r.json<any>().split).toEqual({ percent: 10, source: join(cwd, 'deploy', 'nginx', 'nginx.conf') });
    expect(r.json<any>().backends[0].metrics).toMatchObject({ requests: 0, errorRate: null, p95Ms: null });
  });
});

describe('status against the real runtime', () => {
  let rt: RuntimeHandle;
  beforeAll(async () => {
    rt = await startRuntime({ model: 'default' });
  });
  afterAll(async () => {
    await rt?.stop();
    resetAws();
  });

  it('counts the embedding requests it served and reports a p95', async () => {
    const before = await runCli(['status', '--json'], { cwd: (() => { const c = tempProject(); writeLocal(c, { backends: [rt.url] }); return c; })() });
    const start = before.json<any>().backends[0].metrics.requests as number;
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${rt.url}/v1/embeddings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ input: [`status probe ${i}`], model: 'default' }),
      });
      expect(res.status).toBe(200);
    }
    const cwd = tempProject();
    writeLocal(cwd, { backends: [rt.url] });
    const r = await runCli(['status', '--json'], { cwd });
    expect(r.code).toBe(0);
    const be = r.json<any>().backends[0];
    expect(be.health.ok).toBe(true);
    expect(be.ready.ok).toBe(true);
    expect(be.metrics.requests - start).toBe(5);
    expect(be.metrics.errors).toBe(0);
    expect(be.metrics.p95Ms).toBeGreaterThan(0);
  });
});
