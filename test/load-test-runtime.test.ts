import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../src/util/paths.js';
import type { LoadTestReport } from '../src/core/loadtest.js';
import { runCli } from './helpers/cli.js';
import { startRuntime, type RuntimeHandle } from './helpers/runtime.js';

/** Sum of embedctl_requests_total over every status for one route, from the Prometheus text. */
async function answered(url: string, route = '/v1/embeddings'): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith('embedctl_requests_total{')) continue;
    const m = /^embedctl_requests_total\{([^}]*)\}\s+(\S+)/.exec(line);
    if (m && m[1]!.includes(`route="${route}"`)) sum += Number(m[2]);
  }
  return sum;
}

describe('load-test against the real runtime', () => {
  let rt: RuntimeHandle;
  beforeAll(async () => {
    rt = await startRuntime({ model: 'default' });
  });
  afterAll(async () => {
    await rt?.stop();
  });

  it("autocannon's request count matches the runtime's own /metrics counter", async () => {
    const before = await answered(rt.url);
    const r = await runCli(['load-test', '--json', '--engine', 'autocannon', '--target', rt.url, '--stages', '1s:2,2s:4,1s:0', '--batch', '4']);
    expect(r.code, r.stderr).toBe(0);
    const rep = r.json<LoadTestReport>();
    const after = await answered(rt.url);
    expect(rep.requests).toBeGreaterThan(10);
    expect(after - before).toBe(rep.requests);
    expect(rep.errors.total).toBe(0);
    // The runtime answered with batch-sized data and one consistent dimension throughout.
    expect(rep.checks.failed).toBe(0);
    expect(rep.verdict.gatesPass).toBe(true);
  });

  it('the real binary: SIGINT stops the run, prints the partial report, exits 130', async () => {
    const before = await answered(rt.url);
    const child = spawn(process.execPath, [join(packageRoot(), 'bin', 'embedctl.js'), 'load-test', '--json', '--engine', 'autocannon', '--target', rt.url, '--stages', '30s:2'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, CI: 'true' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    // Interrupt once the run is under way (its first progress line).
    await new Promise<void>((r) => child.stderr.on('data', () => err.includes('stage 1/1') && r()));
    await new Promise((r) => setTimeout(r, 700));
    const t0 = Date.now();
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    expect(code, err).toBe(130);
    expect(Date.now() - t0).toBeLessThan(3000);
    const rep = JSON.parse(out) as LoadTestReport;
    expect(rep.stoppedEarly).toBe('interrupted');
    expect(rep.requests).toBeGreaterThan(0);
    expect(rep.requests).toBe((await answered(rt.url)) - before);
    expect(err).toMatch(/SIGINT received, stopping/);
    expect(err).toMatch(/embedctl: error: load-test interrupted; the report covers the \d+ requests/);
  });
});
