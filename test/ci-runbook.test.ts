// The weekly CI step of examples/ci/, run the way CI runs it: the real bin/embedctl.js as a child
// process, CI=true, no TTY, stdin closed. Each step must exit with its documented code and print
// one JSON document with its schema, including a failing gate (3) and an automatic rollback (4).
// (Through the real binary on purpose: Node 20 itself swallows some flags, e.g. `--env-file`,
// even after the script name, which in-process tests cannot see.)
import { execa } from 'execa';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRuntime, type RuntimeHandle } from './helpers/runtime.js';

const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'embedctl.js');
const work = mkdtempSync(join(tmpdir(), 'embedctl-ci-'));
const reports = join(work, '.embedctl', 'reports');
const envFile = join(work, '.embedctl', 'traffic.env');
const KEY = 'ci-hosted-key';

let hosted: RuntimeHandle;
let candidate: RuntimeHandle;

beforeAll(async () => {
  [hosted, candidate] = await Promise.all([
    startRuntime({ model: 'default-q', apiKey: KEY }),
    startRuntime({ model: 'default', env: { EMBEDCTL_FAULT_INJECTION: '1' } }),
  ]);
});
afterAll(async () => {
  await Promise.all([hosted?.stop(), candidate?.stop()]);
  rmSync(work, { recursive: true, force: true });
});

/** One CI step: `embedctl <args>` with no TTY and no stdin, as a pipeline runs it. */
async function step(args: string[]) {
  const r = await execa(process.execPath, [bin, ...args], {
    cwd: work,
    env: { CI: 'true', NO_COLOR: '1' },
    stdin: 'ignore',
    reject: false,
    timeout: 120_000,
  });
  let doc: Record<string, any> | undefined; // eslint-disable-line @typescript-eslint/no-explicit-any
  try {
    doc = JSON.parse(r.stdout) as Record<string, unknown>;
  } catch {
    doc = undefined;
  }
  return { code: r.exitCode, doc, stderr: r.stderr };
}

const endpoints = () => ['--reference', hosted.url, '--reference-header', `Authorization: Bearer ${KEY}`, '--candidate', candidate.url];

