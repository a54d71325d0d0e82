// The reload-free split (issue 14): 100 buckets hashed by nginx's split_clients, a file per
// self-hosted bucket in the split directory. Keyed assignments against the real nginx, the
// hybrid client's routing, and the single `P%` cut the gateway used before.
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readSplit, writeSplit } from '../src/adapters/traffic/split-dir.js';
import { bucketOf, murmurhash2, routesToSelfHosted, singleCut } from '../src/client/route.js';
import { renderNginxConf, splitDirOf, workersRunAsRoot } from '../src/core/render.js';
import { runCli } from './helpers/cli.js';
import { embed, nginxOrSkip, pool, startGateway, startStandin, stopAfterEach, tempDir } from './helpers/gateway.js';

const { skip } = nginxOrSkip();
const tmp = tempDir('embedctl-nginx-split-');
afterAll(() => tmp.cleanup());
const running = stopAfterEach();

describe('bucket arithmetic', () => {
  it('whole percents: bucket < P is the former single P% cut except for a band of at most 94 of 2^32 hashes just below it', () => {
    const width = Math.floor((100 * 0xffffffff) / 10000);
    for (let p = 1; p < 100; p++) {
      const band = singleCut(p) - p * width;
      expect(band).toBeGreaterThanOrEqual(0);
      expect(band).toBeLessThanOrEqual(94);
    }
    // 20,000 keys at a handful of shares: the same side under both rules.
    const keys = Array.from({ length: 20_000 }, (_, i) => `tenant-${i}`);
    for (const p of [1, 5, 10, 25, 33, 50, 75, 99]) {
      expect(keys.filter((k) => routesToSelfHosted(k, p) !== murmurhash2(k) < singleCut(p))).toEqual([]);
    }
    expect(keys.every((k) => bucketOf(k) >= 0 && bucketOf(k) <= 99)).toBe(true);
  });

  it('the config refuses fractional shares, naming the field', () => {
    const base = { listen: { port: 8000 }, selfHosted: ['127.0.0.1:8081'], hostedUrl: 'http://127.0.0.1:9000/v1/embeddings' };
    expect(() => renderNginxConf({ ...base, selfHostedPercent: 12.5 })).toThrow(/^selfHostedPercent must be a whole percent \(the gateway splits keys into 100 buckets of 1 %\), got 12\.5$/);
    expect(() => renderNginxConf({ ...base, selfHostedPercent: 10, splitDir: 'relative/split' })).toThrow(/splitDir must be a plain path/);
    expect(splitDirOf(renderNginxConf({ ...base, selfHostedPercent: 10 }))).toBe('/etc/nginx/embedctl-split');
  });
});

describe('the split directory', () => {
  it('a generation per move, `current` swapped by rename, older generations gone, everything world-readable', async () => {
    const dir = join(tmp.dir, 'split-only');
    expect(await readSplit(dir)).toEqual({ generation: undefined, percent: undefined });
    const first = await writeSplit(dir, 30);
    const second = await writeSplit(dir, 3, { generation: first.generation });
    expect(second.previous).toBe(first.generation);
    expect(await readSplit(dir)).toEqual({ generation: second.generation, percent: 3 });
    expect(lstatSync(join(dir, 'current')).isSymbolicLink()).toBe(true);
    expect(readdirSync(dir).sort()).toEqual([second.generation, 'current'].sort());
    expect(readdirSync(join(dir, 'current')).sort()).toEqual(['0', '1', '2', 'health.json']);
    expect(statSync(join(dir, 'current')).mode & 0o777).toBe(0o755);
    expect(statSync(join(dir, 'current', '2')).mode & 0o777).toBe(0o644);
    expect(JSON.parse(readFileSync(join(dir, 'current', 'health.json'), 'utf8'))).toEqual({ status: 'ok', component: 'nginx', selfHostedPercent: 3, split: second.generation });
    // A writer that read an older generation changes nothing.
    await expect(writeSplit(dir, 90, { generation: first.generation })).rejects.toThrow(/changed while embedctl worked .*nothing applied/);
    expect((await readSplit(dir)).percent).toBe(3);
    expect(existsSync(join(dir, first.generation))).toBe(false);
  });
});

