/**
 * Issue 14 isolation: small-request latency alone vs. while clients flood the runtime with
 * 6 MB-input requests. Two configurations: the defaults (the body limit that fits
 * --max-request-tokens refuses 6 MB with a 413 before parsing) and --max-body-bytes 8 MiB (the
 * 6 MB inputs are parsed, cut to maxTokens x 32 characters, tokenised and embedded). Target:
 * small p50 under the flood at most 10x the same run's baseline.
 *   node dist/scripts/bench/isolation.js [--model default] [--duration-ms 4000] [--flooders 4]
 */
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { closedLoop, pct, post, r2, startRuntime, writeResult } from './runtime-lib.js';

const { values: f } = parseArgs({ options: { model: { type: 'string', default: 'default' }, 'duration-ms': { type: 'string', default: '4000' }, flooders: { type: 'string', default: '4' }, small: { type: 'string', default: '8' } } });
const DURATION = Number(f['duration-ms']);
// The flood runs in its own process: sending 6 MB bodies from this one would slow the clock
// that measures the small requests.
const FLOODER = `
const big = JSON.stringify({ input: ['lorem ipsum dolor sit amet '.repeat(${Math.ceil((6 * 2 ** 20) / 27)}).slice(0, ${6 * 2 ** 20})] });
const counts = {}; let on = true;
process.on('SIGTERM', () => { on = false; });
const one = async () => { while (on) { const s = await fetch(process.argv[1] + '/v1/embeddings', { method: 'POST', headers: { 'content-type': 'application/json' }, body: big }).then(async (r) => { await r.arrayBuffer(); return r.status; }, () => -1); counts[s] = (counts[s] ?? 0) + 1; } };
Promise.all(Array.from({ length: Number(process.argv[2]) }, one)).then(() => { process.stdout.write(JSON.stringify(counts)); });
`;

async function smallLatencies(url: string, flood: boolean) {
  const lat: number[] = [];
  let big: Record<string, number> = {};
  const flooder = flood ? spawn(process.execPath, ['-e', FLOODER, url, String(f.flooders)], { stdio: ['ignore', 'pipe', 'inherit'] }) : undefined;
  let floodOut = '';
  flooder?.stdout!.on('data', (d) => (floodOut += d));
  const flooding = flooder ? new Promise<void>((r) => flooder.once('exit', () => r())) : Promise.resolve();
  if (flooder) await new Promise((r) => setTimeout(r, 500)); // the flood is on before measuring
  await closedLoop(Number(f.small), DURATION, async (c) => {
    const r = await post(url, '/v1/embeddings', { input: [`a short query number ${c} ${lat.length}`] });
    if (r.status === 200) lat.push(r.ms);
  });
  flooder?.kill('SIGTERM');
  await flooding;
  if (floodOut) big = JSON.parse(floodOut) as Record<string, number>;
  return { requests: lat.length, p50: r2(pct(lat, 50)), p99: r2(pct(lat, 99)), bigRequests: big };
}

const configs: Array<[string, string[]]> = [
  ['default limits (6 MB -> 413 before parsing)', []],
  ['--max-body-bytes 8 MiB (6 MB inputs cut and embedded)', ['--max-body-bytes', String(8 * 2 ** 20)]],
];
const results = [];
for (const [name, args] of configs) {
  const rt = await startRuntime(['--model', f.model!, ...args]);
  try {
    await smallLatencies(rt.url, false); // warm
    const base = await smallLatencies(rt.url, false);
    const flood = await smallLatencies(rt.url, true);
    const ratio = r2(flood.p50 / base.p50);
    results.push({ config: name, baseline: base, underFlood: flood, p50Ratio: ratio, meets: ratio <= 10 });
    process.stdout.write(`${name}: small p50 ${base.p50} ms alone, ${flood.p50} ms under the flood (x${ratio}); big replies ${JSON.stringify(flood.bigRequests)}\n`);
  } finally {
    await rt.stop();
  }
}
const out = writeResult('isolation', { settings: { model: f.model, durationMs: DURATION, flooders: Number(f.flooders), smallClients: Number(f.small), bigInputBytes: 6 * 2 ** 20 }, target: 'small-request p50 under a 6 MB flood <= 10x baseline', results });
process.stdout.write(`wrote ${out}\n`);