describe('the weekly CI step, non-interactive', () => {
  it('refreshes the evidence: verify-consistency, rag-overlap, load-test, cost-report (exit 0, schema)', { timeout: 120_000 }, async () => {
    const v = await step(['verify-consistency', ...endpoints(), '--sample', '40', '--yes', '--json', '--out', join(reports, 'verify-consistency.json')]);
    expect(v.code, v.stderr).toBe(0);
    expect(v.doc?.schema).toBe('embedctl.verify-consistency/v1');
    expect(JSON.parse(readFileSync(join(reports, 'verify-consistency.json'), 'utf8'))).toEqual(v.doc);

    const o = await step(['rag-overlap', ...endpoints(), '--yes', '--json', '--out', join(reports, 'rag-overlap.json')]);
    expect(o.code, o.stderr).toBe(0);
    expect(o.doc?.schema).toBe('embedctl.rag-overlap/v1');

    const l = await step(['load-test', '--target', candidate.url, '--profile', 'smoke', '--duration-scale', '0.05', '--json', '--out', join(reports, 'load-test.json')]);
    expect(l.code, l.stderr).toBe(0);
    expect(l.doc?.schema).toBe('embedctl.load-test/v1');
    expect(l.doc?.requests).toBeGreaterThan(0);

    const c = await step(['cost-report', '--tokens-per-month', '5B', '--provider', 'openai', '--model', 'text-embedding-3-large', '--egress-share', '0', '--json', '--out', join(reports, 'cost-report.json')]);
    expect(c.code, c.stderr).toBe(0);
    expect(c.doc?.schema).toBe('embedctl.cost-report/v1');
  });

  it('moves traffic one step, refuses a second step inside the dwell, then moves after it', { timeout: 90_000 }, async () => {
    const common = ['--driver', 'env', '--traffic-env', envFile, '--evidence-dir', reports, '--metrics-url', `${candidate.url}/metrics`];
    // Wide enough that the refused step lands inside it even on a loaded 2-core machine.
    const DWELL_MS = 12_000;
    const first = await step(['rollout', 'to', '10', '--dwell', '12s', ...common, '--json']);
    const movedAt = Date.now();
    expect(first.code, first.stderr).toBe(0);
    expect(first.doc?.schema).toBe('embedctl.rollout/v1');
    expect(readFileSync(envFile, 'utf8')).toMatch(/SELF_HOSTED_TRAFFIC_PERCENT=10\b/);

    const early = await step(['rollout', 'next', ...common, '--json']);
    expect(early.code).toBe(2); // refused: the dwell is not over (a usage decision, not a gate)
    expect(early.stderr.trim().split('\n')[0]).toMatch(/dwell/);
    expect(readFileSync(envFile, 'utf8')).toMatch(/SELF_HOSTED_TRAFFIC_PERCENT=10\b/);

    await new Promise((r) => setTimeout(r, Math.max(0, movedAt + DWELL_MS + 200 - Date.now())));
    const next = await step(['rollout', 'next', ...common, '--json']);
    expect(next.code, next.stderr).toBe(0);
    expect(readFileSync(envFile, 'utf8')).toMatch(/SELF_HOSTED_TRAFFIC_PERCENT=25\b/);
  });

  it('a failing gate exits 3 with its JSON report, and traffic stays where it is', { timeout: 60_000 }, async () => {
    const v = await step(['verify-consistency', ...endpoints(), '--sample', '40', '--min-cosine', '0.9999999', '--yes', '--json']);
    expect(v.code).toBe(3);
    expect(v.doc?.schema).toBe('embedctl.verify-consistency/v1');
    expect(v.doc?.verdict).not.toBe('pass');
    const check = await step(['rollout', 'check', '--min-cosine', '0.9999999', '--evidence-dir', reports, '--json']);
    expect(check.code).toBe(3);
    expect(check.doc?.schema).toBe('embedctl.rollout/v1');
    expect(readFileSync(envFile, 'utf8')).toMatch(/SELF_HOSTED_TRAFFIC_PERCENT=25\b/);
  });

  it('rollout watch rolls back by itself when self-hosted fails (exit 4), and rollout rollback is recorded', { timeout: 90_000 }, async () => {
    await fetch(`${candidate.url}/admin/fault`, { method: 'POST', body: JSON.stringify({ status: 500, rate: 1 }), headers: { 'content-type': 'application/json' } });
    const stop = new AbortController();
    const traffic = (async () => {
      while (!stop.signal.aborted) {
        await fetch(`${candidate.url}/v1/embeddings`, { method: 'POST', body: '{"input":"ci"}', headers: { 'content-type': 'application/json' } })
          .then((r) => r.arrayBuffer())
          .catch(() => undefined);
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
    const watch = await step(['rollout', 'watch', '--interval', '1s', '--max-duration', '45s', '--evidence-dir', reports, '--metrics-url', `${candidate.url}/metrics`, '--json']);
    stop.abort();
    await traffic;
    await fetch(`${candidate.url}/admin/fault`, { method: 'POST', body: '{"status":0}', headers: { 'content-type': 'application/json' } });
    expect(watch.code, watch.stderr).toBe(4);
    expect(watch.doc?.schema).toBe('embedctl.rollout/v1');
    expect(readFileSync(envFile, 'utf8')).toMatch(/SELF_HOSTED_TRAFFIC_PERCENT=0\b/);

    const rb = await step(['rollout', 'rollback', '--reason', 'manual from CI run 42', '--json']);
    expect(rb.code, rb.stderr).toBe(0);
    const history = JSON.stringify(JSON.parse(readFileSync(join(work, '.embedctl', 'rollout.json'), 'utf8')));
    expect(history).toMatch(/manual from CI run 42/);
  });

  it('never prompts without a TTY: a spend above --max-cost needs --yes, named in one line (exit 2)', async () => {
    const r = await step(['verify-consistency', ...endpoints(), '--sample', '40', '--price-per-million', '1000000', '--max-cost', '0.01', '--json']);
    expect(r.code).toBe(2);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('embedctl: error:'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/--yes/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