describe('status without a gateway to ask', () => {
  it('reads the live split from the rendered config\'s split directory, else the rendered share', async () => {
    const cwd = join(tmp.dir, 'status');
    mkdirSync(join(cwd, 'deploy', 'nginx'), { recursive: true });
    const splitDir = join(cwd, 'split');
    writeFileSync(join(cwd, 'deploy', 'nginx', 'nginx.conf'), renderNginxConf({ listen: { port: 8000 }, selfHosted: ['127.0.0.1:8081'], hostedUrl: 'http://127.0.0.1:9000/v1/embeddings', selfHostedPercent: 5, splitDir }));
    const before = await runCli(['status', '--json'], { cwd });
    expect(before.json<{ split: { percent: number; source: string } }>().split).toEqual({ percent: 5, source: join(cwd, 'deploy', 'nginx', 'nginx.conf') });
    await writeSplit(splitDir, 42);
    const after = await runCli(['status', '--json'], { cwd });
    expect(after.json<{ split: { percent: number; source: string } }>().split).toEqual({ percent: 42, source: join(splitDir, 'current') });
  });
});

describe.skipIf(skip)('keyed split: the real nginx against the hybrid client', () => {
  it('at 0, 1, 7, 25, 50, 93, 99 and 100 %, 300 keys land where routesToSelfHosted says, and /health reports the share', { timeout: 60_000 }, async () => {
    const self = await startStandin('self');
    const hosted = await startStandin('hosted');
    running.push(self, hosted);
    const gw = await startGateway(tmp.dir, { selfHosted: [`127.0.0.1:${self.port}`], hostedUrl: `${hosted.url}/v1/embeddings`, selfHostedPercent: 40 });
    running.push(gw);
    const keys = Array.from({ length: 300 }, (_, i) => `tenant-${i}`);
    const check = async (percent: number) => {
      const sides = await pool(keys.length, 8, async (i) => (await embed(gw.nginx.url, { 'x-tenant-id': keys[i]! })).backend);
      return keys.filter((k, i) => routesToSelfHosted(k, percent) !== (sides[i] === 'selfhosted'));
    };
    // Before any split is written: the rendered share, and /health says so.
    expect(await check(40)).toEqual([]);
    expect(await (await fetch(`${gw.nginx.url}/health`)).json()).toMatchObject({ selfHostedPercent: 40, split: 'rendered' });
    for (const percent of [0, 1, 7, 25, 50, 93, 99, 100]) {
      const { generation } = await writeSplit(join(gw.prefix, 'split'), percent);
      expect(await check(percent), `${percent}%`).toEqual([]);
      const health = await fetch(`${gw.nginx.url}/health`);
      expect(health.headers.get('x-embedctl-config')).toMatch(/^[0-9a-f]{12}$/);
      expect(health.headers.get('content-type')).toBe('application/json');
      expect(await health.json()).toEqual({ status: 'ok', component: 'nginx', selfHostedPercent: percent, split: generation });
    }
  });
});

describe('workers of a local stack started as root', () => {
  it('`user root;` only when asked; the split writer then does not demand world-searchable parents', async () => {
    const base = { listen: { host: '127.0.0.1', port: 1 }, selfHosted: ['127.0.0.1:2'], hostedUrl: 'http://127.0.0.1:3/v1/embeddings', selfHostedPercent: 10 };
    expect(workersRunAsRoot(renderNginxConf(base))).toBe(false);
    const asRoot = renderNginxConf({ ...base, workerUser: 'root' });
    expect(asRoot).toMatch(/^user root;\nworker_processes /m);
    expect(workersRunAsRoot(asRoot)).toBe(true);
    expect(() => renderNginxConf({ ...base, workerUser: 'root; include /etc/passwd' })).toThrow(/workerUser must be a user name/);
    if (process.getuid?.() !== 0) return;
    // A 0700 directory above the split: refused for nobody's workers, written for root's.
    const t = tempDir('embedctl-split-root-');
    try {
      const dir = join(t.dir, 'private', 'split');
      mkdirSync(join(t.dir, 'private'), { mode: 0o700 });
      await expect(writeSplit(dir, 20)).rejects.toThrow(/not searchable by others/);
      await writeSplit(dir, 20, undefined, { workersAsRoot: true });
      expect((await readSplit(dir)).percent).toBe(20);
    } finally {
      t.cleanup();
    }
  });
});
