// `embedctl rehearse` from the CLI: every stage green on a short schedule, every process it started
// stopped afterwards, and its summary equal to what each stage's own report says.
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';
import type { StageResult } from '../src/core/rehearse.js';
import { nginxBinary } from '../src/adapters/nginx.js';

const dir = mkdtempSync(join(tmpdir(), 'embedctl-rehearse-test-'));
// Searchable by others: nginx started as root reads the split directory as `nobody`.
chmodSync(dir, 0o755);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Summary {
  schema: string;
  verdict: string;
  nginx: boolean;
  simulatedDays: number;
  stages: StageResult[];
}

const readJson = (p: string) => JSON.parse(readFileSync(p, 'utf8')) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const haveNginx = nginxBinary() !== undefined;
if (!haveNginx && process.env.CI) throw new Error('nginx is required in CI (.ci/run installs it)');

describe.skipIf(!haveNginx)('embedctl rehearse (nginx path)', () => {
  it('passes every stage and its summary matches the stage reports', { timeout: 240_000 }, async () => {
    const out = join(dir, 'nginx');
    const r = await runCli(['rehearse', '--json', '--out', out, '--sample', '60', '--load-seconds', '2']);
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    const s = r.json<Summary>();
    expect(s.schema).toBe('embedctl.rehearse/v1');
    expect(s.nginx).toBe(true);
    expect(s.stages.map((x) => x.id)).toEqual(['cost', 'render', 'serve', 'verify', 'overlap', 'load', 'rollout-10', 'rollout-25', 'rollout-50', 'rollout-75', 'rollout-100', 'fault']);
    for (const st of s.stages) expect(st.verdict, `${st.id}: ${st.note}`).toBe('pass');
    expect(s.simulatedDays).toBeGreaterThanOrEqual(28);
    // The file summary is the same document.
    expect(readJson(join(out, 'rehearsal-summary.json'))).toEqual(s);

    const by = Object.fromEntries(s.stages.map((x) => [x.id, x]));
    const report = (id: string) => readJson(by[id]!.report!);
    // Every summary figure equals the field of the stage's own report it came from; the only
    // others are what rehearse measured itself (listed here, so a new figure needs a check).
    const fromReport: Record<string, (r: Record<string, any>) => Record<string, unknown>> = { // eslint-disable-line @typescript-eslint/no-explicit-any
      cost: (c) => ({ tokensPerMonth: c.monthly.tokensPerMonth, hostedUsd: c.monthly.hosted, onDemandUsd: c.monthly.onDemand.total, spotUsd: c.monthly.spot.total, recommendation: c.recommendation.decision }),
      verify: (v) => ({ texts: v.count, minCosine: v.cosine.min, meanCosine: v.cosine.mean, belowWarn: v.belowWarn, verdict: v.verdict }),
      overlap: (o) => ({ queries: o.queries, corpus: o.corpus, overlapMean: o.overlap.mean, overlapMin: o.overlap.min }),
      load: (l) => ({ requests: l.requests, embeddingsPerMinute: l.embeddingsPerMinute, p95Ms: l.latencyMs.p95, errorRate: l.errorRate, meetsSuccessCriteria: l.verdict.meetsSuccessCriteria }),
      rollout: (st) => ({ driver: st.history.at(-1).driver, target: st.history.at(-1).target, percent: st.percent, gatesPassed: st.lastGates.filter((g: { status: string }) => g.status === 'pass').length, gates: st.lastGates.length }),
      fault: (st) => ({ driver: st.history.at(-1).driver, target: st.history.at(-1).target, percent: st.percent, rollbackMs: st.lastRollback.durationMs, reason: st.lastRollback.reason }),
    };
    const ownMeasurements: Record<string, string[]> = {
      render: ['files'],
      serve: ['gateway', 'hosted', 'hostedPid', 'selfHosted', 'sampledHosted', 'sampledErrors'],
      rollout: ['observedSelfHostedPct', 'expectedSelfHostedPct', 'simulatedDate'],
      fault: ['watchExit', 'secondsToRollback', 'clientRequestsDuringFault', 'clientErrorsDuringFault', 'connectionRetriesDuringFault', 'afterSelfHosted', 'afterHosted'],
    };
    for (const st of s.stages) {
      const kind = st.id.replace(/-\d+$/, '');
      const expected = fromReport[kind] ? fromReport[kind](report(st.id)) : {};
      const own = ownMeasurements[kind] ?? [];
      expect(Object.keys(st.figures).sort(), st.id).toEqual([...Object.keys(expected), ...own].sort());
      for (const [k, v] of Object.entries(expected)) expect(st.figures[k], `${st.id}.${k}`).toEqual(v);
    }
    // The figure rehearse --json used to get wrong (always null): the load stage's own verdict.
    expect(typeof by.load!.figures.meetsSuccessCriteria).toBe('boolean');
    expect(by.load!.figures.meetsSuccessCriteria).toBe(report('load').verdict.meetsSuccessCriteria);
    const verify = report('verify');
    expect(verify.count).toBe(60);
    // default vs default-q: close, but measurably not identical.
    expect(verify.cosine.min).toBeGreaterThan(0.999);
    expect(verify.cosine.min).toBeLessThan(1);
    for (const pct of [10, 25, 50, 75, 100]) {
      const st = by[`rollout-${pct}`]!;
      expect(st.figures.percent).toBe(pct);
      expect(Math.abs(Number(st.figures.observedSelfHostedPct) - pct)).toBeLessThanOrEqual(10);
      // The sample's keys are fixed: their share is known exactly, close to the step.
      expect(Math.abs(Number(st.figures.expectedSelfHostedPct) - pct)).toBeLessThanOrEqual(2);
    }
    // The gateway moved the way a deployment's does: the ssm driver, its script run by the
    // local instance against the stack's nginx: it writes the split directory (its `current`
    // link is what the script leaves behind), and never reloads nginx.
    for (const id of ['rollout-10', 'rollout-100', 'fault']) {
      expect(by[id]!.figures.driver, id).toBe('ssm');
      expect(String(by[id]!.figures.target), id).toMatch(/^ssm mi-0000000000000000 \(local\), gateway http:\/\/127\.0\.0\.1:\d+$/);
    }
    expect(existsSync(join(out, '.embedctl', 'local', 'nginx', 'split', 'current', 'health.json'))).toBe(true);
    expect(r.stderr).toMatch(/with the ssm driver \(ssm mi-0000000000000000 \(local\)/);
    const fault = by.fault!;
    expect(fault.figures.watchExit).toBe(4);
    expect(fault.figures.afterSelfHosted).toBe(0);
    // Issue 14: the runtimes answer 500 but clients never notice (next replica, then hosted).
    expect(Number(fault.figures.clientRequestsDuringFault)).toBeGreaterThan(0);
    expect(fault.figures.clientErrorsDuringFault).toBe(0);

    // The rollout state agrees: back at 0 %, with the automatic rollback in its history.
    const state = readJson(join(out, '.embedctl', 'rollout.json'));
    expect(state.percent).toBe(0);
    expect(JSON.stringify(state.history ?? readFileSync(join(out, '.embedctl', 'rollout.history.jsonl'), 'utf8'))).toMatch(/automatic/);

    // Nothing left running: the local stack is gone and every runtime it logged has exited.
    expect(existsSync(join(out, '.embedctl', 'local.json'))).toBe(false);
    const pids = [...readFileSync(join(out, 'stages', 'serve.json'), 'utf8').matchAll(/"pid":\s*(\d+)/g)].map((m) => Number(m[1]));
    expect(pids.length).toBeGreaterThanOrEqual(3);
    pids.push(Number(by.serve!.figures.hostedPid));
    for (const pid of pids) expect(alive(pid), `pid ${pid}`).toBe(false);
  });
});

describe('embedctl rehearse (hybrid-client path)', () => {
  it('routes with the hybrid client, still rolls back by itself, and removes its temp work dir', { timeout: 240_000 }, async () => {
    const r = await runCli(['rehearse', '--skip-nginx', '--json', '--sample', '40', '--load-seconds', '1']);
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    expect(r.stderr).toMatch(/hybrid client/);
    const s = r.json<Summary & { workDir: string | null }>();
    expect(s.nginx).toBe(false);
    expect(s.stages.every((x) => x.verdict === 'pass')).toBe(true);
    expect(s.stages.find((x) => x.id === 'fault')!.figures).toMatchObject({ driver: 'env', percent: 0, afterSelfHosted: 0 });
    // Without --out or --keep the ~25 MB work dir is gone, and the summary does not point into it.
    const work = /rehearse: work dir (\S+)/.exec(r.stderr)![1]!;
    expect(existsSync(work)).toBe(false);
    expect(s.workDir).toBeNull();
    expect(s.stages.every((x) => x.report === undefined)).toBe(true);
  });
});

describe.skipIf(!haveNginx)('embedctl rehearse interrupted', () => {
  it('Ctrl-C once the stack is up: exit 130, a partial summary, every process stopped', { timeout: 120_000 }, async () => {
    const out = join(dir, 'interrupted');
    const ac = new AbortController();
    const localJson = join(out, '.embedctl', 'local.json');
    let pids: number[] = [];
    const watcher = setInterval(() => {
      if (ac.signal.aborted || !existsSync(localJson)) return;
      const text = readFileSync(localJson, 'utf8');
      pids = [...text.matchAll(/"pid":\s*(\d+)/g)].map((m) => Number(m[1]));
      if (pids.length >= 3) ac.abort(new Error('SIGINT'));
    }, 50);
    const r = await runCli(['rehearse', '--json', '--out', out, '--load-seconds', '1'], { signal: ac.signal });
    clearInterval(watcher);
    expect(ac.signal.aborted).toBe(true);
    expect(r.code).toBe(130);
    const s = r.json<Summary>();
    expect(s.verdict).toBe('fail');
    expect(s.stages.at(-1)!.id).toBe('interrupted');
    expect(existsSync(localJson)).toBe(false);
    expect(pids.length).toBeGreaterThanOrEqual(3);
    for (const pid of pids) expect(alive(pid), `pid ${pid}`).toBe(false);
  });
});
