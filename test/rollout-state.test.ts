import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';
import { DAY, manualClock, tempProject, writeReports } from './helpers/rollout-fixtures.js';

/**
 * The rollout state machine end to end through the CLI, with the env driver (a file) so every
 * run takes milliseconds, and an injected clock so a week of dwell passes instantly.
 */
let cwd: string;
let clock: ReturnType<typeof manualClock>;
const env = { EMBEDCTL_USER: 'alice@ops' };

const statePath = () => join(cwd, '.embedctl', 'rollout.json');
const state = () => JSON.parse(readFileSync(statePath(), 'utf8'));
const trafficEnv = () => readFileSync(join(cwd, '.embedctl', 'traffic.env'), 'utf8');
const cli = (args: string[], extraEnv: Record<string, string> = {}) =>
  runCli(['rollout', ...args, '--driver', 'env'], { cwd, now: clock.now, env: { ...env, ...extraEnv } });

beforeEach(() => {
  cwd = tempProject();
  clock = manualClock();
  writeReports(cwd, clock.now());
});

describe('rollout: moving forward', () => {
  it('first step writes the share, records who/when/why with the gates, and the history file', async () => {
    const r = await cli(['to', '10', '--json']);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const doc = r.json<{ schema: string; moved: boolean; from: number; to: number; confirmed: boolean; gates: Array<{ status: string }> }>();
    expect(doc.schema).toBe('embedctl.rollout/v1');
    expect(doc).toMatchObject({ moved: true, from: 0, to: 10, confirmed: true });
    expect(doc.gates.map((g) => g.status)).toEqual(['pass', 'pass', 'pass', 'pass', 'pass']);
    expect(trafficEnv()).toBe('SELF_HOSTED_TRAFFIC_PERCENT=10\n');
    const s = state();
    expect(s).toMatchObject({ version: 1, percent: 10, stepIndex: 0, startedAt: clock.now().toISOString(), stepStartedAt: clock.now().toISOString(), driver: 'env' });
    expect(s.history).toHaveLength(1);
    const h = s.history[0];
    expect(h).toMatchObject({ user: 'alice@ops', action: 'set', from: 0, to: 10, forced: false, time: clock.now().toISOString() });
    expect(h.gates.map((g: { name: string }) => g.name)).toEqual(['errorRate', 'p95LatencyMs', 'consistency', 'overlap', 'monthlyCost']);
    const errorGate = h.gates[0];
    expect(errorGate).toMatchObject({ value: 0.002, threshold: 0.05, target: 0.01, status: 'pass', ageSeconds: 0 });
    expect(errorGate.source).toMatch(/load-test\.json$/);
    const lines = readFileSync(join(cwd, '.embedctl', 'rollout.history.jsonl'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ from: 0, to: 10, user: 'alice@ops' });
  });

  it('refuses 10 -> 75 without --force, and --force without --reason, leaving everything as it was', async () => {
    expect((await cli(['to', '10'])).code).toBe(0);
    clock.advance(8 * DAY);
    writeReports(cwd, clock.now());
    const before = readFileSync(statePath(), 'utf8');

    const skip = await cli(['to', '75']);
    expect(skip.code).toBe(2);
    expect(skip.stderr).toMatch(/skips 2 steps \(next step is 25%\)/);
    expect(skip.stderr).toMatch(/--force --reason/);
    expect(skip.stderr.trim().split('\n').length).toBeLessThanOrEqual(2);

    const noReason = await cli(['to', '75', '--force']);
    expect(noReason.code).toBe(2);
    expect(noReason.stderr).toMatch(/--force: needs --reason/);

    expect(readFileSync(statePath(), 'utf8')).toBe(before);
    expect(trafficEnv()).toBe('SELF_HOSTED_TRAFFIC_PERCENT=10\n');

    const forced = await cli(['to', '75', '--force', '--reason', 'capacity test, approved by SRE']);
    expect(forced.code).toBe(0);
    const last = state().history.at(-1);
    expect(last).toMatchObject({ from: 10, to: 75, forced: true, reason: 'capacity test, approved by SRE', action: 'advance' });
    expect(trafficEnv()).toBe('SELF_HOSTED_TRAFFIC_PERCENT=75\n');
  });

  it('enforces the dwell with the injected clock and says when it ends', async () => {
    expect((await cli(['to', '10'])).code).toBe(0);
    const dwellEnd = new Date(clock.now().getTime() + 7 * DAY).toISOString();

    clock.advance(6 * DAY + 23 * 3600 * 1000);
    writeReports(cwd, clock.now());
    const early = await cli(['next']);
    expect(early.code).toBe(2);
    expect(early.stderr).toContain(`dwell ends ${dwellEnd}`);
    expect(early.stderr).toMatch(/in 1h/);
    expect(state().percent).toBe(10);

    clock.advance(3600 * 1000);
    const onTime = await cli(['next', '--json']);
    expect(onTime.code).toBe(0);
    expect(onTime.json()).toMatchObject({ from: 10, to: 25, forced: false });

    // A shorter dwell from embedctl.yaml applies to the running rollout.
    writeFileSync(join(cwd, 'embedctl.yaml'), 'rollout:\n  dwell: 2d\n');
    clock.advance(2 * DAY + 1000);
    writeReports(cwd, clock.now());
    expect((await cli(['next'])).code).toBe(0);
    expect(state()).toMatchObject({ percent: 50, dwellMs: 2 * DAY });
  });

  it('moving back is always allowed and needs no gates', async () => {
    expect((await cli(['to', '10'])).code).toBe(0);
    clock.advance(7 * DAY);
    writeReports(cwd, clock.now());
    expect((await cli(['next'])).code).toBe(0);
    writeReports(cwd, new Date(0)); // stale evidence does not block a move back
    const back = await cli(['to', '10']);
    expect(back.code).toBe(0);
    expect(state().history.at(-1)).toMatchObject({ action: 'back', from: 25, to: 10, gates: [] });
  });
});

