import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { LoadTestReport } from '../src/core/loadtest.js';
import { runCli } from './helpers/cli.js';

/**
 * A stand-in embeddings server on 127.0.0.1 that counts what it answered, tracks concurrency,
 * and can be slow, fail, or answer with the wrong shape.
 */
interface StandIn {
  url: string;
  answered: number;
  maxInFlight: number;
  bodies: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

async function standIn(o: { delayMs?: number; status?: number; dims?: number; short?: boolean } = {}): Promise<StandIn> {
  const s: StandIn = { url: '', answered: 0, maxInFlight: 0, bodies: [], close: async () => {} };
  let inFlight = 0;
  const server: Server = createServer(async (req, res) => {
    // load-test asks GET /health first (is the target a gateway?): not an embedding request.
    if (req.method !== 'POST') {
      res.writeHead(404).end();
      return;
    }
    inFlight++;
    s.maxInFlight = Math.max(s.maxInFlight, inFlight);
    let raw = '';
    for await (const c of req) raw += c;
    const body = JSON.parse(raw) as { input: string[]; dimensions?: number };
    if (s.bodies.length < 200) s.bodies.push(body);
    if (o.delayMs) await new Promise((r) => setTimeout(r, o.delayMs));
    const status = o.status ?? 200;
    const dims = o.dims ?? body.dimensions ?? 16;
    const n = o.short ? body.input.length - 1 : body.input.length;
    const payload =
      status === 200
        ? { object: 'list', data: Array.from({ length: n }, (_, index) => ({ object: 'embedding', index, embedding: Array.from({ length: dims }, (_, k) => (k + 1) / dims) })), model: 'stand-in', usage: { prompt_tokens: n, total_tokens: n } }
        : { error: { message: 'overloaded', type: 'server_error' } };
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(payload));
    s.answered++;
    inFlight--;
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  s.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  s.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return s;
}

const servers: StandIn[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});
async function start(o?: Parameters<typeof standIn>[0]) {
  const s = await standIn(o);
  servers.push(s);
  return s;
}

const base = ['load-test', '--engine', 'autocannon', '--json'];

describe('load-test (autocannon engine)', () => {
  it('ramps through the stages and reports exactly the requests the server answered', async () => {
    const s = await start({ delayMs: 2 });
    const texts = join(mkdtempSync(join(tmpdir(), 'lt-')), 'texts.txt');
    writeFileSync(texts, ['short', 'a somewhat longer sentence about embeddings', 'x '.repeat(200).trim()].join('\n'));
    const r = await runCli([...base, '--target', s.url, '--stages', '1s:2,1s:4,1s:0', '--batch', '4', '--texts', texts]);
    expect(r.code, r.stderr).toBe(0);
    const rep = r.json<LoadTestReport & { schema: string }>();
    expect(rep.schema).toBe('embedctl.load-test/v1');
    expect(rep.engine).toBe('autocannon');
    expect(rep.requests).toBeGreaterThan(20);
    // Graceful phase ends: every request sent was answered, and nothing else reached the server.
    expect(rep.requests).toBe(s.answered);
    expect(rep.errors.total).toBe(0);
    expect(rep.checks).toMatchObject({ failed: 0, passed: rep.requests * 3 });
    expect(s.maxInFlight).toBeLessThanOrEqual(4);
    expect(s.maxInFlight).toBeGreaterThanOrEqual(2);
    const l = rep.latencyMs;
    expect(l.p50).toBeGreaterThan(0);
    expect(l.p50).toBeLessThanOrEqual(l.p90);
    expect(l.p90).toBeLessThanOrEqual(l.p95);
    expect(l.p95).toBeLessThanOrEqual(l.p99);
    expect(l.p99).toBeLessThanOrEqual(l.max);
    const expected = (rep.requests * 4) / (rep.durationMs / 60_000);
    expect(Math.abs(rep.embeddingsPerMinute - expected) / expected).toBeLessThan(0.001);
    expect(rep.durationMs).toBeGreaterThan(2500);
    expect(rep.durationMs).toBeLessThan(6000);
    expect(rep.thresholds.map((t) => [t.name, t.expression, t.pass])).toEqual([
      ['http_req_duration', 'p(95)<500', true],
      ['http_req_failed', 'rate<0.05', true],
      ['checks', 'rate>0.95', true],
    ]);
    expect(rep.verdict.gatesPass).toBe(true);
    expect(rep.verdict.criteria.map((c) => c.name)).toEqual(['p95LatencyMs', 'errorRate', 'embeddingsPerMinute']);
    // Bodies: OpenAI shape, batch of 4 drawn from the file, mixed lengths.
    const b = s.bodies[0]!;
    expect(b).toMatchObject({ encoding_format: 'float' });
    expect(b.input).toHaveLength(4);
    const seen = new Set(s.bodies.flatMap((x) => x.input as string[]));
    expect(seen.size).toBe(3);
    expect(r.stderr).toMatch(/stage 2\/3/);
  });

  it('stops at --max-requests exactly', async () => {
    const s = await start();
    const r = await runCli([...base, '--target', s.url, '--stages', '5s:3', '--max-requests', '25']);
    expect(r.code, r.stderr).toBe(0);
    const rep = r.json<LoadTestReport>();
    expect(rep.requests).toBe(25);
    expect(s.answered).toBe(25);
    expect(rep.stoppedEarly).toBe('max-requests');
  });

  it('a slow target fails the p95 gate: exit 3 naming the threshold', async () => {
    const s = await start({ delayMs: 80 });
    const r = await runCli([...base, '--target', s.url, '--stages', '1s:2', '--p95', '50']);
    expect(r.code).toBe(3);
    const rep = r.json<LoadTestReport>();
    expect(rep.latencyMs.p95).toBeGreaterThanOrEqual(80);
    expect(rep.thresholds.find((t) => t.name === 'http_req_duration')).toMatchObject({ pass: false, expression: 'p(95)<50' });
    expect(rep.thresholds.find((t) => t.name === 'http_req_failed')!.pass).toBe(true);
    expect(rep.verdict.gatesPass).toBe(false);
    expect(r.stderr).toMatch(/thresholds crossed: http_req_duration p\(95\)<50 \(actual \d+/);
    expect(r.stderr).not.toMatch(/at .*\.ts:\d+/);
  });

  it('a target answering 503 fails the error-rate gate and counts errors by status', async () => {
    const s = await start({ status: 503 });
    const r = await runCli([...base, '--target', s.url, '--stages', '1s:2']);
    expect(r.code).toBe(3);
    const rep = r.json<LoadTestReport>();
    expect(rep.errorRate).toBe(1);
    expect(rep.errors.byStatus).toEqual({ '503': s.answered });
    expect(rep.embeddingsPerMinute).toBe(0);
    expect(r.stderr).toMatch(/thresholds crossed: .*http_req_failed rate<0\.05 \(actual 1\)/);
  });

  it('wrong dimensions or a short data array fail the checks gate even with status 200', async () => {
    const s = await start({ dims: 8 });
    const r = await runCli([...base, '--target', s.url, '--stages', '1s:1', '--dimensions', '16', '--max-requests', '20']);
    expect(r.code).toBe(3);
    const rep = r.json<LoadTestReport>();
    expect(rep.errorRate).toBe(0);
    expect(rep.checks.byName.find((c) => c.name === 'embedding dimensions == expected')).toMatchObject({ passes: 0, fails: rep.requests });
    expect(r.stderr).toMatch(/checks rate>0\.95/);
    // Bodies asked for the dimensions.
    expect(s.bodies[0]).toMatchObject({ dimensions: 16 });

    const short = await start({ short: true });
    const r2 = await runCli([...base, '--target', short.url, '--stages', '1s:1', '--max-requests', '10']);
    expect(r2.code).toBe(3);
    expect(r2.json<LoadTestReport>().checks.byName.find((c) => c.name === 'data length == batch')!.fails).toBe(10);
  });

  it('Ctrl-C stops the run and still prints the partial report (exit 130)', async () => {
    const s = await start({ delayMs: 5 });
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('SIGINT')), 800);
    const t0 = Date.now();
    const r = await runCli([...base, '--target', s.url, '--stages', '20s:2'], { signal: ac.signal });
    expect(r.code).toBe(130);
    expect(Date.now() - t0).toBeLessThan(4000);
    const rep = r.json<LoadTestReport>();
    expect(rep.stoppedEarly).toBe('interrupted');
    expect(rep.requests).toBeGreaterThan(0);
    expect(rep.requests).toBe(s.answered);
    expect(r.stderr).toMatch(/interrupted/);
  });

  it('--out writes the report atomically; the table goes to stdout without --json', async () => {
    const s = await start();
    const dir = mkdtempSync(join(tmpdir(), 'lt-out-'));
    const r = await runCli(['load-test', '--engine', 'autocannon', '--target', s.url, '--stages', '1s:1', '--shape', 'jina', '--out', 'reports/lt.json'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    const saved = JSON.parse(readFileSync(join(dir, 'reports', 'lt.json'), 'utf8')) as LoadTestReport & { schema: string };
    expect(saved.schema).toBe('embedctl.load-test/v1');
    expect(saved.requests).toBe(s.answered);
    expect(typeof saved.generatedAt).toBe('string');
    expect(r.stdout).toMatch(/embeddings\/min/);
    expect(r.stdout).toMatch(/http_req_duration\s+p\(95\)<500/);
    expect(r.stdout).toMatch(/verdict: gates passed; migration criteria/);
    expect(s.bodies[0]).toMatchObject({ normalized: true });
    expect(s.bodies[0]).not.toHaveProperty('encoding_format');
  });

  it('--dry-run plans connection steps and sends nothing', async () => {
    const s = await start();
    const r = await runCli([...base, '--target', s.url, '--profile', 'seed', '--duration-scale', '0.01', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    const plan = r.json<{ dryRun: boolean; stages: Array<{ durationMs: number; target: number }>; phases: Array<{ connections: number }> }>();
    expect(plan.dryRun).toBe(true);
    expect(plan.stages.map((x) => [x.durationMs, x.target])).toEqual([
      [1000, 10],
      [3000, 50],
      [3000, 50],
      [1000, 0],
    ]);
    expect(Math.max(...plan.phases.map((p) => p.connections))).toBe(50);
    expect(s.answered).toBe(0);
  });
});

describe('load-test usage and safety', () => {
  it('refuses a non-loopback target without --allow-remote', async () => {
    const r = await runCli(['load-test', '--target', 'https://api.jina.ai']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--target: api\.jina\.ai is not a loopback address/);
    expect(r.stderr).toMatch(/--allow-remote/);
  });

  it('names the bad flag on bad input', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--stages', '2m:ten'], /--stages: stage 1 "2m:ten" is not duration:target/],
      [['--stages', '2x:10'], /--stages: stage 1: bad duration "2x"/],
      [['--stages', '1s:0'], /--stages: every stage targets 0 VUs/],
      [['--profile', 'huge'], /--profile: expected one of smoke, seed, soak/],
      [['--batch', '0'], /--batch: must be >= 1/],
      [['--max-error-rate', '2'], /--max-error-rate: must be <= 1/],
      [['--header', 'nocolon'], /--header: "nocolon" is not "Name: value"/],
      [['--stages', '7h:1'], /--stages: the stages last 7h, over the 6h limit/],
      [['--engine', 'k6'], /--engine: k6 is not on PATH/],
    ];
    for (const [args, re] of cases) {
      const r = await runCli(['load-test', '--target', 'http://127.0.0.1:9', ...args], { env: { PATH: '/nonexistent' } });
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(re);
      expect(r.stderr.trim().split('\n').length, args.join(' ')).toBeLessThanOrEqual(2);
    }
    const missing = await runCli(['load-test']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--target: required/);
  });

  it('a target that is down is an outside failure (exit 1), not a report full of errors', async () => {
    const s = await start();
    const url = s.url;
    await s.close();
    servers.length = 0;
    const r = await runCli(['load-test', '--engine', 'autocannon', '--target', url, '--stages', '1s:1']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/target: cannot connect to 127\.0\.0\.1:\d+: ECONNREFUSED/);
  });
});
