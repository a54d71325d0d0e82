// A rollback racing a forward move. A rollback never waits for the lock to put 0 % on
// self-hosted; a forward move holds the lock while it evaluates gates (minutes, with live
// signals) and then applies its share. Neither may leave traffic above 0 % after a rollback
// said 0 %: the rollback announces itself before it moves traffic (the forward move refuses to
// apply, or says it was overtaken), and a rollback that had to wait applies 0 % again before it
// records it. Real concurrency in one process: a slow gate source (CloudWatch through the real
// SDK client, its transport mocked), a slow self-hosted side behind a real nginx.
import { execa } from 'execa';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { CloudWatchClient, GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { mockClient } from 'aws-sdk-client-mock';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startNginx, type NginxInstance } from '../src/adapters/nginx.js';
import { renderNginxConf, type NginxConfOptions } from '../src/core/render.js';
import { runCli } from './helpers/cli.js';
import { embed, freePort, nginxOrSkip, pool, startStandin, tempDir, type Standin } from './helpers/gateway.js';
import { DAY, manualClock, tempProject, writeReports } from './helpers/rollout-fixtures.js';

const env = { EMBEDCTL_USER: 'alice@ops' };
const cw = mockClient(CloudWatchClient);
afterAll(() => cw.restore());
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * CloudWatch, through the real SDK client, answering healthy numbers only after `delayMs`: the
 * forward move holds the rollout lock while it waits for its gates.
 */
function slowCloudWatch(delayMs: number, now: () => Date) {
  cw.on(GetMetricDataCommand).callsFake(async () => {
    await sleep(delayMs);
    const at = new Date(now().getTime() - 60_000);
    return {
      MetricDataResults: [
        { Id: 'requests', Timestamps: [at], Values: [1000] },
        { Id: 'errors', Timestamps: [at], Values: [0] },
        { Id: 'p95', Timestamps: [at], Values: [40] },
      ],
    };
  });
  return ['--cloudwatch', '--cloudwatch-region', 'eu-west-1'];
}

const rollbackRequests = (dir: string) => readdirSync(dir).filter((f) => f.startsWith('rollout.json.rollback-'));

describe('rollback racing a forward move (env driver)', () => {
  let cwd: string;
  let clock: ReturnType<typeof manualClock>;
  const statePath = () => join(cwd, '.embedctl', 'rollout.json');
  const state = () => JSON.parse(readFileSync(statePath(), 'utf8'));
  const trafficEnv = () => readFileSync(join(cwd, '.embedctl', 'traffic.env'), 'utf8');
  const cli = (args: string[]) => runCli(['rollout', ...args, '--driver', 'env'], { cwd, now: clock.now, env });

  beforeEach(async () => {
    cwd = tempProject();
    clock = manualClock();
    writeReports(cwd, clock.now());
    expect((await cli(['to', '10'])).code).toBe(0);
    clock.advance(8 * DAY);
    writeReports(cwd, clock.now());
  });
  afterEach(() => rmSync(cwd, { recursive: true, force: true }));

  it('a rollback while `next` evaluates its gates: `next` refuses to apply (exit 4), traffic and state end at 0 %', async () => {
    const forward = cli(['next', ...slowCloudWatch(1500, clock.now)]);
    await sleep(300); // `next` holds the lock and waits for its gates
    const rb = await cli(['rollback', '--reason', 'pager', '--json']);
    const fwd = await forward;

    expect(fwd.code, fwd.stderr).toBe(4);
    expect(fwd.stderr).toMatch(/^embedctl: error: not moving to 25%: a rollback by alice@ops \(pid \d+ on .*: pager\) started while this command held the rollout lock; traffic stays with the rollback$/m);
    expect(fwd.stderr.split('\n').filter((l) => l.startsWith('embedctl: error:'))).toHaveLength(1);
    expect(rb.code, rb.stderr).toBe(0);
    expect(rb.stderr).toMatch(/traffic is at 0%; waiting for the other rollout command to record it/);
    expect(rb.json()).toMatchObject({ action: 'rollback', from: 10, to: 0, confirmed: true, reapplied: true });

    expect(trafficEnv()).toBe('SELF_HOSTED_TRAFFIC_PERCENT=0\n');
    expect(state().percent).toBe(0);
    expect(state().history.map((h: { action: string; to: number }) => `${h.action} ${h.to}`)).toEqual(['set 10', 'rollback 0']);
    expect(rollbackRequests(join(cwd, '.embedctl'))).toEqual([]);
  });

  it('the lock holder writes its share after the rollback applied 0 %: the rollback applies 0 % again before recording it', async () => {
    const lock = `${statePath()}.lock`;
    writeFileSync(lock, JSON.stringify({ pid: process.pid, host: hostname(), user: 'bob@ci', since: new Date().toISOString(), token: 'x', command: 'embedctl rollout next' }));
    const pending = cli(['rollback', '--reason', 'pager', '--json']);
    for (let i = 0; i < 200 && trafficEnv() !== 'SELF_HOSTED_TRAFFIC_PERCENT=0\n'; i++) await sleep(10);
    expect(trafficEnv()).toBe('SELF_HOSTED_TRAFFIC_PERCENT=0\n');
    // While the rollback waits for the lock, it is announced where the holder looks before applying.
    expect(rollbackRequests(join(cwd, '.embedctl'))).toHaveLength(1);
    // The holder was past that check: its apply lands after the rollback's 0 %, then it lets go.
    writeFileSync(join(cwd, '.embedctl', 'traffic.env'), 'SELF_HOSTED_TRAFFIC_PERCENT=25\n');
    rmSync(lock);
    const r = await pending;
    expect(r.code, r.stderr).toBe(0);
    expect(trafficEnv()).toBe('SELF_HOSTED_TRAFFIC_PERCENT=0\n');
    expect(r.json()).toMatchObject({ to: 0, confirmed: true, observedPercent: 0, reapplied: true });
    expect(r.json<{ detail: string }>().detail).toMatch(/^applied again after waiting for the lock: .*SELF_HOSTED_TRAFFIC_PERCENT=0$/);
    expect(state()).toMatchObject({ percent: 0 });
    expect(rollbackRequests(join(cwd, '.embedctl'))).toEqual([]);
  });

  it('a rollback that crashed after announcing itself does not block forward moves', async () => {
    // A dead process's request, as kill -9 between the announcement and the record leaves it.
    const child = execa(process.execPath, ['-e', '0']);
    const deadPid = child.pid!;
    await child;
    writeFileSync(`${statePath()}.rollback-deadbeef0000`, JSON.stringify({ pid: deadPid, host: hostname(), user: 'x', since: clock.now().toISOString(), reason: 'crashed' }));
    const r = await cli(['next']);
    expect(r.code, r.stderr).toBe(0);
    expect(trafficEnv()).toBe('SELF_HOSTED_TRAFFIC_PERCENT=25\n');
    expect(rollbackRequests(join(cwd, '.embedctl'))).toEqual([]);
  });
});

