import * as acorn from 'acorn';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildThresholds, parseStages, renderK6Script, type LoadTestReport } from '../src/core/loadtest.js';
import { templatesDir } from '../src/util/paths.js';
import { runCli } from './helpers/cli.js';

const fakeK6Dir = join(import.meta.dirname, 'fixtures', 'fake-k6');
const template = readFileSync(join(templatesDir(), 'k6', 'load-test.js'), 'utf8');

/** Turns a literal AST node (what the renderer emits for options) back into a value. */
function literal(node: acorn.Node): unknown {
  const n = node as acorn.Expression;
  switch (n.type) {
    case 'Literal':
      return n.value;
    case 'ArrayExpression':
      return n.elements.map((e) => literal(e as acorn.Node));
    case 'ObjectExpression':
      return Object.fromEntries(
        n.properties.map((p) => {
          const prop = p as acorn.Property;
          const key = prop.key.type === 'Literal' ? String(prop.key.value) : (prop.key as acorn.Identifier).name;
          return [key, literal(prop.value)];
        }),
      );
    default:
      throw new Error(`not a literal: ${n.type}`);
  }
}

function parseScript(src: string) {
  const ast = acorn.parse(src, { ecmaVersion: 'latest', sourceType: 'module' });
  const imports = ast.body
    .filter((n): n is acorn.ImportDeclaration => n.type === 'ImportDeclaration')
    .map((n) => ({ from: n.source.value, names: n.specifiers.map((s) => (s.type === 'ImportSpecifier' ? (s.imported as acorn.Identifier).name : 'default')) }));
  const exports = new Map<string, acorn.Node>();
  for (const n of ast.body) {
    if (n.type === 'ExportNamedDeclaration' && n.declaration) {
      const d = n.declaration;
      if (d.type === 'VariableDeclaration') for (const v of d.declarations) exports.set((v.id as acorn.Identifier).name, v.init!);
      else if (d.type === 'FunctionDeclaration') exports.set(d.id.name, d);
    }
    if (n.type === 'ExportDefaultDeclaration') exports.set('default', n.declaration);
  }
  return { imports, exports };
}