describe('rollout: gates', () => {
  it('a missing report is inconclusive: no move, exit 3, names the evidence and the command that makes it', async () => {
    rmSync(join(cwd, '.embedctl', 'reports', 'verify-consistency.json'));
    const r = await cli(['to', '10']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/consistency inconclusive/);
    expect(r.stderr).toMatch(/embedctl verify-consistency --out/);
    expect(existsSync(join(cwd, '.embedctl', 'traffic.env'))).toBe(false);
    expect(state()).toMatchObject({ percent: 0, history: [] });
    expect(state().lastGates.find((g: { name: string }) => g.name === 'consistency').status).toBe('inconclusive');
  });

  it('a stale report is inconclusive even with --force', async () => {
    expect((await cli(['to', '10'])).code).toBe(0);
    clock.advance(7 * DAY + 1);
    writeReports(cwd, new Date(clock.now().getTime() - 25 * 3600 * 1000));
    const r = await cli(['next', '--force', '--reason', 'hurry']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/stale: 1d 1h old, older than --max-evidence-age 1d/);
    expect(state().percent).toBe(10);
    // A wider age limit makes the same reports usable.
    expect((await cli(['next', '--max-evidence-age', '2d'])).code).toBe(0);
  });

  it('a failed gate is never skipped, not even with --force', async () => {
    writeReports(cwd, clock.now(), { cosineMin: 0.95 });
    const r = await cli(['to', '10', '--force', '--reason', 'we know better', '--json']);
    expect(r.code).toBe(3);
    const doc = r.json<{ moved: boolean; verdict: string; gates: Array<{ name: string; status: string; value: number }> }>();
    expect(doc).toMatchObject({ moved: false, verdict: 'fail' });
    expect(doc.gates.find((g) => g.name === 'consistency')).toMatchObject({ status: 'fail', value: 0.95 });
    expect(r.stderr).toMatch(/consistency fail \(0\.9500 is below the limit 0\.9900\)/);
    expect(r.stderr).toMatch(/never skipped/);
    expect(state().percent).toBe(0);
  });

  it('--check exits 0 when all pass and 3 otherwise; thresholds come from flags and embedctl.yaml', async () => {
    writeReports(cwd, clock.now(), { p95: 120, monthlyUsd: 450 });
    const ok = await cli(['check', '--json']);
    expect(ok.code).toBe(0);
    const p95 = ok.json<{ gates: Array<{ name: string; status: string; onTarget: boolean }> }>().gates.find((g) => g.name === 'p95LatencyMs');
    expect(p95).toMatchObject({ status: 'pass', onTarget: false });
    expect((await cli(['check', '--max-p95-ms', '100'])).code).toBe(3);
    writeFileSync(join(cwd, 'embedctl.yaml'), 'rollout:\n  gates:\n    maxMonthlyUsd: 400\n');
    const cost = await cli(['check']);
    expect(cost.code).toBe(3);
    expect(cost.stderr).toMatch(/monthlyCost fail \(\$450\.00 is above the limit \$400\.00\)/);
    const bad = await cli(['check', '--max-error-rate', 'lots']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--max-error-rate: expected a rate like 0\.05 or 5%/);
  });
});

