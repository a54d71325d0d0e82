import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startNginx, type NginxInstance } from '../src/adapters/nginx.js';
import { routesToSelfHosted } from '../src/client/route.js';
import { renderNginxConf, type NginxConfOptions } from '../src/core/render.js';
import { runCli } from './helpers/cli.js';
import { embed, freePort, nginxOrSkip, pool, startStandin, tempDir, type Standin } from './helpers/gateway.js';
import { writeReports } from './helpers/rollout-fixtures.js';

/**
 * `embedctl rollout` driving a real nginx on loopback, between a self-hosted stand-in (which
 * serves Prometheus /metrics like the runtime and can be switched to answer 500) and a hosted one.
 */
const { skip } = nginxOrSkip();
const tmp = tempDir('embedctl-rollout-nginx-');
afterAll(() => tmp.cleanup());

interface SelfHosted {
  url: string;
  port: number;
  fail(on: boolean, status?: number): void;
  stop(): Promise<void>;
}

/** Answers like the runtime: OpenAI list shape, and embedctl_requests_total / duration histogram. */
async function selfHostedStandin(): Promise<SelfHosted> {
  let failing = false;
  let failStatus = 500;
  const counts = new Map<number, number>();
  const bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
  const buckets = new Array<number>(bounds.length + 1).fill(0);
  const server: Server = createServer((req, res) => {
    const t0 = process.hrtime.bigint();
    req.resume();
    req.on('end', () => {
      if (req.url === '/metrics') {
        const lines = ['# TYPE embedctl_requests_total counter'];
        for (const [status, n] of counts) lines.push(`embedctl_requests_total{status="${status}",route="/v1/embeddings"} ${n}`);
        lines.push('embedctl_requests_total{status="200",route="/health"} 999');
        lines.push('# TYPE embedctl_request_duration_seconds histogram');
        let cum = 0;
        bounds.forEach((b, i) => {
          cum += buckets[i]!;
          lines.push(`embedctl_request_duration_seconds_bucket{route="/v1/embeddings",le="${b}"} ${cum}`);
        });
        lines.push(`embedctl_request_duration_seconds_bucket{route="/v1/embeddings",le="+Inf"} ${cum + buckets[bounds.length]!}`);
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        res.end(lines.join('\n') + '\n');
        return;
      }
      const status = failing ? failStatus : 200;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(status === 200 ? JSON.stringify({ object: 'list', data: [{ object: 'embedding', index: 0, embedding: [0.6, 0.8] }], model: 'm' }) : '{"error":{"message":"injected fault"}}');
      counts.set(status, (counts.get(status) ?? 0) + 1);
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      const idx = bounds.findIndex((b) => secs <= b);
      buckets[idx === -1 ? bounds.length : idx]!++;
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    fail: (on, status = 500) => {
      failing = on;
      failStatus = status;
    },
    stop: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** POST /v1/embeddings on a connection of its own; resolves with the status. */
function postFresh(base: string, tenant: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}/v1/embeddings`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'x-tenant-id': tenant } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end('{"input":"hello","model":"m"}');
  });
}

let seq = 0;
let cwd: string;
let self: SelfHosted;
let hosted: Standin;
let nginx: NginxInstance;

beforeEach(async () => {
  if (skip) return;
  cwd = join(tmp.dir, `p${++seq}`);
  const prefix = join(cwd, '.embedctl', 'nginx');
  mkdirSync(prefix, { recursive: true });
  self = await selfHostedStandin();
  hosted = await startStandin('hosted');
  const options: Omit<NginxConfOptions, 'selfHostedPercent'> = {
    listen: { host: '127.0.0.1', port: await freePort() },
    selfHosted: [`127.0.0.1:${self.port}`],
    hostedUrl: `${hosted.url}/v1/embeddings`,
    // Both stand-ins serve one model: a self-hosted failure falls back (issue 14's same-model rule).
    sameModel: true,
    // As `up --local` renders it: the split lives beside the config, moved without reloads.
    splitDir: join(prefix, 'split'),
    workerProcesses: 1,
    errorLog: 'error.log',
    accessLog: 'access.log',
  };
  const confPath = join(prefix, 'nginx.conf');
  writeFileSync(confPath, renderNginxConf({ ...options, selfHostedPercent: 0 }));
  nginx = await startNginx({ confPath, prefix });
  // What `up --local` leaves behind for rollout: where the gateway lives and how it was rendered.
  writeFileSync(join(cwd, '.embedctl', 'deploy.json'), JSON.stringify({ version: 1, source: 'test', nginx: { confPath, prefix, options } }));
  writeReports(cwd, new Date());
});

afterEach(async () => {
  if (skip) return;
  await nginx.stop();
  await Promise.all([self.stop(), hosted.stop()]);
});

const rollout = (args: string[], o: { signal?: AbortSignal } = {}) => runCli(['rollout', ...args], { cwd, env: { EMBEDCTL_USER: 'carol@ops' }, ...o });

describe.skipIf(skip)('rollout with the nginx driver (real nginx on loopback)', () => {
  it('--percent 25 writes the split (no re-render, no reload) and confirms; 2,000 distinct keys split 25 +-5 %, matching the hybrid client key for key', async () => {
    const confPath = join(cwd, '.embedctl', 'nginx', 'nginx.conf');
    const conf = readFileSync(confPath, 'utf8');
    expect((await rollout(['to', '10'])).code).toBe(0);
    const r = await rollout(['to', '25', '--dwell', '0s', '--json']);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const doc = r.json<{ confirmed: boolean; observedPercent: number; detail: string }>();
    expect(doc.confirmed).toBe(true);
    expect(doc.detail).toMatch(/200 samples via http:\/\/127\.0\.0\.1:\d+: [\d.]+% self-hosted \(expected [\d.]+% \+-5\)/);
    expect(doc.detail).toMatch(/split: 10% -> 25% self-hosted, no reload; /);
    expect(readFileSync(confPath, 'utf8')).toBe(conf);
    expect(readFileSync(join(cwd, '.embedctl', 'nginx', 'error.log'), 'utf8')).not.toMatch(/reconfiguring/);
    expect(await (await fetch(`${nginx.url}/health`)).json()).toMatchObject({ selfHostedPercent: 25 });

    const keys = Array.from({ length: 2000 }, (_, i) => `tenant-${i}`);
    const sides = await pool(keys.length, 16, async (i) => (await embed(nginx.url, { 'x-tenant-id': keys[i]! })).backend);
    const share = sides.filter((s) => s === 'selfhosted').length / keys.length;
    expect(share).toBeGreaterThanOrEqual(0.2);
    expect(share).toBeLessThanOrEqual(0.3);
    // nginx's split_clients and the hybrid client hash the same way: one key, one side, everywhere.
    const disagree = keys.filter((k, i) => routesToSelfHosted(k, 25) !== (sides[i] === 'selfhosted'));
    expect(disagree).toEqual([]);
  });

  it('a split move under continuous load loses zero requests', async () => {
    let stop = false;
    const statuses: number[] = [];
    const failures: string[] = [];
    // One connection per request: nginx finishes in-flight requests on the old workers and new
    // connections land on the new ones. (A keep-alive client can still race nginx closing an idle
    // connection at the reload; that is HTTP/1.1's idle-close race, retried by clients, not a loss.)
    const load = pool(8, 8, async (w) => {
      for (let i = 0; !stop; i++) {
        try {
          statuses.push(await postFresh(nginx.url, `w${w}-${i}`));
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    });
    await new Promise((r) => setTimeout(r, 200));
    const r = await rollout(['to', '10']);
    expect(r.code).toBe(0);
    await new Promise((r) => setTimeout(r, 200));
    stop = true;
    await load;
    expect(failures).toEqual([]);
    expect(statuses.length).toBeGreaterThan(200);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
  });

  it('--rollback gives 0 % self-hosted, sampled, and reports how long it took', async () => {
    expect((await rollout(['to', '10'])).code).toBe(0);
    const r = await rollout(['rollback', '--reason', 'drill', '--json']);
    expect(r.code).toBe(0);
    const doc = r.json<{ confirmed: boolean; observedPercent: number; durationMs: number }>();
    expect(doc).toMatchObject({ confirmed: true, observedPercent: 0 });
    expect(doc.durationMs).toBeGreaterThan(0);
    expect(doc.durationMs).toBeLessThan(30_000);
    const sides = await pool(300, 10, async (i) => (await embed(nginx.url, { 'x-tenant-id': `after-${i}` })).backend);
    expect(sides.filter((s) => s !== 'hosted')).toEqual([]);
  });

  it('a split move renders nothing: a broken render option in deploy.json cannot block a rollback', async () => {
    expect((await rollout(['to', '10'])).code).toBe(0);
    const confPath = join(cwd, '.embedctl', 'nginx', 'nginx.conf');
    const live = readFileSync(confPath, 'utf8');
    const deploy = JSON.parse(readFileSync(join(cwd, '.embedctl', 'deploy.json'), 'utf8'));
    deploy.nginx.options.hostedAuthInclude = join(cwd, 'missing-auth.conf');
    writeFileSync(join(cwd, '.embedctl', 'deploy.json'), JSON.stringify(deploy));
    const r = await rollout(['rollback', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json<{ confirmed: boolean }>().confirmed).toBe(true);
    expect(readFileSync(confPath, 'utf8')).toBe(live);
    expect(JSON.parse(readFileSync(join(cwd, '.embedctl', 'rollout.json'), 'utf8')).percent).toBe(0);
  });

  it('a config that does not read the split directory (an older render) is re-rendered, tested and reloaded once; one nginx rejects is never written', async () => {
    const confPath = join(cwd, '.embedctl', 'nginx', 'nginx.conf');
    const deployPath = join(cwd, '.embedctl', 'deploy.json');
    const deploy = JSON.parse(readFileSync(deployPath, 'utf8'));
    // The older shape: the split only in the file (nginx keeps serving the config it started with).
    const legacy = renderNginxConf({ ...deploy.nginx.options, selfHostedPercent: 0, splitDir: '/nonexistent/split' }).replace(/^# embedctl-split-dir: .*\n/m, '');
    writeFileSync(confPath, legacy);
    writeFileSync(deployPath, JSON.stringify({ ...deploy, nginx: { ...deploy.nginx, options: { ...deploy.nginx.options, hostedAuthInclude: join(cwd, 'missing-auth.conf') } } }));
    const bad = await rollout(['to', '10']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/nginx: config test failed .*missing-auth\.conf/);
    expect(readFileSync(confPath, 'utf8')).toBe(legacy);
    expect(existsSync(join(cwd, '.embedctl', 'rollout.json'))).toBe(false);

    writeFileSync(deployPath, JSON.stringify(deploy));
    const r = await rollout(['to', '10', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json<{ confirmed: boolean }>()).toMatchObject({ confirmed: true });
    expect(r.json<{ detail: string }>().detail).toMatch(/re-rendered to read .*split \(10% self-hosted\), tested and reloaded once/);
    expect(readFileSync(confPath, 'utf8')).toMatch(/^# embedctl-split-dir: .*\/\.embedctl\/nginx\/split$/m);
    const next = await rollout(['to', '25', '--force', '--reason', 'test', '--json']);
    expect(next.code, next.stderr).toBe(0);
    expect(next.json<{ detail: string }>().detail).toMatch(/10% -> 25% self-hosted, no reload/);
  });

  it('when nginx is not running, the split is written and recorded but reported unconfirmed (exit 1); nginx serves it once started', async () => {
    const confPath = join(cwd, '.embedctl', 'nginx', 'nginx.conf');
    const before = readFileSync(confPath, 'utf8');
    await nginx.stop();
    const r = await rollout(['to', '10']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^embedctl: error: traffic: the driver applied 10% but could not confirm it: .*no reload; no sample got an X-Embedctl-Backend header/m);
    expect(readFileSync(confPath, 'utf8')).toBe(before);
    expect(JSON.parse(readFileSync(join(cwd, '.embedctl', 'rollout.json'), 'utf8')).percent).toBe(10);
    nginx = await startNginx({ confPath, prefix: join(cwd, '.embedctl', 'nginx') });
    expect(await (await fetch(`${nginx.url}/health`)).json()).toMatchObject({ selfHostedPercent: 10 });
  });

  it('--watch rolls back by itself when the self-hosted side starts failing, and exits 4', async () => {
    expect((await rollout(['to', '10'])).code).toBe(0);
    expect((await rollout(['to', '25', '--force', '--reason', 'test: skip the week'])).code).toBe(0);
    let stop = false;
    const load = pool(4, 4, async (w) => {
      for (let i = 0; !stop; i++) await embed(nginx.url, { 'x-tenant-id': `watch-${w}-${i % 200}` }).catch(() => undefined);
    });
    const faultAt = setTimeout(() => self.fail(true), 700);
    const watch = await rollout(['watch', '--interval', '250ms', '--max-duration', '20s', '--metrics-url', `${self.url}/metrics`, '--json']);
    clearTimeout(faultAt);
    stop = true;
    await load;
    expect(watch.code).toBe(4);
    const doc = watch.json<{ action: string; from: number; to: number; reason: string; durationMs: number; confirmed: boolean; triggers: string[] }>();
    expect(doc).toMatchObject({ action: 'auto-rollback', from: 25, to: 0, confirmed: true, triggers: ['errorRate'] });
    const rate = Number(/^automatic: errorRate ([\d.]+)% > 5\.00%/.exec(doc.reason)?.[1]);
    expect(rate).toBeGreaterThan(5);
    expect(doc.durationMs).toBeGreaterThan(0);
    expect(watch.stderr).toMatch(/ok\n/); // healthy ticks before the fault
    expect(watch.stderr).toMatch(/BREACH 1\/2/);
    expect(watch.stderr).toMatch(/rolled back by rollout watch/);
    const state = JSON.parse(readFileSync(join(cwd, '.embedctl', 'rollout.json'), 'utf8'));
    expect(state.history.at(-1)).toMatchObject({ action: 'auto-rollback', from: 25, to: 0 });
    expect(state.lastRollback.durationMs).toBe(doc.durationMs);
    const sides = await pool(200, 10, async (i) => (await embed(nginx.url, { 'x-tenant-id': `post-${i}` })).backend);
    expect(sides.every((s) => s === 'hosted')).toBe(true);
  });

  it("nginx's access log counts a self-hosted failure that fell back to hosted as an error, though users got 200", async () => {
    expect((await rollout(['to', '10'])).code).toBe(0);
    self.fail(true, 502);
    const answers = await pool(300, 10, async (i) => embed(nginx.url, { 'x-tenant-id': `log-${i}` }));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const fellBack = answers.filter((a) => a.fallback === 'yes').length;
    expect(fellBack).toBeGreaterThan(10);
    const log = join(cwd, '.embedctl', 'nginx', 'access.log');
    const r = await rollout(['check', '--json', '--nginx-access-log', log, '--window', '1m']);
    expect(r.code).toBe(3);
    const gate = r.json<{ gates: Array<{ name: string; value: number; status: string; note: string }> }>().gates[0]!;
    expect(gate).toMatchObject({ name: 'errorRate', status: 'fail' });
    // the 200 sampling requests of the move were healthy; every self-hosted pick since then fell back
    expect(gate.value).toBeGreaterThan(0.05);
    expect(gate.note).toMatch(/is above the limit 5\.00%/);
  });

  it('watch via /metrics: killing the runtime rolls back after the failure threshold, not on the first bad tick', async () => {
    expect((await rollout(['to', '10'])).code).toBe(0);
    let stop = false;
    const load = pool(2, 2, async (w) => {
      for (let i = 0; !stop; i++) await embed(nginx.url, { 'x-tenant-id': `kill-${w}-${i % 100}` }).catch(() => undefined);
    });
    const killAt = setTimeout(() => void self.stop(), 600);
    const watch = await rollout(['watch', '--interval', '250ms', '--max-duration', '20s', '--failure-limit', '3', '--metrics-url', `${self.url}/metrics`, '--json']);
    clearTimeout(killAt);
    stop = true;
    await load;
    expect(watch.code, watch.stderr).toBe(4);
    expect(watch.stderr).toMatch(/BREACH 1\/3/);
    expect(watch.stderr).toMatch(/BREACH 2\/3/);
    const doc = watch.json<{ action: string; to: number; reason: string; confirmed: boolean }>();
    expect(doc).toMatchObject({ action: 'auto-rollback', to: 0, confirmed: true });
    expect(doc.reason).toMatch(/live signal lost \(GET .*\/metrics failed: .*\) for 3 consecutive intervals/);
  });

  it("watch via the gateway's access log (found in deploy.json): dead runtimes mean fallbacks, and a rollback", async () => {
    expect((await rollout(['to', '10'])).code).toBe(0);
    let stop = false;
    const load = pool(4, 4, async (w) => {
      for (let i = 0; !stop; i++) await embed(nginx.url, { 'x-tenant-id': `log-${w}-${i % 100}` }).catch(() => undefined);
    });
    const killAt = setTimeout(() => void self.stop(), 700);
    const watch = await rollout(['watch', '--interval', '300ms', '--max-duration', '20s', '--json']);
    clearTimeout(killAt);
    stop = true;
    await load;
    expect(watch.code, watch.stderr).toBe(4);
    expect(watch.stderr).toMatch(/watching .*access\.log \(gateway access log\)/);
    expect(watch.stderr).toMatch(/-> ok\n/);
    expect(watch.json<{ reason: string }>().reason).toMatch(/^automatic: errorRate .* for 2 consecutive intervals/);
  });

  it('a signal that stops updating is inconclusive, loudly (exit 3), and nothing moves', async () => {
    expect((await rollout(['to', '10'])).code).toBe(0);
    // No traffic at all: the access log stops growing.
    const watch = await rollout(['watch', '--interval', '150ms', '--max-duration', '1500ms', '--stale-after', '3', '--json']);
    expect(watch.code).toBe(3);
    expect(watch.stderr).toMatch(/warning: INCONCLUSIVE: .*access\.log .* no new traffic for 3 intervals/);
    expect(watch.stderr).toMatch(/error: watch inconclusive: .* stopped updating/);
    expect(watch.json<{ frozen: boolean; verdict: string; rolledBack: boolean }>()).toMatchObject({ frozen: true, verdict: 'inconclusive', rolledBack: false });
    expect(JSON.parse(readFileSync(join(cwd, '.embedctl', 'rollout.json'), 'utf8')).percent).toBe(10);
  });

  it('--watch stops on the signal without touching traffic (exit 130)', async () => {
    expect((await rollout(['to', '10'])).code).toBe(0);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 600);
    const r = await rollout(['watch', '--interval', '200ms', '--metrics-url', `${self.url}/metrics`], { signal: ac.signal });
    expect(r.code).toBe(130);
    expect(r.stdout).toMatch(/interrupted after \d+ checks at 10% self-hosted/);
    expect(JSON.parse(readFileSync(join(cwd, '.embedctl', 'rollout.json'), 'utf8')).percent).toBe(10);
  });
});
