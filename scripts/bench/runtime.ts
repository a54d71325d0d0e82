/**
 * Runtime benchmark: what the HTTP server and its dynamic batcher cost and buy, measured against
 * baselines taken in the same run on the same machine.
 *
 *   npm run bench:runtime [-- --models default,tiny-bert --duration-ms 4000 --per-request 16]
 *
 * Per model:
 *   server64      64 concurrent clients, each sending requests of --per-request texts, for D ms
 *   raw           a LoadedModel.embed loop (session.run, inputs pre-tokenised) at the server's
 *                 observed mean batch size, no HTTP: the ceiling the server is measured against;
 *                 also the same loop with tokenisation (encode + embed), to split the gap into
 *                 tokeniser cost and HTTP/JSON/batching cost
 *   serial1       one client, one text per request, each sent after the last answered
 *   concurrent1   64 clients, one text per request (the traffic dynamic batching is for)
 *   unbatched1    the same with --max-batch-size 1 (concurrency without batching)
 * The machine may be shared, so server64/raw and concurrent1/serial1 are measured in interleaved
 * rounds (--rounds, default 3) and each ratio is the median of the per-round ratios.
 * Ratios: serverVsRaw = server64 / raw (target >= 0.85), batchingVsSerial = concurrent1 / serial1
 * (target >= 5). Writes bench-results/runtime.json and prints a summary table.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadModel, type Model } from '../../runtime/model.js';

const here = fileURLToPath(new URL('.', import.meta.url));
// dist/scripts/bench -> repository root
const root = resolve(here, '..', '..', '..');
const entry = join(root, 'dist', 'runtime', 'main.js');

const { values: flags } = parseArgs({
  options: {
    models: { type: 'string', default: 'default,tiny-bert' },
    'duration-ms': { type: 'string', default: '4000' },
    'per-request': { type: 'string', default: '16' },
    clients: { type: 'string', default: '64' },
    rounds: { type: 'string', default: '3' },
    out: { type: 'string', default: join(root, 'bench-results', 'runtime.json') },
  },
});
const MODELS = flags.models!.split(',').map((s) => s.trim()).filter(Boolean);
const DURATION = Number(flags['duration-ms']);
const PER_REQUEST = Number(flags['per-request']);
const CLIENTS = Number(flags.clients);
const ROUNDS = Number(flags.rounds);

const WORDS = (
  'the of and to in is for that on with as by at from this be are or an was it not which have has can more ' +
  'river city music green ocean market winter garden science history light mountain coffee train paper doctor ' +
  'school money forest window summer bread engine island data model search query result vector server cloud ' +
  'price report customer order invoice policy network storage memory language question answer document page'
).split(' ');

/** Deterministic texts of 4..60 words, like a mix of queries and passages. */
function corpus(n: number): string[] {
  let s = 12345;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  return Array.from({ length: n }, () => {
    const len = 4 + Math.floor(rnd() ** 2 * 56);
    return Array.from({ length: len }, () => WORDS[Math.floor(rnd() * WORDS.length)]).join(' ');
  });
}

const pct = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : NaN);
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

interface Phase {
  clients: number;
  perRequest: number;
  requests: number;
  embeddings: number;
  errors: number;
  seconds: number;
  embeddingsPerSec: number;
  latencyMs: { p50: number; p95: number; p99: number };
  meanBatchSize?: number;
  /** Per-request latencies (dropped from the JSON once merged). */
  lat?: number[];
  rounds?: number[];
}

