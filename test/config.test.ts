import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatDuration, parseBoolean, parseDuration } from '../common/values.js';
import { configKeys, nearestKey } from '../src/config-schema.js';
import { buildProgram } from '../src/cli.js';
import { DEFINED, attributeOf } from '../src/commands/define.js';
import { runCli } from './helpers/cli.js';
import { PassThrough } from 'node:stream';
import { sleep } from '../src/context.js';

const dir = mkdtempSync(join(tmpdir(), 'embedctl-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
/** A project directory with this embedctl.yaml. */
function project(yaml: string): string {
  const cwd = join(dir, `p${n++}`);
  mkdirp(cwd);
  writeFileSync(join(cwd, 'embedctl.yaml'), yaml);
  return cwd;
}
function mkdirp(p: string) {
  mkdirSync(p, { recursive: true });
}

describe('one duration grammar', () => {
  it('reads ms, s, m, h, d, w, combinations and bare seconds', () => {
    const cases: Array<[unknown, number]> = [
      ['250ms', 250], ['30s', 30_000], ['5m', 300_000], ['1m30s', 90_000], ['2h', 7_200_000], ['1d', 86_400_000], ['1w', 604_800_000],
      ['1d12h', 129_600_000], ['1.5s', 1500], ['45', 45_000], [45, 45_000],
    ];
    for (const [raw, ms] of cases) expect(parseDuration(raw), String(raw)).toBe(ms);
    for (const bad of ['', 'soon', '2x', '1m 30s', 'm', -1]) expect(() => parseDuration(bad), String(bad)).toThrow(/bad duration/);
    for (const ms of [250, 1000, 90_000, 3_661_000, 604_800_000, 129_600_000]) expect(parseDuration(formatDuration(ms))).toBe(ms);
  });

  it('status and rollout accept the same words (7d and 1m30s)', async () => {
    const cwd = join(dir, 'durations');
    mkdirp(cwd);
    for (const v of ['7d', '1m30s']) {
      const r = await runCli(['status', '--interval', v, '--json'], { cwd });
      expect(r.code, r.stderr).toBe(0);
    }
    const r = await runCli(['rollout', 'plan', '--dwell', '1m30s', '--json'], { cwd });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('90000');
  });
});

describe('one boolean vocabulary', () => {
  it('true/false, yes/no, 1/0, on/off in any case, and YAML booleans', () => {
    for (const t of ['true', 'YES', 'yes', '1', 'on', 'On', true]) expect(parseBoolean(t), String(t)).toBe(true);
    for (const f of ['false', 'No', 'no', '0', 'off', 'OFF', false]) expect(parseBoolean(f), String(f)).toBe(false);
    expect(() => parseBoolean('maybe')).toThrow(/expected true or false \(also yes\/no, 1\/0, on\/off\), got "maybe"/);
  });

  it('reaches commands through env and embedctl.yaml alike (cost-report --load-balancer)', async () => {
    const lb = async (o: Parameters<typeof runCli>[1]) => {
      const r = await runCli(['cost-report', '--tokens-per-month', '1e9', '--json'], o);
      expect(r.code, r.stderr).toBe(0);
      const a = r.json<{ assumptions: Array<{ name: string; value: unknown; source: string }> }>().assumptions.find((x) => x.name === 'application load balancer')!;
      return [a.value, a.source];
    };
    expect(await lb({ cwd: project('cost:\n  loadBalancer: on\n') })).toEqual([true, 'embedctl.yaml: cost.loadBalancer']);
    expect(await lb({ cwd: project('cost:\n  loadBalancer: yes\n'), env: { EMBEDCTL_LOAD_BALANCER: 'off' } })).toEqual([false, 'EMBEDCTL_LOAD_BALANCER']);
  });
});

describe('embedctl.yaml is validated as a whole', () => {
  const refused = async (yaml: string, args = ['status']) => {
    const r = await runCli(args, { cwd: project(yaml) });
    expect(r.code, r.stderr).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines, r.stderr).toHaveLength(1);
    return lines[0]!;
  };

  it('an unknown key anywhere is exit 2 naming it and the nearest known key, whatever the command', async () => {
    expect(await refused('verify:\n  minCosin: 0.99\n')).toBe('embedctl: error: embedctl.yaml: verify.minCosin: unknown key (did you mean verify.minCosine?)');
    expect(await refused('verfy:\n  minCosine: 0.99\n', ['cost-report', '--tokens-per-month', '1e9'])).toMatch(/embedctl\.yaml: verfy: unknown key \(did you mean verify\?\)/);
    expect(await refused('rollout:\n  gates:\n    maxP95: 300\n')).toMatch(/embedctl\.yaml: rollout\.gates\.maxP95: unknown key \(did you mean rollout\.gates\.maxP95Ms\?\)/);
    expect(await refused('deploy:\n  replica: 2\n')).toMatch(/deploy\.replica: unknown key \(did you mean deploy\.replicas\?\)/);
    expect(await refused('serve:\n  maxBatchToken: 2\n')).toMatch(/serve\.maxBatchToken: unknown key \(did you mean serve\.maxBatchTokens\?\)/);
    // A key in the wrong place points at where it belongs.
    expect(await refused('tokensPerMonth: 2e9\n')).toMatch(/embedctl\.yaml: tokensPerMonth: unknown key \(did you mean cost\.tokensPerMonth\?\)/);
    expect(await refused('zzz: 1\n')).toMatch(/zzz: unknown key \(known here: aws, cost, deploy, loadTest, provision, rag, rollout, serve, status, verify\)$/);
  });

  it('a bad value names the key, what is expected and the default', async () => {
    expect(await refused('status:\n  interval: soon\n')).toMatch(/embedctl\.yaml: status\.interval: bad duration "soon" \(use 250ms.*\) \(default 10s, or override it with --interval\)/);
    expect(await refused('verify:\n  minCosine: 2\n')).toMatch(/embedctl\.yaml: verify\.minCosine: must be <= 1, got 2 \(default 0\.999, or override it with --min-cosine\)/);
    expect(await refused('cost:\n  loadBalancer: maybe\n')).toMatch(/cost\.loadBalancer: expected true or false/);
    expect(await refused('deploy:\n  replicas: many\n')).toMatch(/deploy\.replicas: expected a whole number/);
    expect(await refused('rag: 3\n')).toMatch(/embedctl\.yaml: rag: expected a mapping of settings, got 3/);
    // Keys of commands not yet on option tables are checked with those commands' parsers.
    expect(await refused('rollout:\n  dwell: soon\n')).toMatch(/embedctl\.yaml: rollout\.dwell: bad duration "soon" .*\(or override it with --dwell\)$/);
    expect(await refused('rollout:\n  driver: carrier-pigeon\n')).toMatch(/rollout\.driver: expected one of /);
    expect(await refused('rollout:\n  gates:\n    maxErrorRate: 500%\n')).toMatch(/rollout\.gates\.maxErrorRate: expected a rate/);
    expect(await refused('loadTest:\n  engine: jmeter\n')).toMatch(/loadTest\.engine: expected one of auto, k6, autocannon/);
  });

  it('under --json the refusal is the error document on stdout', async () => {
    const r = await runCli(['status', '--json'], { cwd: project('verify:\n  minCosin: 0.99\n') });
    expect(r.code).toBe(2);
    expect(r.json()).toMatchObject({ schema: 'embedctl.error/v1', error: { field: 'embedctl.yaml: verify.minCosin', exitCode: 2 } });
  });

  it('a file using every section passes, and --help needs no valid file', async () => {
    const yaml = [
      'cost:\n  tokensPerMonth: 2B\n  peakFactor: 2\n',
      'verify:\n  minCosine: 0.995\n  warnCosine: 0.99\n',
      'rag:\n  minOverlap: 0.8\n',
      'status:\n  interval: 1m30s\n',
      'deploy:\n  replicas: 2\n  prometheus: "on"\n  readTimeout: 1m\n',
      'serve:\n  port: 0\n',
      'rollout:\n  dwell: 7d\n  gates:\n    maxP95Ms: 300\n  cloudwatch:\n    namespace: X\n',
      'loadTest:\n  p95Ms: 400\n',
      'provision:\n  instanceType: g5.xlarge\n',
      'aws:\n  region: eu-west-1\n',
    ].join('');
    const r = await runCli(['cost-report', '--json'], { cwd: project(yaml) });
    expect(r.code, r.stderr).toBe(0);
    const help = await runCli(['status', '--help'], { cwd: project('nonsense: 1\n') });
    expect(help.code).toBe(0);
  });

  it('nearestKey prefers a sibling, then the same name elsewhere', () => {
    const known = configKeys().map((k) => k.path);
    expect(nearestKey('cost.tokensPerMont', known)).toBe('cost.tokensPerMonth');
    expect(nearestKey('warnCosine', known)).toBe('verify.warnCosine');
  });
});

describe('option tables', () => {
  it('every defined command: keys match their flags, yaml keys are known, help shows env, key and default', async () => {
    const ctx = { stdout: new PassThrough(), stderr: new PassThrough(), env: {}, cwd: dir, now: () => new Date(0), sleep, isTTY: false, adapters: {} };
    const program = await buildProgram(ctx, { code: 0 }, 'all');
    const known = new Set(configKeys().map((k) => k.path));
    expect(DEFINED.map((d) => d.name)).toEqual(expect.arrayContaining(['status', 'teardown', 'cost-report', 'verify-consistency', 'rag-overlap']));
    for (const def of DEFINED) {
      const cmd = program.commands.find((c) => c.name() === def.name)!;
      const help = cmd.helpInformation().replace(/\s+/g, ' ');
      for (const [key, row] of Object.entries(def.options)) {
        expect(attributeOf(row.flag)).toBe(key);
        if (row.yaml) expect(known.has(row.yaml), row.yaml).toBe(true);
        if (row.env) expect(help).toContain(`env ${row.env}`);
        if (row.yaml) expect(help).toContain(`embedctl.yaml ${row.yaml}`);
      }
    }
  });

  it('precedence: flag > env > embedctl.yaml > default, each value keeping its source', async () => {
    const cwd = project('verify:\n  minCosine: 0.995\n  warnCosine: 0.98\n');
    // --warn-cosine above the gate is refused, naming whichever source set it.
    const fromEnv = await runCli(['verify-consistency', '--reference', 'http://127.0.0.1:1', '--candidate', 'http://127.0.0.1:2'], { cwd, env: { EMBEDCTL_WARN_COSINE: '0.999' } });
    expect(fromEnv.code).toBe(2);
    expect(fromEnv.stderr).toMatch(/--warn-cosine: 0\.999 is above --min-cosine 0\.995/);
    const fromFlag = await runCli(['verify-consistency', '--reference', 'http://127.0.0.1:1', '--candidate', 'http://127.0.0.1:2', '--min-cosine', '0.9999', '--warn-cosine', '1'], { cwd, env: { EMBEDCTL_WARN_COSINE: '0.5' } });
    expect(fromFlag.stderr).toMatch(/--warn-cosine: 1 is above --min-cosine 0\.9999/);
    const badEnv = await runCli(['status'], { cwd: join(dir, 'durations'), env: { EMBEDCTL_STATUS_INTERVAL: '10' + 'x' } });
    expect(badEnv.code).toBe(2);
    expect(badEnv.stderr).toMatch(/EMBEDCTL_STATUS_INTERVAL: bad duration "10x"/);
  });
});