describe('rollout: rollback, pause, plan, status', () => {
  it('--rollback sets 0 %, records why and how long it took; --percent 10 restarts later', async () => {
    expect((await cli(['to', '10'])).code).toBe(0);
    clock.advance(DAY);
    // no --driver: the rollout's own driver (env) moves it back
    const r = await runCli(['rollout', 'rollback', '--reason', 'p95 regression', '--json'], { cwd, now: clock.now, env });
    expect(r.code).toBe(0);
    const doc = r.json<{ from: number; to: number; durationMs: number; confirmed: boolean }>();
    expect(doc).toMatchObject({ from: 10, to: 0, confirmed: true });
    expect(doc.durationMs).toBeGreaterThanOrEqual(0);
    expect(doc.durationMs).toBeLessThan(5000);
    expect(trafficEnv()).toBe('SELF_HOSTED_TRAFFIC_PERCENT=0\n');
    const s = state();
    expect(s).toMatchObject({ percent: 0, stepIndex: -1, lastRollback: { reason: 'p95 regression', from: 10 } });
    expect(s.history.at(-1)).toMatchObject({ action: 'rollback', from: 10, to: 0, reason: 'p95 regression', user: 'alice@ops' });
    writeReports(cwd, clock.now());
    expect((await cli(['to', '10'])).code).toBe(0);
    expect(state().history.map((h: { from: number; to: number }) => `${h.from}->${h.to}`)).toEqual(['0->10', '10->0', '0->10']);
  });

  it('--pause blocks moving forward until --resume', async () => {
    expect((await cli(['to', '10'])).code).toBe(0);
    expect((await cli(['pause', '--reason', 'support tickets about search'])).code).toBe(0);
    clock.advance(8 * DAY);
    writeReports(cwd, clock.now());
    const r = await cli(['next']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/paused \(support tickets about search\)/);
    expect(r.stderr).toMatch(/embedctl rollout resume/);
    expect((await cli(['resume'])).code).toBe(0);
    expect((await cli(['next'])).code).toBe(0);
    expect(state().history.map((h: { action: string }) => h.action)).toEqual(['set', 'pause', 'resume', 'advance']);
  });

  it('--plan gives five steps a week apart from now; --status shows the timeline, gates and next', async () => {
    const plan = await cli(['plan', '--json']);
    const rows = plan.json<{ timeline: Array<{ percent: number; plannedAt: string }> }>().timeline;
    expect(rows.map((t) => t.percent)).toEqual([10, 25, 50, 75, 100]);
    expect(rows.map((t) => t.plannedAt.slice(0, 10))).toEqual(['2026-03-02', '2026-03-09', '2026-03-16', '2026-03-23', '2026-03-30']);

    expect((await cli(['to', '10'])).code).toBe(0);
    clock.advance(8 * DAY);
    writeReports(cwd, clock.now());
    expect((await cli(['next'])).code).toBe(0);
    clock.advance(DAY);
    const st = await cli(['status', '--json']);
    const doc = st.json<{ state: { percent: number; dwellRemainingMs: number; nextPercent: number }; timeline: Array<{ state: string; actualAt: string | null; plannedAt: string }>; next: string; history: unknown[]; lastGates: unknown[] }>();
    expect(doc.state).toMatchObject({ percent: 25, nextPercent: 50, dwellRemainingMs: 6 * DAY });
    expect(doc.timeline.map((t) => t.state)).toEqual(['done', 'current', 'next', 'planned', 'planned']);
    expect(doc.timeline[0]!.actualAt).toBe('2026-03-02T09:00:00.000Z');
    expect(doc.timeline[1]!.actualAt).toBe('2026-03-10T09:00:00.000Z');
    // The rest of the plan follows from the real date of the current step.
    expect(doc.timeline[2]!.plannedAt.slice(0, 10)).toBe('2026-03-17');
    expect(doc.next).toMatch(/^50% after 2026-03-17T09:00:00.000Z \(in 6d\)/);
    expect(doc.history).toHaveLength(2);
    expect(doc.lastGates).toHaveLength(5);
    const text = await cli(['status']);
    expect(text.stdout).toMatch(/self-hosted: 25% \(step 2 of 5\)/);
    expect(text.stdout).toMatch(/alice@ops\s+advance\s+10%\s+25%/);
  });

  it("today's flags still work for one release, with a one-line deprecation note on stderr", async () => {
    const plan = await cli(['--plan', '--json']);
    expect(plan.code).toBe(0);
    expect(plan.json<{ action: string }>().action).toBe('plan');
    expect(plan.stderr).toBe('embedctl: --plan is deprecated and goes away in the next release; use `embedctl rollout plan`\n');
    const moved = await cli(['--percent', '10']);
    expect(moved.code).toBe(0);
    expect(moved.stderr).toMatch(/--percent is deprecated .* use `embedctl rollout to N`/);
    expect(trafficEnv()).toBe('SELF_HOSTED_TRAFFIC_PERCENT=10\n');
    const bare = await cli([]);
    expect(bare.code).toBe(0);
    expect(bare.stdout).toMatch(/self-hosted: 10% \(step 1 of 5\)/);
    expect(bare.stderr).toBe('');
  });

  it('watch refuses to start without a live signal: exit 2 naming the sources it tried and the flag to give', async () => {
    expect((await cli(['to', '10'])).code).toBe(0);
    const r = await cli(['watch', '--interval', '10ms']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no live traffic signal: tried --metrics-url .*--nginx-access-log .*--cloudwatch/);
    expect(r.stderr).toMatch(/hint: give one: --metrics-url .*--nginx-access-log .*--cloudwatch/);
    const missing = await cli(['watch', '--nginx-access-log', join(cwd, 'nope.log')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot read the live signal .*nope\.log/);
  });

  it('usage errors are one line naming the flag', async () => {
    const both = await cli(['--next', '--rollback']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--rollback: choose one of --next, --rollback/);
    const notStep = await cli(['to', '30']);
    expect(notStep.code).toBe(2);
    expect(notStep.stderr).toMatch(/30% is not a step of the plan \(10, 25, 50, 75, 100\)/);
    const badSteps = await cli(['plan', '--steps', '10,5,100']);
    expect(badSteps.code).toBe(2);
    expect(badSteps.stderr).toMatch(/--steps: steps must increase/);
    const fractional = await cli(['plan', '--steps', '10,12.5,100']);
    expect(fractional.code).toBe(2);
    expect(fractional.stderr).toMatch(/--steps: steps are whole percentages .* got 12\.5; round it, e.g\. 13/);
    const driver = await runCli(['rollout', 'to', '10', '--driver', 'carrier-pigeon'], { cwd, now: clock.now });
    expect(driver.code).toBe(2);
    expect(driver.stderr).toMatch(/--driver: expected one of nginx, env, k8s/);
    for (const r of [both, notStep, badSteps, fractional, driver]) expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('rollout: k8s driver (the canary Ingress that render writes)', () => {
  it('--k8s-manifests moves the canary weight in the rendered k8s/ and confirms it, keeping the rest', async () => {
    expect((await runCli(['render', '--allow-demo-model', '--out', 'deploy'], { cwd, env })).code).toBe(0);
    const traffic = join(cwd, 'deploy', 'k8s', 'traffic.yaml');
    const before = readFileSync(traffic, 'utf8');
    expect(before).toContain('nginx.ingress.kubernetes.io/canary-weight: "0"');
    const r = await runCli(['rollout', 'to', '10', '--driver', 'k8s', '--k8s-manifests', 'deploy/k8s', '--json'], { cwd, now: clock.now, env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.json()).toMatchObject({ driver: 'k8s', confirmed: true, observedPercent: 10 });
    expect(r.stderr).toMatch(/with the k8s driver \(Ingress embedctl-self-hosted in .*deploy\/k8s\)/);
    const after = readFileSync(traffic, 'utf8');
    expect(after).toBe(before.replace('canary-weight: "0"', 'canary-weight: "1000"'));
    // The weight is what ingress-nginx reads: a valid Ingress for the Kubernetes API schema.
    const { Ingress } = await import('kubernetes-models/networking.k8s.io/v1');
    const canary = parseAllDocuments(after).map((d) => d.toJS()).find((d) => d.kind === 'Ingress' && d.metadata.name === 'embedctl-self-hosted');
    expect(() => new Ingress(canary).validate()).not.toThrow();
    const missing = await runCli(['rollout', 'rollback', '--driver', 'k8s', '--k8s-manifests', 'deploy/k8s', '--k8s-ingress', 'nope'], { cwd, now: clock.now, env });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--k8s-manifests: no Ingress named nope in .*deploy\/k8s/);
  });

  it('annotates the live Ingress with kubectl and confirms by reading it back', async () => {
    const bin = join(cwd, 'bin');
    mkdirSync(bin);
    const log = join(cwd, 'kubectl.log');
    writeFileSync(join(bin, 'kubectl'), `#!/bin/sh\nprintf '%s\\n' "$*" >> "${log}"\ncase "$1" in get) echo 0;; esac\n`);
    chmodSync(join(bin, 'kubectl'), 0o755);
    expect((await cli(['to', '10'])).code).toBe(0);
    const r = await runCli(['rollout', 'rollback', '--driver', 'k8s', '--k8s-namespace', 'search', '--reason', 'drill'], { cwd, now: clock.now, env: { ...env, PATH: `${bin}:${process.env.PATH}` } });
    expect(r.code, r.stderr).toBe(0);
    const calls = readFileSync(log, 'utf8').trim().split('\n');
    expect(calls[0]).toBe('annotate ingress embedctl-self-hosted -n search nginx.ingress.kubernetes.io/canary-weight=0 --overwrite');
    expect(calls[1]).toBe('get ingress embedctl-self-hosted -n search -o jsonpath={.metadata.annotations.nginx\\.ingress\\.kubernetes\\.io/canary-weight}');
    const noKubectl = await runCli(['rollout', 'rollback', '--driver', 'k8s'], { cwd, now: clock.now, env: { ...env, PATH: '/nonexistent' } });
    expect(noKubectl.code).toBe(1);
    expect(noKubectl.stderr).toMatch(/kubectl: kubectl not found on PATH/);
  });
});

afterEach(() => rmSync(cwd, { recursive: true, force: true }));