async function startRuntime(model: string, args: string[]) {
  const child = spawn(process.execPath, [entry, '--model', model, '--port', '0', '--host', '127.0.0.1', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = await new Promise<string>((resolveUrl, reject) => {
    const t = setTimeout(() => reject(new Error('runtime did not start in 60 s')), 60_000);
    createInterface({ input: child.stderr! }).on('line', (line) => {
      if (line.includes('"event":"ready"')) {
        clearTimeout(t);
        resolveUrl(url0!);
      }
      const m = /"event":"listening","url":"([^"]+)"/.exec(line);
      if (m) url0 = m[1];
      if (line.includes('"event":"fatal"')) reject(new Error(line));
    });
    let url0: string | undefined;
  });
  return {
    url,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

function postJson(agent: Agent, url: URL, body: string): Promise<number> {
  return new Promise((resolveStatus, reject) => {
    const req = request(
      { agent, host: url.hostname, port: url.port, path: '/v1/embeddings', method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        res.on('data', () => {});
        res.on('end', () => resolveStatus(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function load(url: string, texts: string[], clients: number, perRequest: number, ms: number): Promise<Phase> {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const u = new URL(url);
  // Bodies prepared up front so the client side spends its time sending, not serialising.
  const bodies = Array.from({ length: 256 }, (_, i) => JSON.stringify({ input: Array.from({ length: perRequest }, (_, k) => texts[(i * perRequest + k) % texts.length]) }));
  const lat: number[] = [];
  let errors = 0;
  let requests = 0;
  const t0 = performance.now();
  const end = t0 + ms;
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      let i = c;
      while (performance.now() < end) {
        const s = performance.now();
        const status = await postJson(agent, u, bodies[i++ % bodies.length]!).catch(() => 0);
        lat.push(performance.now() - s);
        requests++;
        if (status !== 200) errors++;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  agent.destroy();
  lat.sort((a, b) => a - b);
  const embeddings = (requests - errors) * perRequest;
  return {
    clients,
    perRequest,
    requests,
    embeddings,
    errors,
    seconds: round(seconds, 3),
    embeddingsPerSec: round(embeddings / seconds, 1),
    latencyMs: { p50: round(pct(lat, 50)), p95: round(pct(lat, 95)), p99: round(pct(lat, 99)) },
    lat,
  };
}

type Encoded = ReturnType<Model['encode']>;

/** A LoadedModel.embed loop over pre-tokenised batches: session.run and pooling, nothing else. */
async function rawLoop(m: Model, encoded: Encoded[], batchSize: number, ms: number) {
  const lat: number[] = [];
  let n = 0;
  let i = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    const start = (i++ * batchSize) % (encoded.length - batchSize);
    const s = performance.now();
    await m.embed(encoded.slice(start, start + batchSize));
    lat.push(performance.now() - s);
    n += batchSize;
  }
  return { embeddingsPerSec: n / ((performance.now() - t0) / 1000), lat };
}

/** The same loop with tokenisation in it: what the server must do per input before HTTP/JSON. */
async function pipelineLoop(m: Model, texts: string[], batchSize: number, ms: number) {
  let n = 0;
  let i = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    const start = (i++ * batchSize) % (texts.length - batchSize);
    await m.embed(texts.slice(start, start + batchSize).map((t) => m.encode(t)));
    n += batchSize;
  }
  return n / ((performance.now() - t0) / 1000);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Runs of one phase merged: median throughput over rounds, percentiles over all requests. */
function merge(runs: Phase[]): Phase {
  const lat = runs.flatMap((r) => r.lat!).sort((a, b) => a - b);
  const sum = (k: 'requests' | 'embeddings' | 'errors' | 'seconds') => runs.reduce((a, r) => a + r[k], 0);
  const batches = runs.filter((r) => r.meanBatchSize !== undefined);
  return {
    clients: runs[0]!.clients,
    perRequest: runs[0]!.perRequest,
    requests: sum('requests'),
    embeddings: sum('embeddings'),
    errors: sum('errors'),
    seconds: round(sum('seconds'), 3),
    embeddingsPerSec: round(median(runs.map((r) => r.embeddingsPerSec)), 1),
    latencyMs: { p50: round(pct(lat, 50)), p95: round(pct(lat, 95)), p99: round(pct(lat, 99)) },
    ...(batches.length ? { meanBatchSize: round(batches.reduce((a, r) => a + r.meanBatchSize!, 0) / batches.length, 1) } : {}),
    rounds: runs.map((r) => r.embeddingsPerSec),
  };
}

async function measured(url: string, run: () => Promise<Phase>): Promise<Phase> {
  const before = await meanBatchSizeCounts(url);
  const p = await run();
  const after = await meanBatchSizeCounts(url);
  p.meanBatchSize = round((after.sum - before.sum) / Math.max(1, after.count - before.count), 1);
  return p;
}

async function benchModel(model: string) {
  const texts = corpus(4096);
  const log = (s: string) => process.stderr.write(`bench:runtime ${model}: ${s}\n`);
  const direct = await loadModel(model);
  const encoded = texts.map((t) => direct.encode(t));
  const slice = DURATION / ROUNDS;

  // The machine is shared and its load drifts, so each comparison is made in interleaved rounds
  // (server, then raw at the batch size the server just ran) and the medians are compared.
  let rt = await startRuntime(model, []);
  await load(rt.url, texts, 8, PER_REQUEST, 300); // warm the JIT and connections
  const server: Phase[] = [];
  const rawRuns: Array<{ embeddingsPerSec: number; lat: number[]; batchSize: number }> = [];
  const pipeline: number[] = [];
  const serial: Phase[] = [];
  const concurrent: Phase[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    log(`round ${r + 1}/${ROUNDS}: server (${CLIENTS} clients x ${PER_REQUEST} texts), raw loop, serial and concurrent single-text requests`);
    const s = await measured(rt.url, () => load(rt.url, texts, CLIENTS, PER_REQUEST, slice));
    server.push(s);
    const batchSize = Math.max(1, Math.round(s.meanBatchSize!));
    rawRuns.push({ ...(await rawLoop(direct, encoded, batchSize, slice / 2)), batchSize });
    pipeline.push(await pipelineLoop(direct, texts, batchSize, slice / 4));
    serial.push(await load(rt.url, texts, 1, 1, slice / 2));
    concurrent.push(await measured(rt.url, () => load(rt.url, texts, CLIENTS, 1, slice / 2)));
  }
  await rt.stop();

  log('concurrent single-text requests without batching (--max-batch-size 1)');
  rt = await startRuntime(model, ['--max-batch-size', '1']);
  await load(rt.url, texts, 8, 1, 300);
  const unbatched1 = await load(rt.url, texts, CLIENTS, 1, slice);
  await rt.stop();
  await direct.close();

  const server64 = merge(server);
  const serial1 = merge(serial);
  const concurrent1 = merge(concurrent);
  const rawLat = rawRuns.flatMap((r) => r.lat).sort((a, b) => a - b);
  const rawRun = {
    batchSize: Math.round(median(rawRuns.map((r) => r.batchSize))),
    embeddingsPerSec: round(median(rawRuns.map((r) => r.embeddingsPerSec)), 1),
    rounds: rawRuns.map((r) => round(r.embeddingsPerSec, 1)),
    batchLatencyMs: { p50: round(pct(rawLat, 50), 3), p95: round(pct(rawLat, 95), 3), p99: round(pct(rawLat, 99), 3) },
    withTokenizerPerSec: round(median(pipeline), 1),
  };
  delete unbatched1.lat;
  return {
    model,
    provider: direct.provider,
    meanTokensPerText: round(encoded.reduce((a, e) => a + e.ids.length, 0) / encoded.length, 1),
    server64,
    raw: rawRun,
    serial1,
    concurrent1,
    unbatched1,
    ratios: {
      serverVsRaw: round(median(server.map((s, i) => s.embeddingsPerSec / rawRuns[i]!.embeddingsPerSec)), 3),
      serverVsRawWithTokenizer: round(median(server.map((s, i) => s.embeddingsPerSec / pipeline[i]!)), 3),
      batchingVsSerial: round(median(concurrent.map((c, i) => c.embeddingsPerSec / serial[i]!.embeddingsPerSec)), 2),
      batchingVsUnbatched: round(concurrent1.embeddingsPerSec / unbatched1.embeddingsPerSec, 2),
    },
  };
}

async function meanBatchSizeCounts(url: string) {
  const text = await fetch(`${url}/metrics`).then((r) => r.text());
  return {
    sum: Number(/^embedctl_batch_size_sum (\S+)/m.exec(text)?.[1] ?? 0),
    count: Number(/^embedctl_batch_size_count (\S+)/m.exec(text)?.[1] ?? 0),
  };
}

const t0 = performance.now();
const results = [];
for (const m of MODELS) results.push(await benchModel(m));
const doc = {
  schema: 'embedctl.bench.runtime/v1',
  date: new Date().toISOString(),
  machine: { cpus: availableParallelism(), cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version },
  settings: { durationMs: DURATION, perRequest: PER_REQUEST, clients: CLIENTS, rounds: ROUNDS },
  loadAverage: loadavg().map((x) => round(x, 2)),
  targets: { serverVsRaw: 0.85, batchingVsSerial: 5 },
  results,
  totalSeconds: round((performance.now() - t0) / 1000, 1),
};
mkdirSync(resolve(flags.out!, '..'), { recursive: true });
writeFileSync(flags.out!, `${JSON.stringify(doc, null, 2)}\n`);

const rows = results.map((r) => [
  r.model,
  r.server64.embeddingsPerSec,
  r.raw.embeddingsPerSec,
  r.ratios.serverVsRaw,
  r.ratios.serverVsRawWithTokenizer,
  r.serial1.embeddingsPerSec,
  r.concurrent1.embeddingsPerSec,
  r.ratios.batchingVsSerial,
  `${r.server64.latencyMs.p50}/${r.server64.latencyMs.p95}/${r.server64.latencyMs.p99}`,
]);
const headers = ['model', 'server64 emb/s', 'raw emb/s', 'server/raw', 'server/(tok+raw)', 'serial1 emb/s', 'conc1 emb/s', 'batch/serial', 'server64 p50/p95/p99 ms'];
const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
const line = (cells: unknown[]) => cells.map((c, i) => String(c).padStart(widths[i]!)).join('  ');
process.stdout.write(`${line(headers)}\n${rows.map(line).join('\n')}\n`);
process.stdout.write(`targets: server/raw >= ${doc.targets.serverVsRaw}, batch/serial >= ${doc.targets.batchingVsSerial}; wrote ${flags.out} in ${doc.totalSeconds} s\n`);
