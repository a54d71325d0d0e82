// Issue 13.6: the weekly step of examples/ci/github-actions.yml, its `run:` scripts taken from the
// YAML and executed by bash as Actions runs them (bash -eo pipefail), `embedctl` being the real
// bin/embedctl.js, against stand-ins: a deployment "main" in .embedctl/state.json whose gateway is
// a real nginx with real runtimes (up --local plays the instance), and AWS SSM answered over HTTP
// (AWS_ENDPOINT_URL_SSM) by the stand-in that runs the very script SendCommand carries.
// gates -> change (ssm driver) -> confirm (sampling the gateway), then the rollback branch.
import { execa } from 'execa';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { deploymentTarget } from '../src/adapters/evidence-targets.js';
import { startStandaloneRuntime, stopLocalStack, stopStandaloneRuntime, type LocalRuntime } from '../src/adapters/local-stack.js';
import { localInstance } from '../src/adapters/aws/ssm-local.js';
import { runCli } from './helpers/cli.js';
import { nginxOrSkip, tempDir } from './helpers/gateway.js';
import { ssmEndpoint } from './helpers/ssm-standin.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { skip } = nginxOrSkip();
const tmp = tempDir('embedctl-ci-remote-');
const INSTANCE = 'i-0123456789abcdef0';
/** The steps of the weekly job that run embedctl, in order (a renamed step fails the test). */
const WEEKLY = ['Consistency (hosted vs self-hosted)', 'Retrieval overlap', 'Load test (self-hosted)', 'Cost', 'Move traffic (or roll back)'];

interface Step {
  name?: string;
  run?: string;
}
const workflow = parseYaml(readFileSync(join(root, 'examples', 'ci', 'github-actions.yml'), 'utf8')) as { jobs: Record<string, { env: Record<string, string>; steps: Step[] }> };
const job = workflow.jobs['weekly-step']!;

/** `${{ ... }}` as Actions would expand it here; anything the test does not know fails loudly. */
function expand(text: string, values: Record<string, string>): string {
  return text.replace(/\$\{\{\s*([^}]+?)\s*\}\}/g, (_, expr: string) => {
    if (!(expr in values)) throw new Error(`the example uses \${{ ${expr} }}, which this test does not provide`);
    return values[expr]!;
  });
}

