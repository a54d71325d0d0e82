import { chmodSync, existsSync, readFileSync, renameSync, truncateSync, unlinkSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseGatewayLogLine } from '../common/gateway-log.js';
import { Registry } from 'prom-client';
import { startGatewayLogFollower } from '../runtime/hooks/gateway-log.js';
import { parsePrometheus, type Sample } from '../src/core/rollout/prometheus.js';
import { embed, nginxOrSkip, pool, startGateway, startStandin, stopAfterEach, tempDir, type Standin, type TestGateway } from './helpers/gateway.js';
import { startRuntime, type RuntimeHandle } from './helpers/runtime.js';

/**
 * The runtime's --gateway-log follower against a real nginx gateway: what /metrics says about
 * the split and the fallbacks must be exactly what the gateway's access log says, whatever
 * happens to the file (rotation, truncation, absence).
 */
const { skip } = nginxOrSkip();
const tmp = tempDir('embedctl-gateway-metrics-');
afterAll(() => tmp.cleanup());
const running = stopAfterEach<{ stop(): Promise<void> }>();

async function standin(name: string): Promise<Standin> {
  const s = await startStandin(name);
  running.push(s);
  return s;
}

async function runtime(log: string, extra: string[] = []): Promise<RuntimeHandle> {
  const rt = await startRuntime({ model: 'tiny-bert', args: ['--gateway-log', log, ...extra] });
  running.push(rt);
  return rt;
}

/** A 50 % split with same-model fallback in front of one replica and a hosted stand-in. */
async function splitGateway(): Promise<{ gw: TestGateway; replica: Standin; log: string }> {
  const replica = await standin('replica');
  const hosted = await standin('hosted');
  const gw = await startGateway(tmp.dir, { selfHosted: [`127.0.0.1:${replica.port}`], hostedUrl: `${hosted.url}/v1/embeddings`, selfHostedPercent: 50, sameModel: true, maxFails: 1, failTimeout: '2s' });
  running.push(gw);
  return { gw, replica, log: join(gw.prefix, 'access.log') };
}

const logLines = (...files: string[]) => files.flatMap((f) => readFileSync(f, 'utf8').split('\n').filter((l) => l !== ''));

/**
 * nginx writes a request's access-log line in its log phase, after the response went out: a
 * client can hold its answer a moment before the line is in the file. Waits (2 s at most) for
 * `n` lines, then returns what is there.
 */
async function loggedLines(n: number, file: string): Promise<string[]> {
  const until = Date.now() + 2_000;
  let lines = logLines(file);
  while (lines.length < n && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 20));
    lines = logLines(file);
  }
  return lines;
}

/** The value of one series in an exposition text (labels not named may be anything). */
const valueIn = (samples: Sample[]) => (name: string, labels: Record<string, string> = {}) =>
  samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

async function scrape(rt: RuntimeHandle) {
  const samples = parsePrometheus(await (await fetch(`${rt.url}/metrics`)).text());
  const one = valueIn(samples);
  const requests = Object.fromEntries(
    samples.filter((s) => s.name === 'embedctl_gateway_requests_total' && s.value > 0).map((s) => [`${s.labels.backend}/${s.labels.fallback}/${s.labels.code}`, s.value]),
  );
  return { one, requests };
}

