import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runtimeEntryPath, startStandaloneRuntime, stopLocalStack, stopStandaloneRuntime, type LocalStackState } from '../src/adapters/local-stack.js';
import { pidAlive } from '../src/adapters/nginx.js';
import { routesToSelfHosted } from '../src/client/route.js';
import { runCli } from './helpers/cli.js';
import { embed, nginxOrSkip, pool, startStandin, tempDir, type Standin } from './helpers/gateway.js';

const { skip } = nginxOrSkip();
const tmp = tempDir('embedctl-up-local-');
const KEY = 'jina_local_test_5e1f0c';

describe.skipIf(skip)('embedctl up --local / down --local (real runtimes + real nginx)', () => {
  let hosted: Standin;
  let cwd: string;
  let state: LocalStackState;

  beforeAll(async () => {
    if (!existsSync(runtimeEntryPath())) throw new Error(`${runtimeEntryPath()} is missing: build first (npx tsc -p tsconfig.json)`);
    hosted = await startStandin('hosted');
    cwd = join(tmp.dir, 'stack');
    await import('node:fs').then((fs) => fs.mkdirSync(cwd, { recursive: true }));
    const r = await runCli(['up', '--local', '--replicas', '2', '--percent', '50', '--same-model', '--hosted-url', `${hosted.url}/v1/embeddings`, '--json'], {
      cwd,
      env: { EMBEDCTL_HOSTED_API_KEY: KEY },
    });
    expect(r.stderr).not.toContain(KEY);
    expect(r.code, r.stderr).toBe(0);
    const { schema, mode, dryRun, statePath, ...stack } = r.json<LocalStackState & { schema: string; mode: string; dryRun: boolean; statePath: string }>();
    expect({ schema, mode, dryRun, statePath }).toEqual({ schema: 'embedctl.up/v1', mode: 'local', dryRun: false, statePath: join(cwd, '.embedctl', 'local.json') });
    state = stack as LocalStackState;
  });

  afterAll(async () => {
    if (cwd) await stopLocalStack(cwd).catch(() => undefined);
    await hosted?.stop();
    tmp.cleanup();
  });

  it('records pids and ports, keeps the hosted key out of every file but the 0600 snippet', () => {
    expect(state.runtimes).toHaveLength(2);
    for (const p of [state.nginx.pid, ...state.runtimes.map((r) => r.pid)]) expect(pidAlive(p)).toBe(true);
    const dir = join(cwd, '.embedctl');
    const onDisk = JSON.parse(readFileSync(join(dir, 'local.json'), 'utf8'));
    expect(onDisk).toEqual(state);
    const deploy = JSON.parse(readFileSync(join(dir, 'deploy.json'), 'utf8'));
    expect(deploy.nginx).toMatchObject({ confPath: state.nginx.confPath, prefix: state.nginx.prefix, options: { listen: { host: '127.0.0.1', port: state.nginx.port } } });
    for (const f of [join(dir, 'local.json'), join(dir, 'deploy.json'), state.nginx.confPath]) expect(readFileSync(f, 'utf8')).not.toContain(KEY);
    const secret = join(dir, 'local-secrets', 'hosted-auth.conf');
    expect(readFileSync(secret, 'utf8')).toContain(KEY);
    expect(statSync(secret).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'local-secrets')).mode & 0o777).toBe(0o700);
  });

  it('splits by tenant exactly as the hybrid client predicts, spreads self-hosted over both runtimes, injects the key', async () => {
    const keys = Array.from({ length: 300 }, (_, i) => `tenant-${i}`);
    const before = hosted.received.length;
    const answers = await pool(keys.length, 8, (i) => embed(state.url, { 'x-tenant-id': keys[i]! }, `text ${i}`));
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    answers.forEach((a, i) => expect(a.backend, keys[i]).toBe(routesToSelfHosted(keys[i]!, 50) ? 'selfhosted' : 'hosted'));
    const toHosted = hosted.received.slice(before);
    expect(toHosted.length).toBe(answers.filter((a) => a.backend === 'hosted').length);
    expect(toHosted.every((r) => r.authorization === `Bearer ${KEY}`)).toBe(true);
    // The real runtime answered the self-hosted half with real vectors.
    const self = answers.find((a) => a.backend === 'selfhosted')!;
    expect(JSON.parse(self.body).data[0].embedding.length).toBeGreaterThan(10);
    // least_conn: the JSON access log shows both runtimes served.
    // nginx writes a line after its answer went out: wait until the file holds them all (2 s at most).
    const readLog = () => readFileSync(join(state.nginx.prefix, 'access.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { upstream_addr: string; backend: string; path?: string });
    let log = readLog();
    for (let i = 0; i < 100 && log.filter((e) => e.backend === 'selfhosted' || e.backend === 'hosted').length < answers.length; i++) {
      await new Promise((r) => setTimeout(r, 20));
      log = readLog();
    }
    const addrs = new Map<string, number>();
    for (const e of log) if (e.backend === 'selfhosted') addrs.set(e.upstream_addr, (addrs.get(e.upstream_addr) ?? 0) + 1);
    for (const r of state.runtimes) expect(addrs.get(`127.0.0.1:${r.port}`) ?? 0, `runtime on ${r.port}`).toBeGreaterThan(10);
    // runtime-1 follows that log: its gateway counters say the same split (the dashboard's source).
    const want = { selfhosted: log.filter((e) => e.backend === 'selfhosted').length, hosted: log.filter((e) => e.backend === 'hosted').length };
    const counted = async () => {
      const text = await (await fetch(`http://127.0.0.1:${state.runtimes[0]!.port}/metrics`)).text();
      const sum = (backend: string) => [...text.matchAll(new RegExp(`^embedctl_gateway_requests_total\\{[^}]*backend="${backend}"[^}]*\\} (\\d+)`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0);
      return { selfhosted: sum('selfhosted'), hosted: sum('hosted') };
    };
    const deadline = Date.now() + 10_000;
    let got = await counted();
    while ((got.selfhosted < want.selfhosted || got.hosted < want.hosted) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      got = await counted();
    }
    expect(got).toEqual(want);
  });

  it('refuses a second up while the stack runs', async () => {
    const r = await runCli(['up', '--local'], { cwd });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/a local stack is already running at http:\/\/127\.0\.0\.1:\d+/);
    expect(r.stderr).toMatch(/hint: stop it first: embedctl down --local/);
  });

  it('falls back to hosted with zero failed requests when both runtimes are killed mid-load, then down stops the rest', async () => {
    let killed = false;
    const answers = await pool(240, 8, async (i) => {
      if (i === 60 && !killed) {
        killed = true;
        for (const r of state.runtimes) process.kill(r.pid, 'SIGKILL');
      }
      return embed(state.url, { 'x-tenant-id': `k-${i}` });
    });
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    const late = answers.slice(120);
    // Keys the split sends to self-hosted now come back from hosted, marked as a fallback.
    const fellBack = late.filter((a) => a.fallback === 'yes');
    expect(fellBack.length).toBeGreaterThan(20);
    expect(late.every((a) => a.backend === 'hosted')).toBe(true);

    const down = await runCli(['down', '--local', '--json'], { cwd });
    expect(down.code).toBe(0);
    const stopped = down.json<{ stopped: Array<{ what: string; wasRunning: boolean }> }>().stopped;
    expect(stopped.find((s) => s.what === 'nginx')?.wasRunning).toBe(true);
    expect(stopped.filter((s) => s.what.startsWith('runtime')).every((s) => !s.wasRunning)).toBe(true);
    expect(pidAlive(state.nginx.pid)).toBe(false);
    for (const f of ['local.json', 'deploy.json', 'local-secrets']) expect(existsSync(join(cwd, '.embedctl', f)), f).toBe(false);
    const again = await runCli(['down', '--local'], { cwd });
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/No local stack/);
  });
});