describe.skipIf(skip)('examples/ci/github-actions.yml, the weekly step, through the real binary', () => {
  let hosted: LocalRuntime;
  let inst: string;
  let ci: string;
  let gateway: string;
  let operatorKey: string;
  let endpoint: Awaited<ReturnType<typeof ssmEndpoint>>;
  let bin: string;

  beforeAll(async () => {
    inst = join(tmp.dir, 'instance');
    ci = join(tmp.dir, 'ci');
    bin = join(tmp.dir, 'bin');
    for (const d of [inst, ci, bin, join(ci, '.embedctl')]) mkdirSync(d, { recursive: true });
    // The instance: a hosted stand-in (default-q: the same vector space, quantised) and the
    // gateway with one self-hosted runtime, at 0 %.
    hosted = await startStandaloneRuntime({ cwd: inst, name: 'hosted', model: 'default-q', env: { PATH: process.env.PATH } });
    const up = await runCli(['up', '--local', '--replicas', '1', '--percent', '0', '--same-model', '--hosted-url', `${hosted.url}/v1/embeddings`, '--json'], { cwd: inst, env: {} });
    expect(up.code, up.stderr).toBe(0);
    gateway = up.json<{ url: string }>().url;
    operatorKey = (await deploymentTarget(inst, {}, 'local')).selfHosted.headers.Authorization!.replace(/^Bearer /, '');
    // SSM in front of it: /opt/embedctl/deploy is the stack's .embedctl/local (nginx/nginx.conf).
    const instance = localInstance({ root: tmp.dir, deployDir: join(inst, '.embedctl', 'local'), prefix: join(inst, '.embedctl', 'local', 'nginx'), instanceId: INSTANCE });
    endpoint = await ssmEndpoint(instance);
    // The CI checkout: what provision left in state.json (restored from the cache), and the corpus.
    const at = new Date().toISOString();
    writeFileSync(
      join(ci, '.embedctl', 'state.json'),
      JSON.stringify({ version: 1, deployments: { main: { name: 'main', region: 'eu-west-1', createdAt: at, updatedAt: at, attempt: 1, instance: { id: INSTANCE, instanceType: 'g4dn.xlarge', market: 'on-demand' }, alarms: [], gateway, endpoints: [] } }, attempts: { main: 1 } }),
    );
    copyFileSync(join(root, 'data', 'rag', 'corpus.jsonl'), join(ci, 'corpus.jsonl'));
    copyFileSync(join(root, 'data', 'rag', 'queries.jsonl'), join(ci, 'queries.jsonl'));
    // What the install step leaves on PATH: the built binary.
    writeFileSync(join(bin, 'embedctl'), `#!/bin/sh\nexec "${process.execPath}" "${join(root, 'bin', 'embedctl.js')}" "$@"\n`);
    chmodSync(join(bin, 'embedctl'), 0o755);
  }, 180_000);

  afterAll(async () => {
    await endpoint?.close();
    if (inst) await stopLocalStack(inst).catch(() => undefined);
    if (hosted) await stopStandaloneRuntime(hosted);
    tmp.cleanup();
  });

  /** Runs the weekly steps in order, stopping at the first failure, as Actions does. */
  async function weekly(action: string, steps = WEEKLY) {
    const output = join(ci, `github-output-${action || 'next'}`);
    writeFileSync(output, '');
    const expressions = {
      'secrets.EMBEDCTL_OPERATOR_KEY': operatorKey,
      'vars.EMBEDCTL_TOKENS_PER_MONTH': '2B',
      'github.event.inputs.action': action,
      'github.run_id': '4242',
    };
    const env: Record<string, string> = {
      PATH: `${bin}:${process.env.PATH}`,
      HOME: tmp.dir,
      GITHUB_OUTPUT: output,
      // What aws-actions/configure-aws-credentials exports; the SDK sends SSM to the stand-in.
      AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
      AWS_REGION: 'us-east-1',
      AWS_ENDPOINT_URL_SSM: endpoint.url,
      AWS_EC2_METADATA_DISABLED: 'true',
      ...Object.fromEntries(Object.entries(job.env).map(([k, v]) => [k, expand(String(v), expressions)])),
    };
    const results: Array<{ name: string; code: number; stderr: string }> = [];
    for (const name of steps) {
      const step = job.steps.find((s) => s.name === name);
      expect(step?.run, `step "${name}" in the example`).toBeTruthy();
      const r = await execa('bash', ['--noprofile', '--norc', '-eo', 'pipefail', '-c', expand(step!.run!, expressions)], { cwd: ci, env, extendEnv: false, stdin: 'ignore', reject: false, timeout: 150_000 });
      results.push({ name, code: r.exitCode ?? -1, stderr: r.stderr });
      if (r.exitCode !== 0) break;
    }
    return { results, output: readFileSync(output, 'utf8') };
  }

  const readJson = (f: string) => JSON.parse(readFileSync(join(ci, f), 'utf8')) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  const health = async () => ((await (await fetch(`${gateway}/health`)).json()) as { selfHostedPercent: number }).selfHostedPercent;

  it('gates -> change -> confirm: evidence from each side through the gateway, then 0 -> 10 % over SSM', { timeout: 300_000 }, async () => {
    const { results, output } = await weekly('');
    for (const r of results) expect(r.code, `${r.name}: ${r.stderr.slice(-1500)}`).toBe(0);
    expect(results.map((r) => r.name)).toEqual(WEEKLY);

    // Evidence: candidate answered by self-hosted, reference by hosted, via the operator route.
    const verify = readJson('verify.json');
    expect(verify).toMatchObject({ schema: 'embedctl.verify-consistency/v1', verdict: 'pass', candidate: { answeredBy: 'selfhosted' }, reference: { answeredBy: 'hosted' } });
    expect(verify.candidate.via).toMatch(/^deployment main: http:\/\/127\.0\.0\.1:\d+ with X-Embedctl-Route: self-hosted/);
    expect(readJson('overlap.json')).toMatchObject({ schema: 'embedctl.rag-overlap/v1', candidate: { answeredBy: 'selfhosted' } });
    const load = readJson('load.json');
    expect(load).toMatchObject({ schema: 'embedctl.load-test/v1', answeredBy: 'selfhosted' });
    expect(load.backends.selfhosted).toBe(load.requests);
    expect(readJson('cost.json').schema).toBe('embedctl.cost-report/v1');

    // Change: the ssm driver, picked from state.json, through the SDK to the stand-in.
    const moved = readJson('rollout.json');
    expect(moved).toMatchObject({ schema: 'embedctl.rollout/v1', driver: 'ssm', confirmed: true });
    expect(moved.detail).toMatch(new RegExp(`^${INSTANCE}: split 0% -> 10%, written to the gateway's split directory \\(no reload\\); \\d+ samples via ${gateway}`));
    expect(results.at(-1)!.stderr).toContain(`with the ssm driver (ssm ${INSTANCE} (eu-west-1), gateway ${gateway})`);
    expect(endpoint.calls.filter((c) => c.operation === 'SendCommand').map((c) => c.input.Comment)).toEqual(['embedctl rollout: read the gateway split', 'embedctl rollout: 10% self-hosted']);
    expect(endpoint.calls.every((c) => (c.input.InstanceIds as string[] | undefined)?.[0] === INSTANCE || c.input.InstanceId === INSTANCE)).toBe(true);
    expect(output).toMatch(/^exit=0$/m);
    // Confirm: the gateway itself serves the new split.
    expect(await health()).toBe(10);
  });

  it('the rollback branch (workflow_dispatch action=rollback) puts the gateway back to 0 % over SSM', { timeout: 300_000 }, async () => {
    const sends = endpoint.calls.length;
    // Only the move step: the evidence steps ran above, and a rollback needs no gate.
    const { results } = await weekly('rollback', WEEKLY.slice(-1));
    for (const r of results) expect(r.code, `${r.name}: ${r.stderr.slice(-1500)}`).toBe(0);
    expect(readJson('rollout.json')).toMatchObject({ schema: 'embedctl.rollout/v1' });
    expect(await health()).toBe(0);
    expect(endpoint.calls.slice(sends).filter((c) => c.operation === 'SendCommand').map((c) => c.input.Comment)).toEqual(['embedctl rollout: read the gateway split', 'embedctl rollout: 0% self-hosted']);
    const history = readJson('.embedctl/rollout.json').history as Array<{ action: string; reason: string | null; driver: string }>;
    expect(history.at(-1)).toMatchObject({ action: 'rollback', driver: 'ssm', reason: 'manual from CI run 4242' });
  });

  it('the GitLab example runs the same embedctl commands', () => {
    const norm = (s: string) => s.replace(/\\\n\s*/g, '').replace(/\s+/g, ' ').trim();
    const github = WEEKLY.slice(0, 4).flatMap((n) => norm(job.steps.find((s) => s.name === n)!.run!).split(' > ')[0]!);
    const gitlab = parseYaml(readFileSync(join(root, 'examples', 'ci', 'gitlab-ci.yml'), 'utf8')) as { verify: { script: string[] }; default: { before_script: string[] } };
    expect(gitlab.verify.script.map((l) => norm(l).split(' > ')[0])).toEqual(github);
    expect(gitlab.default.before_script.join('\n')).toContain('"$EMBEDCTL_REPO" "$EMBEDCTL_COMMIT"');
  });
});
