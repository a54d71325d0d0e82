import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
});
