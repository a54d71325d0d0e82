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
 *   unbatched1    the same against a second server with --max-batch-size 1 (concurrency
 *                 without batching)
 * The machine may be shared, so server64/raw and concurrent1/serial1 are measured in interleaved
 * rounds (--rounds, default 3) and each ratio is the median of the per-round ratios.
 * Ratios: serverVsRaw = server64 / raw (target >= 0.85), batchingVsSerial = concurrent1 / serial1
 * (target >= 5). Writes bench-results/runtime.json and prints a summary table.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
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
  /** CPU time (all threads) the server process spent per embedding served. */
  serverCpuUsPerEmbedding?: number;
  /** Per-request latencies (dropped from the JSON once merged). */
  lat?: number[];
  rounds?: number[];
}

async function startRuntime(model: string, args: string[]) {
  // The access log goes to a file: a pipe this (busy) process drains late would block the
  // server's synchronous stderr writes and the benchmark would measure that instead.
  const logPath = join(tmpdir(), `embedctl-bench-runtime-${process.pid}-${Date.now()}.log`);
  const fd = openSync(logPath, 'w');
  const child = spawn(process.execPath, [entry, '--model', model, '--port', '0', '--host', '127.0.0.1', ...args], {
    stdio: ['ignore', 'ignore', fd],
  });
  closeSync(fd);
  let exitCode: number | null | undefined;
  const exited = new Promise<void>((r) =>
    child.once('exit', (code) => {
      exitCode = code;
      r();
    }),
  );
  const deadline = Date.now() + 60_000;
  let url: string | undefined;
  for (;;) {
    const text = readFileSync(logPath, 'utf8');
    url ??= /"event":"listening","url":"([^"]+)"/.exec(text)?.[1];
    if (url && text.includes('"event":"ready"')) break;
    if (exitCode !== undefined || Date.now() > deadline) throw new Error(`runtime did not start:\n${text.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    /** CPU seconds the server process has used so far (all threads), from /proc; NaN elsewhere. */
    cpuSeconds(): number {
      try {
        const f = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        // utime and stime are fields 14 and 15 of stat(5), in clock ticks (USER_HZ = 100 on Linux).
        return (Number(f[11]) + Number(f[12])) / 100;
      } catch {
        return NaN;
      }
    },
    async stop() {
      child.kill('SIGTERM');
      await exited;
      rmSync(logPath, { force: true });
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
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    const start = (i++ * batchSize) % (encoded.length - batchSize);
    const s = performance.now();
    await m.embed(encoded.slice(start, start + batchSize));
    lat.push(performance.now() - s);
    n += batchSize;
  }
  const cpu = process.cpuUsage(cpu0);
  return { embeddingsPerSec: n / ((performance.now() - t0) / 1000), lat, cpuUsPerEmbedding: (cpu.user + cpu.system) / n };
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
    ...(runs[0]!.serverCpuUsPerEmbedding !== undefined ? { serverCpuUsPerEmbedding: round(median(runs.map((r) => r.serverCpuUsPerEmbedding!)), 1) } : {}),
  };
}

type Runtime = Awaited<ReturnType<typeof startRuntime>>;

/** A phase plus what the server did meanwhile: mean batch size and CPU time per embedding. */
async function measured(rt: Runtime, run: () => Promise<Phase>): Promise<Phase> {
  const before = await meanBatchSizeCounts(rt.url);
  const cpu0 = rt.cpuSeconds();
  const p = await run();
  const cpu1 = rt.cpuSeconds();
  const after = await meanBatchSizeCounts(rt.url);
  p.meanBatchSize = round((after.sum - before.sum) / Math.max(1, after.count - before.count), 1);
  p.serverCpuUsPerEmbedding = round(((cpu1 - cpu0) / Math.max(1, p.embeddings)) * 1e6, 1);
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
  const rt = await startRuntime(model, []);
  // Same server with batching off: concurrency without batching, measured in the same rounds.
  const unbatchedRt = await startRuntime(model, ['--max-batch-size', '1']);
  await load(rt.url, texts, 8, PER_REQUEST, 300); // warm the JIT and connections
  await load(unbatchedRt.url, texts, 8, 1, 300);
  const server: Phase[] = [];
  const rawRuns: Array<{ embeddingsPerSec: number; lat: number[]; batchSize: number; cpuUsPerEmbedding: number }> = [];
  const pipeline: number[] = [];
  const serial: Phase[] = [];
  const concurrent: Phase[] = [];
  const unbatched: Phase[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    log(`round ${r + 1}/${ROUNDS}: server (${CLIENTS} clients x ${PER_REQUEST} texts), raw loop, serial, concurrent and unbatched single-text requests`);
    const s = await measured(rt, () => load(rt.url, texts, CLIENTS, PER_REQUEST, slice));
    server.push(s);
    const batchSize = Math.max(1, Math.round(s.meanBatchSize!));
    rawRuns.push({ ...(await rawLoop(direct, encoded, batchSize, slice / 2)), batchSize });
    pipeline.push(await pipelineLoop(direct, texts, batchSize, slice / 4));
    serial.push(await measured(rt, () => load(rt.url, texts, 1, 1, slice / 2)));
    concurrent.push(await measured(rt, () => load(rt.url, texts, CLIENTS, 1, slice / 2)));
    unbatched.push(await measured(unbatchedRt, () => load(unbatchedRt.url, texts, CLIENTS, 1, slice / 2)));
  }
  await Promise.all([rt.stop(), unbatchedRt.stop()]);
  await direct.close();

  const server64 = merge(server);
  const serial1 = merge(serial);
  const concurrent1 = merge(concurrent);
  const unbatched1 = merge(unbatched);
  const rawLat = rawRuns.flatMap((r) => r.lat).sort((a, b) => a - b);
  const rawRun = {
    batchSize: Math.round(median(rawRuns.map((r) => r.batchSize))),
    embeddingsPerSec: round(median(rawRuns.map((r) => r.embeddingsPerSec)), 1),
    rounds: rawRuns.map((r) => round(r.embeddingsPerSec, 1)),
    batchLatencyMs: { p50: round(pct(rawLat, 50), 3), p95: round(pct(rawLat, 95), 3), p99: round(pct(rawLat, 99), 3) },
    withTokenizerPerSec: round(median(pipeline), 1),
    cpuUsPerEmbedding: round(median(rawRuns.map((r) => r.cpuUsPerEmbedding)), 1),
  };
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
      batchingVsUnbatched: round(median(concurrent.map((c, i) => c.embeddingsPerSec / unbatched[i]!.embeddingsPerSec)), 2),
      // Contention-proof view: share of the server's CPU per embedding that is the model itself.
      serverVsRawCpu: round(median(server.map((s, i) => rawRuns[i]!.cpuUsPerEmbedding / s.serverCpuUsPerEmbedding!)), 3),
      batchingVsSerialCpu: round(median(concurrent.map((c, i) => serial[i]!.serverCpuUsPerEmbedding! / c.serverCpuUsPerEmbedding!)), 2),
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
  r.ratios.serverVsRawCpu,
  r.serial1.embeddingsPerSec,
  r.concurrent1.embeddingsPerSec,
  r.ratios.batchingVsSerial,
  `${r.server64.latencyMs.p50}/${r.server64.latencyMs.p95}/${r.server64.latencyMs.p99}`,
]);
const headers = ['model', 'server64 emb/s', 'raw emb/s', 'server/raw', 'server/(tok+raw)', 'cpu raw/server', 'serial1 emb/s', 'conc1 emb/s', 'batch/serial', 'server64 p50/p95/p99 ms'];
const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
const line = (cells: unknown[]) => cells.map((c, i) => String(c).padStart(widths[i]!)).join('  ');
process.stdout.write(`${line(headers)}\n${rows.map(line).join('\n')}\n`);
process.stdout.write(`targets: server/raw >= ${doc.targets.serverVsRaw}, batch/serial >= ${doc.targets.batchingVsSerial}; wrote ${flags.out} in ${doc.totalSeconds} s\n`);