const { skip } = nginxOrSkip();

describe.skipIf(skip)('rollback racing a forward move (nginx driver, real nginx)', () => {
  const tmp = tempDir('embedctl-rollout-race-');
  afterAll(() => tmp.cleanup());
  let cwd: string;
  let self: Standin;
  let hosted: Standin;
  let nginx: NginxInstance;
  let splitDir: string;

  beforeEach(async () => {
    cwd = join(tmp.dir, `p${Math.random().toString(36).slice(2)}`);
    const prefix = join(cwd, '.embedctl', 'nginx');
    mkdirSync(prefix, { recursive: true });
    // A slow self-hosted side: sampling a 25 % split takes a second or more.
    [self, hosted] = await Promise.all([startStandin('selfhosted', { delayMs: 400 }), startStandin('hosted')]);
    splitDir = join(prefix, 'split');
    const options: Omit<NginxConfOptions, 'selfHostedPercent'> = {
      listen: { host: '127.0.0.1', port: await freePort() },
      selfHosted: [`127.0.0.1:${self.port}`],
      hostedUrl: `${hosted.url}/v1/embeddings`,
      splitDir,
      workerProcesses: 1,
      errorLog: 'error.log',
      accessLog: 'access.log',
    };
    const confPath = join(prefix, 'nginx.conf');
    writeFileSync(confPath, renderNginxConf({ ...options, selfHostedPercent: 0 }));
    nginx = await startNginx({ confPath, prefix });
    writeFileSync(join(cwd, '.embedctl', 'deploy.json'), JSON.stringify({ version: 1, source: 'test', nginx: { confPath, prefix, options } }));
  });
  afterEach(async () => {
    await nginx.stop();
    await Promise.all([self.stop(), hosted.stop()]);
  });

  it('a rollback while `next` samples its new share: `next` says it was overtaken (exit 4); the rollback applies 0 % again and confirms it', { timeout: 60_000 }, async () => {
    const clock = manualClock(new Date());
    const cli = (args: string[]) => runCli(['rollout', ...args], { cwd, now: clock.now, env });
    writeReports(cwd, clock.now());
    const first = await cli(['to', '10']);
    expect(first.code, first.stderr).toBe(0);
    clock.advance(8 * DAY);
    writeReports(cwd, clock.now());

    const forward = cli(['next']);
    // The split is written, the samples are under way (slowly): now the pager goes off.
    for (let i = 0; i < 500 && !/^g-25-/.test(readlinkSync(join(splitDir, 'current'))); i++) await sleep(10);
    expect(readlinkSync(join(splitDir, 'current'))).toMatch(/^g-25-/);
    const rb = await cli(['rollback', '--reason', 'pager', '--json']);
    const fwd = await forward;

    expect(fwd.code, fwd.stderr).toBe(4);
    expect(fwd.stderr).toMatch(/^embedctl: error: applied 25% self-hosted, but a rollback by alice@ops .* started while it applied; the rollback puts 0% back once this command released the lock$/m);
    expect(rb.code, rb.stderr).toBe(0);
    const doc = rb.json<{ from: number; confirmed: boolean; observedPercent: number; reapplied: boolean; detail: string }>();
    expect(doc).toMatchObject({ from: 25, confirmed: true, observedPercent: 0, reapplied: true });
    // The rollback's first 0 % had already replaced the 25 %: applied again, and sampled again.
    expect(doc.detail).toMatch(/^applied again after waiting for the lock: .*split: 0% -> 0% self-hosted, no reload; 200 samples via .*: 0% self-hosted/);

    expect(await (await fetch(`${nginx.url}/health`)).json()).toMatchObject({ selfHostedPercent: 0 });
    const sides = await pool(100, 10, async (i) => (await embed(nginx.url, { 'x-tenant-id': `after-${i}` })).backend);
    expect(sides.every((s) => s === 'hosted')).toBe(true);
    const st = JSON.parse(readFileSync(join(cwd, '.embedctl', 'rollout.json'), 'utf8'));
    expect(st.percent).toBe(0);
    expect(st.history.map((h: { action: string; to: number }) => `${h.action} ${h.to}`)).toEqual(['set 10', 'advance 25', 'rollback 0']);
    expect(existsSync(join(cwd, '.embedctl', 'rollout.json.lock'))).toBe(false);
    expect(rollbackRequests(join(cwd, '.embedctl'))).toEqual([]);
  });
});
