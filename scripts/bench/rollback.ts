/**
 * How long `embedctl rollout --rollback` takes with the nginx driver, from the decision to a
 * confirmed 0 % (write the split directory nginx reads per request, no reload; sample 200
 * requests), against a bare nginx reload (render + reload + wait for the new workers: what a move
 * cost before the split left the config), measured in the same run on real nginx over loopback
 * with two local stand-ins. The runbook allows five minutes.
 *   npm run build && node dist/scripts/bench/rollback.js   ->   bench-results/rollback.json
 * Env: BENCH_ROLLBACKS (default 10), BENCH_SAMPLES (default 200).
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { reloadNginx, startNginx } from '../../src/adapters/nginx.js';
import { main } from '../../src/cli.js';
import { sleep } from '../../src/context.js';
import { renderNginxConf, type NginxConfOptions } from '../../src/core/render.js';
import { writeJsonAtomic } from '../../src/util/fs.js';
import { packageRoot } from '../../src/util/paths.js';

const N = Number(process.env.BENCH_ROLLBACKS ?? 10);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 200);
const log = (s: string) => process.stderr.write(`${s}\n`);

async function standin(name: string): Promise<{ port: number; server: Server }> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'x-standin': name });
      res.end('{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.6,0.8]}]}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as AddressInfo).port, server };
}

async function freePort(): Promise<number> {
  const { port, server } = await standin('probe');
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

async function rollout(cwd: string, args: string[]): Promise<{ code: number; doc: Record<string, unknown>; err: string }> {
  let out = '';
  let err = '';
  const stdout = new PassThrough();
  stdout.on('data', (d) => (out += d));
  const stderr = new PassThrough();
  stderr.on('data', (d) => (err += d));
  const code = await main(['node', 'embedctl', 'rollout', ...args, '--json', '--samples', String(SAMPLES)], {
    stdout,
    stderr,
    env: { PATH: process.env.PATH, CI: 'true', EMBEDCTL_USER: 'bench' },
    cwd,
    now: () => new Date(),
    sleep,
    isTTY: false,
    adapters: {},
  });
  return { code, doc: out ? (JSON.parse(out) as Record<string, unknown>) : {}, err: err.trim().split('\n').pop() ?? '' };
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return { n: s.length, min: s[0]!, median: q(0.5), p95: q(0.95), max: s[s.length - 1]! };
};

const dir = mkdtempSync(join(tmpdir(), 'embedctl-bench-rollback-'));
chmodSync(dir, 0o755); // nginx started as root reads the split directory as `nobody`
const self = await standin('selfhosted');
const hosted = await standin('hosted');
const prefix = join(dir, '.embedctl', 'nginx');
mkdirSync(prefix, { recursive: true });
const options: Omit<NginxConfOptions, 'selfHostedPercent'> = {
  listen: { host: '127.0.0.1', port: await freePort() },
  selfHosted: [`127.0.0.1:${self.port}`],
  hostedUrl: `http://127.0.0.1:${hosted.port}/v1/embeddings`,
  splitDir: join(prefix, 'split'),
  workerProcesses: 1,
  errorLog: 'error.log',
  accessLog: 'access.log',
};
const confPath = join(prefix, 'nginx.conf');
writeFileSync(confPath, renderNginxConf({ ...options, selfHostedPercent: 0 }));
const nginx = await startNginx({ confPath, prefix });
writeFileSync(join(dir, '.embedctl', 'deploy.json'), JSON.stringify({ version: 1, source: 'bench', nginx: { confPath, prefix, options } }));
const reports = join(dir, '.embedctl', 'reports');
mkdirSync(reports, { recursive: true });
const at = new Date().toISOString();
// Passing evidence in the contracts' shapes (src/contracts/), so the gates let the step through.
const evidence: Record<string, unknown> = {
  'load-test.json': { schema: 'embedctl.load-test/v1', generatedAt: at, errorRate: 0, latencyMs: { p50: 5, p95: 10, p99: 20 } },
  'verify-consistency.json': { schema: 'embedctl.verify-consistency/v1', generatedAt: at, count: 100, cosine: { min: 0.9999, mean: 1, p05: 0.9999 }, belowWarn: 0, verdict: 'pass' },
  'rag-overlap.json': { schema: 'embedctl.rag-overlap/v1', generatedAt: at, queries: 50, corpus: 200, overlap: { mean: 0.9, min: 0.7 } },
  'cost-report.json': { schema: 'embedctl.cost-report/v1', generatedAt: at, monthly: { tokensPerMonth: 1e9, hosted: 500, onDemand: { total: 400 }, spot: { total: 100 } }, recommendation: { decision: 'migrate', option: 'spot', reason: 'bench' } },
};
for (const [name, doc] of Object.entries(evidence)) writeFileSync(join(reports, name), JSON.stringify(doc));

try {
  const rollbacks: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < N; i++) {
    const up = await rollout(dir, ['to', '10', '--force', '--reason', 'bench']);
    if (up.code !== 0) throw new Error(`rollout to 10 exited ${up.code}: ${up.err}`);
    const down = await rollout(dir, ['rollback', '--reason', 'bench']);
    if (down.code !== 0 || down.doc.confirmed !== true) throw new Error(`rollback exited ${down.code}: ${JSON.stringify(down.doc)}`);
    rollbacks.push(down.doc.durationMs as number);
    // Baseline: a render + reload + wait-for-new-workers, without lock, state or sampling.
    const t0 = performance.now();
    writeFileSync(confPath, renderNginxConf({ ...options, selfHostedPercent: i % 2 ? 0 : 10 }));
    await reloadNginx({ confPath, prefix });
    bare.push(Math.round(performance.now() - t0));
  }
  const result = {
    bench: 'rollback',
    rollbacks: N,
    samplesPerConfirmation: SAMPLES,
    rollbackMs: stats(rollbacks),
    bareReloadMs: stats(bare),
    ratioMedian: Math.round((stats(rollbacks).median / Math.max(1, stats(bare).median)) * 100) / 100,
    runbookBudgetMs: 300_000,
  };
  log(`rollback (decision -> confirmed 0 %): median ${result.rollbackMs.median} ms, p95 ${result.rollbackMs.p95} ms over ${N}`);
  log(`bare render + reload + wait (no longer part of a move): median ${result.bareReloadMs.median} ms; ratio ${result.ratioMedian}x; runbook budget 300000 ms`);
  const out = join(packageRoot(), 'bench-results', 'rollback.json');
  await writeJsonAtomic(out, result);
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
} finally {
  await nginx.stop();
  self.server.close();
  hosted.server.close();
  self.server.closeAllConnections();
  hosted.server.closeAllConnections();
  rmSync(dir, { recursive: true, force: true });
}