/** Polls /metrics until the follower has read `lines` lines; returns the scrape and how long it took. */
async function caughtUp(rt: RuntimeHandle, lines: number, timeoutMs = 20_000) {
  const t0 = Date.now();
  for (;;) {
    const s = await scrape(rt);
    const read = s.one('embedctl_gateway_log_lines_total');
    if (read === lines) return { ...s, ms: Date.now() - t0 };
    if (Date.now() - t0 > timeoutMs) throw new Error(`the follower read ${read} of ${lines} lines within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The counts computed from the log itself, independently of the runtime's code. */
function expectedFromLog(lines: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const l of lines) {
    const e = parseGatewayLogLine(l)!;
    const key = `${e.backend}/${e.fallback === 'yes'}/${String(e.status)[0]}xx`;
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}

describe.skipIf(skip)('gateway metrics from the access log (runtime --gateway-log, real nginx)', () => {
  it('a 50 % split with a failing replica: /metrics equals the access log, and both agree with what clients saw', async () => {
    const { gw, replica, log } = await splitGateway();
    const rt = await runtime(log, ['--gateway-log-from', 'start']);
    const healthy = await pool(40, 4, (i) => embed(gw.nginx.url, { 'x-tenant-id': `a${i}` }));
    replica.setStatus(500);
    const failing = await pool(40, 4, (i) => embed(gw.nginx.url, { 'x-tenant-id': `b${i}` }));
    const notFound = await pool(5, 1, () => fetch(`${gw.nginx.url}/nope`).then((r) => r.status));
    const answers = [...healthy, ...failing];
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(notFound).toEqual([404, 404, 404, 404, 404]);

    const lines = await loggedLines(85, log);
    expect(lines).toHaveLength(85);
    const got = await caughtUp(rt, lines.length);
    const expected = expectedFromLog(lines);
    expect(got.requests).toEqual(expected);
    // The log agrees with the clients: each fallback, each side and each gateway answer counted once.
    const fallbacks = answers.filter((a) => a.fallback === 'yes').length;
    expect(fallbacks).toBeGreaterThan(5);
    expect(expected['hosted/true/2xx']).toBe(fallbacks);
    expect(expected['selfhosted/false/2xx']).toBe(answers.filter((a) => a.backend === 'selfhosted').length);
    expect(expected['hosted/false/2xx']).toBe(answers.filter((a) => a.backend === 'hosted' && a.fallback === 'no').length);
    expect(expected['nginx/false/4xx']).toBe(5);
    expect(expected['selfhosted/false/2xx']).toBeGreaterThan(5);
    expect(expected['hosted/false/2xx']).toBeGreaterThan(5);
    expect(got.one('embedctl_gateway_log_errors_total', { reason: 'unparseable' })).toBe(0);
    expect(got.one('embedctl_gateway_log_up')).toBe(1);
    expect(got.one('embedctl_gateway_log_last_seconds')).toBe(Math.max(...lines.map((l) => parseGatewayLogLine(l)!.msec!)));
    console.info(`gateway-metrics: ${lines.length} log lines, ${fallbacks} fallbacks; counters equal the log; follower caught up ${got.ms} ms after the last request`);
  });

  it('from the end by default; rotation (rename + nginx reopen) and truncation (copytruncate) keep every line counted', async () => {
    const { gw, log } = await splitGateway();
    // Every line sent is in a file before the next count is taken (nginx logs after answering).
    const total = () => [log, `${log}.1`].filter((f) => existsSync(f)).reduce((a, f) => a + logLines(f).length, 0);
    const send = async (n: number, tag: string) => {
      const before = total();
      const answers = await pool(n, 4, (i) => embed(gw.nginx.url, { 'x-tenant-id': `${tag}${i}` }));
      for (let i = 0; total() < before + n && i < 100; i++) await new Promise((r) => setTimeout(r, 20));
      return answers;
    };
    await send(10, 'old');
    const rt = await runtime(log);
    // History before the runtime started is not counted; the file's age stands for the newest line.
    for (let i = 0; i < 50 && (await scrape(rt)).one('embedctl_gateway_log_up') !== 1; i++) await new Promise((r) => setTimeout(r, 100));
    const before = await caughtUp(rt, 0);
    expect(before.one('embedctl_gateway_log_last_seconds')).toBeGreaterThan(Date.now() / 1000 - 120);
    const skipped = logLines(log).length;

    await send(20, 'one');
    let counted = logLines(log).length - skipped;
    await caughtUp(rt, counted);

    // Rotation as logrotate does it: rename, then nginx reopens (USR1). Lines written between the
    // two still land in the renamed file, which the follower drains before it switches.
    // Workers reopen the path themselves: as root they run as another user, who must reach it.
    for (const d of [tmp.dir, gw.prefix]) chmodSync(d, 0o755);
    renameSync(log, `${log}.1`);
    await send(5, 'between');
    process.kill(gw.nginx.pid, 'SIGUSR1');
    // The worker reopens a moment after the master: until then lines still go to the old file.
    for (let i = 0; !(existsSync(log) && logLines(log).length > 0) && i < 100; i++) {
      await send(1, `reopen${i}-`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await send(7, 'two');
    counted = logLines(`${log}.1`).length - skipped + logLines(log).length;
    let s = await caughtUp(rt, counted);
    expect(s.one('embedctl_gateway_log_reopens_total', { reason: 'rotated' })).toBe(1);
    expect(s.requests).toEqual(expectedFromLog([...logLines(`${log}.1`).slice(skipped), ...logLines(log)]));

    // copytruncate: the file shrinks to 0 under nginx (O_APPEND), which writes on from 0.
    await send(12, 'more');
    counted = logLines(`${log}.1`).length - skipped + logLines(log).length;
    await caughtUp(rt, counted);
    truncateSync(log, 0);
    await send(3, 'after');
    counted += logLines(log).length;
    s = await caughtUp(rt, counted);
    expect(s.one('embedctl_gateway_log_reopens_total', { reason: 'truncated' })).toBe(1);
    expect(s.one('embedctl_gateway_log_errors_total', { reason: 'unparseable' })).toBe(0);
  });

  it('a missing file: the runtime serves on, reports it (once per outage) and counts the file once it appears', async () => {
    const log = join(tmp.dir, 'later.access.log');
    const rt = await runtime(log);
    const res = await fetch(`${rt.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ input: 'hi' }) });
    expect(res.status).toBe(200);
    await new Promise((r) => setTimeout(r, 2500));
    let s = await scrape(rt);
    expect(s.one('embedctl_gateway_log_up')).toBe(0);
    expect(s.one('embedctl_gateway_log_errors_total', { reason: 'missing' })).toBe(1);
    expect(rt.events().filter((e) => e.event === 'gateway_log_missing')).toHaveLength(1);

    // A file that appears later is new: read from its start.
    const line = (status: number, backend: string, fallback: string) => `${JSON.stringify({ msec: Date.now() / 1000, status, split: 'selfhosted', backend, fallback })}\n`;
    writeFileSync(log, line(200, 'selfhosted', '') + line(200, 'hosted', 'yes'));
    appendFileSync(log, 'not json\n');
    s = await caughtUp(rt, 3);
    expect(s.requests).toEqual({ 'selfhosted/false/2xx': 1, 'hosted/true/2xx': 1 });
    expect(s.one('embedctl_gateway_log_errors_total', { reason: 'unparseable' })).toBe(1);
    expect(s.one('embedctl_gateway_log_up')).toBe(1);

    // A line still being written is not a line yet.
    const half = line(503, 'nginx', '');
    appendFileSync(log, half.slice(0, 20));
    await new Promise((r) => setTimeout(r, 1500));
    expect((await scrape(rt)).one('embedctl_gateway_log_lines_total')).toBe(3);
    appendFileSync(log, half.slice(20));
    s = await caughtUp(rt, 4);
    expect(s.requests).toEqual({ 'selfhosted/false/2xx': 1, 'hosted/true/2xx': 1, 'nginx/false/5xx': 1 });

    unlinkSync(log);
    for (let i = 0; i < 50 && (await scrape(rt)).one('embedctl_gateway_log_up') !== 0; i++) await new Promise((r) => setTimeout(r, 100));
    s = await scrape(rt);
    expect(s.one('embedctl_gateway_log_up')).toBe(0);
    expect(s.one('embedctl_gateway_log_errors_total', { reason: 'missing' })).toBe(2);
    expect(rt.child.exitCode).toBeNull();
  });
});

