/**
 * Start-up time of the CLI against bare node, measured in the same run: `embedctl --version`,
 * `embedctl rollout --help` and `embedctl --help` must stay within 4x of `node -e 0` (commands are
 * imported only when they run). Runs are interleaved so a busy machine slows every case alike;
 * the figure is the median of each.
 *   npm run build && node dist/scripts/bench/startup.js   ->   bench-results/startup.json
 * Env: BENCH_STARTUP_RUNS (default 15).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { writeJsonAtomic } from '../../src/util/fs.js';
import { packageRoot } from '../../src/util/paths.js';

const RUNS = Number(process.env.BENCH_STARTUP_RUNS ?? 15);
const LIMIT = 4;
const bin = join(packageRoot(), 'bin', 'embedctl.js');
const cases: Record<string, string[]> = {
  'node -e 0': ['-e', '0'],
  'embedctl --version': [bin, '--version'],
  'embedctl rollout --help': [bin, 'rollout', '--help'],
  'embedctl --help': [bin, '--help'],
};

function once(args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}: ${String(r.stderr).slice(0, 500)}`);
  return ms;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const samples: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
for (const args of Object.values(cases)) once(args); // warm the file cache
for (let i = 0; i < RUNS; i++) for (const [name, args] of Object.entries(cases)) samples[name]!.push(once(args));

const baseline = median(samples['node -e 0']!);
const results = Object.entries(samples).map(([name, xs]) => {
  const ms = median(xs);
  return { command: name, medianMs: Math.round(ms * 10) / 10, minMs: Math.round(Math.min(...xs) * 10) / 10, ratio: Math.round((ms / baseline) * 100) / 100 };
});
for (const r of results) process.stderr.write(`${r.command.padEnd(26)} median ${String(r.medianMs).padStart(7)} ms  (min ${r.minMs})  ${r.ratio}x node -e 0\n`);
const within = results.every((r) => r.ratio <= LIMIT);
const out = join(packageRoot(), 'bench-results', 'startup.json');
await writeJsonAtomic(out, { schema: 'embedctl.bench.startup/v1', runs: RUNS, limitRatio: LIMIT, baselineMs: Math.round(baseline * 10) / 10, withinLimit: within, results, node: process.version, at: new Date().toISOString() });
process.stderr.write(`${within ? 'within' : 'OVER'} ${LIMIT}x of node -e 0; wrote ${out}\n`);