// A stand-in target: the k6 path only needs the TCP probe to succeed (the fake answers itself).
let server: Server;
let target: string;
beforeAll(async () => {
  server = createServer((_req, res) => res.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  target = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

function k6Env(extra: Record<string, string> = {}) {
  return { PATH: `${fakeK6Dir}${delimiter}${process.env.PATH}`, ...extra };
}

describe('k6 script template', () => {
  it('the template itself is valid JavaScript (placeholders are identifiers)', () => {
    expect(() => acorn.parse(template, { ecmaVersion: 'latest', sourceType: 'module' })).not.toThrow();
  });

  it('renders a valid ES module carrying the requested stages and thresholds', () => {
    const stages = parseStages('2m:10,5m:50,5m:50,2m:0');
    const src = renderK6Script(template, stages, buildThresholds(500, 0.05), {
      url: 'http://127.0.0.1:8080/v1/embeddings',
      shape: 'jina',
      model: null,
      dimensions: 256,
      batch: 8,
      headers: { 'Content-Type': 'application/json' },
      timeout: '30000ms',
      texts: ['a', 'b\u2028c', 'it\'s "quoted"'],
      summaryPath: '/tmp/x/summary.json',
      maxRequests: 1000,
    });
    const { imports, exports } = parseScript(src);
    expect(imports).toContainEqual({ from: 'k6/http', names: ['default'] });
    expect(imports).toContainEqual({ from: 'k6', names: ['check'] });
    const options = literal(exports.get('options')!) as { stages: unknown; thresholds: unknown; summaryTrendStats: string[] };
    expect(options.stages).toEqual([
      { duration: '2m', target: 10 },
      { duration: '5m', target: 50 },
      { duration: '5m', target: 50 },
      { duration: '2m', target: 0 },
    ]);
    expect(options.thresholds).toEqual({ http_req_duration: ['p(95)<500'], http_req_failed: ['rate<0.05'], checks: ['rate>0.95'] });
    expect(options.summaryTrendStats).toEqual(expect.arrayContaining(['p(50)', 'p(90)', 'p(95)', 'p(99)', 'max']));
    expect(exports.has('default')).toBe(true);
    expect(exports.has('handleSummary')).toBe(true);
    expect(src).toContain('"summaryPath": "/tmp/x/summary.json"');
    expect(src).not.toMatch(/__EMBEDCTL_(OPTIONS|CONFIG)__/);
  });
});

describe('load-test with k6 (fake k6 on PATH)', () => {
  it('counts X-Embedctl-Backend in the script: a run that hosted answered is an error, never a pass', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'k6-')), 'load.json');
    const r = await runCli(['load-test', '--json', '--target', target, '--stages', '2s:2', '--out', out], { env: k6Env({ FAKE_K6_ITERATIONS: '12', FAKE_K6_BACKEND: 'hosted' }) });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/error: --target: the target answered from hosted \(X-Embedctl-Backend: hosted 12 of 12 answers\)/);
    expect(existsSync(out)).toBe(false);
    const ok = await runCli(['load-test', '--json', '--target', target, '--stages', '2s:2'], { env: k6Env({ FAKE_K6_ITERATIONS: '12', FAKE_K6_BACKEND: 'selfhosted' }) });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.json()).toMatchObject({ answeredBy: 'selfhosted', backends: { selfhosted: 12 } });
  });

  it('auto picks k6, streams its output to stderr, and reads the handleSummary JSON into the report', async () => {
    const log = join(mkdtempSync(join(tmpdir(), 'k6-')), 'calls.jsonl');
    const r = await runCli(['load-test', '--json', '--target', target, '--stages', '3s:4,2s:0', '--batch', '5', '--dimensions', '32', '--p95', '250'], {
      env: k6Env({ FAKE_K6_LOG: log, FAKE_K6_LATENCY_MS: '20', FAKE_K6_ITERATIONS: '40' }),
    });
    expect(r.code, r.stderr).toBe(0);
    const rep = r.json<LoadTestReport & { schema: string }>();
    expect(rep.schema).toBe('embedctl.load-test/v1');
    expect(rep.engine).toBe('k6');
    expect(rep.requests).toBe(40);
    expect(rep.errorRate).toBe(0);
    expect(rep.checks).toMatchObject({ passed: 120, failed: 0 });
    expect(rep.latencyMs.p50).toBeGreaterThan(5);
    expect(rep.latencyMs.p95).toBeGreaterThan(rep.latencyMs.p50);
    expect(rep.latencyMs.max).toBeLessThanOrEqual(30);
    expect(rep.thresholds.map((t) => [t.name, t.expression, t.pass])).toEqual([
      ['http_req_duration', 'p(95)<250', true],
      ['http_req_failed', 'rate<0.05', true],
      ['checks', 'rate>0.95', true],
    ]);
    expect(rep.embeddingsPerMinute).toBeGreaterThan(0);
    // No gateway in front: the script counted every answer as "none" (a runtime answered directly).
    expect(rep).toMatchObject({ backends: { none: 40 }, answeredBy: 'direct', via: 'as given' });
    // k6's own output went to stderr (progress lines and the script's text summary), not stdout.
    expect(r.stderr).toMatch(/running \(/);
    expect(r.stderr).toMatch(/embedctl load-test \(k6\): 40 requests/);
    const call = JSON.parse(readFileSync(log, 'utf8').trim()) as {
      argv: string[];
      options: { stages: unknown; thresholds: unknown };
      requests: Array<{ url: string; body: string; params: { headers: Record<string, string> } }>;
    };
    expect(call.argv[0]).toBe('run');
    expect(call.options.stages).toEqual([
      { duration: '3s', target: 4 },
      { duration: '2s', target: 0 },
    ]);
    const body = JSON.parse(call.requests[0]!.body) as { input: string[]; dimensions: number; encoding_format: string };
    expect(body.input).toHaveLength(5);
    expect(body).toMatchObject({ dimensions: 32, encoding_format: 'float' });
    expect(call.requests[0]!.url).toBe(`${target}/v1/embeddings`);
    expect(call.requests[0]!.params.headers['Content-Type']).toBe('application/json');
  });

  it('k6 exit 99 (thresholds crossed) becomes exit 3 naming the failed threshold', async () => {
    const r = await runCli(['load-test', '--json', '--engine', 'k6', '--target', target, '--stages', '2s:2', '--p95', '300'], {
      env: k6Env({ FAKE_K6_LATENCY_MS: '400' }),
    });
    expect(r.code).toBe(3);
    const rep = r.json<LoadTestReport>();
    expect(rep.thresholds.find((t) => t.name === 'http_req_duration')).toMatchObject({ pass: false });
    expect(r.stderr).toMatch(/thresholds crossed: http_req_duration p\(95\)<300 \(actual \d+/);
  });

  it('5xx from the target: errors by status and the error-rate gate', async () => {
    const r = await runCli(['load-test', '--json', '--engine', 'k6', '--target', target, '--stages', '2s:2'], {
      env: k6Env({ FAKE_K6_STATUS: '503', FAKE_K6_ITERATIONS: '12' }),
    });
    expect(r.code).toBe(3);
    const rep = r.json<LoadTestReport>();
    expect(rep.errors.byStatus).toEqual({ '503': 12 });
    expect(rep.errorRate).toBe(1);
    expect(r.stderr).toMatch(/http_req_failed rate<0\.05/);
  });

  it('--max-requests: the script aborts the test (k6 exit 108) and the report says why it stopped', async () => {
    const r = await runCli(['load-test', '--json', '--engine', 'k6', '--target', target, '--stages', '2s:2', '--max-requests', '10'], {
      env: k6Env({ FAKE_K6_ITERATIONS: '50' }),
    });
    expect(r.code, r.stderr).toBe(0);
    const rep = r.json<LoadTestReport>();
    expect(rep.requests).toBe(10);
    expect(rep.stoppedEarly).toBe('max-requests');
  });

  it('k6 failing without a summary is an outside failure (exit 1) with its last line', async () => {
    const r = await runCli(['load-test', '--engine', 'k6', '--target', target, '--stages', '2s:2'], { env: k6Env({ FAKE_K6_EXIT: '107' }) });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/embedctl: error: k6: exited with code 107 without writing a summary: .*fake k6 failing on purpose/);
    expect(r.stdout).toBe('');
  });

  it('Ctrl-C sends SIGINT to k6, which still writes its summary: partial report, exit 130', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('SIGINT')), 1200);
    const t0 = Date.now();
    const r = await runCli(['load-test', '--json', '--engine', 'k6', '--target', target, '--stages', '1m:2'], {
      env: k6Env({ FAKE_K6_ITERATIONS: '100000', FAKE_K6_ITER_MS: '5' }),
      signal: ac.signal,
    });
    expect(r.code).toBe(130);
    expect(Date.now() - t0).toBeLessThan(5000);
    const rep = r.json<LoadTestReport>();
    expect(rep.stoppedEarly).toBe('interrupted');
    expect(rep.requests).toBeGreaterThan(0);
    expect(rep.requests).toBeLessThan(100000);
  });

  it('--save-script with --dry-run writes the script for `k6 run` by hand, without credentials, and runs nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'k6-save-'));
    const log = join(dir, 'calls.jsonl');
    const r = await runCli(['load-test', '--target', target, '--profile', 'seed', '--header', 'Authorization: Bearer s3cret', '--header', 'X-Tenant-Id: t1', '--save-script', 'lt.js', '--dry-run'], {
      cwd: dir,
      env: k6Env({ FAKE_K6_LOG: log }),
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/dry run: would load k6 -> /);
    expect(r.stderr).toMatch(/without Authorization: run it with k6 run -e EMBEDCTL_API_KEY=/);
    const saved = readFileSync(join(dir, 'lt.js'), 'utf8');
    expect(saved).not.toContain('s3cret');
    expect(saved).toContain('"X-Tenant-Id": "t1"');
    const { exports } = parseScript(saved);
    expect((literal(exports.get('options')!) as { stages: Array<{ target: number }> }).stages.map((s) => s.target)).toEqual([10, 50, 50, 0]);
    expect(() => readFileSync(log)).toThrow();

    // Run by hand, the key comes from k6's -e (its __ENV), and the summary lands in the cwd.
    const run = spawnSync(join(fakeK6Dir, 'k6'), ['run', '-e', 'EMBEDCTL_API_KEY=by-hand', 'lt.js'], {
      cwd: dir,
      env: { PATH: process.env.PATH, FAKE_K6_LOG: log, FAKE_K6_ITERATIONS: '3' },
      encoding: 'utf8',
    });
    expect(run.status, run.stderr).toBe(0);
    const call = JSON.parse(readFileSync(log, 'utf8').trim()) as { requests: Array<{ params: { headers: Record<string, string> } }> };
    expect(call.requests[0]!.params.headers).toMatchObject({ Authorization: 'Bearer by-hand', 'X-Tenant-Id': 't1' });
    expect(JSON.parse(readFileSync(join(dir, 'load-test-summary.json'), 'utf8')).metrics.http_reqs.values.count).toBe(3);
  });

  it('credentials reach k6 requests: --header as given, else EMBEDCTL_API_KEY', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'k6-auth-'));
    const log = join(dir, 'calls.jsonl');
    const common = ['load-test', '--json', '--engine', 'k6', '--target', target, '--stages', '1s:1'];
    const a = await runCli([...common, '--header', 'Authorization: Bearer from-flag'], { env: k6Env({ FAKE_K6_LOG: log, FAKE_K6_ITERATIONS: '2', EMBEDCTL_API_KEY: 'from-env' }) });
    expect(a.code, a.stderr).toBe(0);
    const b = await runCli(common, { env: k6Env({ FAKE_K6_LOG: log, FAKE_K6_ITERATIONS: '2', EMBEDCTL_API_KEY: 'from-env' }) });
    expect(b.code, b.stderr).toBe(0);
    const calls = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { requests: Array<{ params: { headers: Record<string, string> } }> });
    expect(calls.map((c) => c.requests[0]!.params.headers.Authorization)).toEqual(['Bearer from-flag', 'Bearer from-env']);
  });
});