describe('the follower in-process', () => {
  it('reads a large backlog in bounded chunks, letting timers run between them', async () => {
    const log = join(tmp.dir, 'big.access.log');
    const n = 20_000;
    writeFileSync(log, Array.from({ length: n }, (_, i) => JSON.stringify({ msec: 1_700_000_000 + i / 1000, status: 200, backend: i % 2 ? 'hosted' : 'selfhosted', fallback: i % 10 === 1 ? 'yes' : 'no', uri: '/v1/embeddings', upstream_addr: '127.0.0.1:8081' })).join('\n') + '\n');
    const registry = new Registry();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const f = startGatewayLogFollower({ path: log, registry, from: 'start', intervalMs: 60_000, chunkBytes: 16 * 1024, maxBytesPerPoll: 64 * 1024 });
    try {
      await f.poll();
      const value = valueIn(parsePrometheus(await registry.metrics()));
      expect(value('embedctl_gateway_log_lines_total')).toBe(n);
      expect(value('embedctl_gateway_requests_total', { backend: 'selfhosted', fallback: 'false', code: '2xx' })).toBe(n / 2);
      expect(value('embedctl_gateway_requests_total', { backend: 'hosted', fallback: 'true', code: '2xx' })).toBe(n / 10);
      expect(value('embedctl_gateway_requests_total', { backend: 'hosted', fallback: 'false', code: '2xx' })).toBe(n / 2 - n / 10);
      // About 2 MB in 16 KiB reads: the timer got turns while the backlog was read.
      expect(ticks).toBeGreaterThan(10);
    } finally {
      clearInterval(timer);
      await f.stop();
    }
  });

  it('keeps labels bounded whatever the log holds: unknown backends and statuses are "other"', async () => {
    const log = join(tmp.dir, 'odd.access.log');
    const lines = [
      { backend: 'selfhosted', status: 429, fallback: '' },
      { backend: 'evil-" {x}', status: 200, fallback: 'yes' },
      { backend: '', status: 499, fallback: '' },
      { backend: 'hosted', status: 'abc', fallback: 'no' },
      { backend: 'nginx', status: 700, fallback: 'maybe' },
    ];
    writeFileSync(log, lines.map((l) => JSON.stringify({ msec: 1, ...l })).join('\n') + '\n[1,2]\n');
    const registry = new Registry();
    const f = startGatewayLogFollower({ path: log, registry, from: 'start', intervalMs: 60_000 });
    try {
      await f.poll();
      const samples = parsePrometheus(await registry.metrics()).filter((x) => x.name === 'embedctl_gateway_requests_total');
      expect(Object.fromEntries(samples.map((x) => [`${x.labels.backend}/${x.labels.fallback}/${x.labels.code}`, x.value]))).toEqual({
        'selfhosted/false/4xx': 1,
        'other/true/2xx': 1,
        'other/false/4xx': 1,
        'hosted/false/other': 1,
        'nginx/false/other': 1,
      });
      expect(valueIn(parsePrometheus(await registry.metrics()))('embedctl_gateway_log_errors_total', { reason: 'unparseable' })).toBe(1);
    } finally {
      await f.stop();
    }
  });
});