describe.skipIf(skip)('standalone runtimes (rehearse\'s hosted stand-in)', () => {
  it('start detached on a free port, answer, and stop on SIGTERM', async () => {
    const cwd = join(tmp.dir, 'standalone');
    const rt = await startStandaloneRuntime({ cwd, name: 'hosted', model: 'default-q', env: { PATH: process.env.PATH, EMBEDCTL_API_KEY: 'k1', EMBEDCTL_HOSTED_API_KEY: 'never-passed' } });
    try {
      expect(rt).toMatchObject({ name: 'hosted', log: join(cwd, '.embedctl', 'local', 'hosted.log') });
      const denied = await fetch(`${rt.url}/v1/embeddings`, { method: 'POST', body: '{"input":"x"}', headers: { 'content-type': 'application/json' } });
      expect(denied.status).toBe(401);
      const ok = await embed(rt.url, { authorization: 'Bearer k1' });
      expect(ok.status).toBe(200);
      expect(readFileSync(`/proc/${rt.pid}/environ`, 'utf8')).not.toContain('never-passed');
    } finally {
      await stopStandaloneRuntime(rt);
    }
    expect(pidAlive(rt.pid)).toBe(false);
  });
});

describe('embedctl up --local: plans and failures', () => {
  it('--dry-run prints the plan and starts nothing', async () => {
    const cwd = join(tmp.dir, 'dry');
    const r = await runCli(['up', '--local', '--dry-run', '--json', '--replicas', '3', '--port', '18123'], { cwd });
    expect(r.code).toBe(0);
    const doc = r.json<{ schema: string; dryRun: boolean; plan: { runtimes: unknown[]; nginx: { listen: string } } }>();
    expect(doc).toMatchObject({ schema: 'embedctl.up/v1', dryRun: true });
    expect(doc.plan.runtimes).toHaveLength(3);
    expect(doc.plan.nginx.listen).toBe('127.0.0.1:18123');
    expect(existsSync(join(cwd, '.embedctl'))).toBe(false);
  });

  it.skipIf(skip)('a runtime that cannot load its model: exit 1 with its message, nothing left running or recorded', async () => {
    const cwd = join(tmp.dir, 'badmodel');
    const r = await runCli(['up', '--local', '--model', 'nobody/not-fetched', '--hosted-url', 'http://127.0.0.1:9/v1/embeddings'], { cwd });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/runtime: runtime-1 exited \(code 2\).*not fetched yet/);
    expect(existsSync(join(cwd, '.embedctl', 'local.json'))).toBe(false);
  });

  it('bad flags name themselves; up without a target says how to pick one', async () => {
    const cwd = join(tmp.dir, 'flags');
    const port = await runCli(['up', '--local', '--port', 'eighty'], { cwd });
    expect(port.code).toBe(2);
    expect(port.stderr).toMatch(/^embedctl: error: --port: expected a number/);
    const none = await runCli(['up'], { cwd });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--docker-host: say where to deploy/);
    const both = await runCli(['down', '--local', '--docker-host', 'unix:///x'], { cwd });
    expect(both.code).toBe(2);
  });
});
