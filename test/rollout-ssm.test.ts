// The ssm driver (issue 13.2, 14): the real SSM SDK client in front of aws-sdk-client-mock, whose
// SendCommand runs the very script embedctl sends against a real nginx on loopback (the SSM
// stand-in). Every SDK parameter is asserted; the weekly step runs through it end to end. The
// split moves by writing the split directory the gateway reads per request: nginx is never reloaded.
import { GetCommandInvocationCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applySplitScript, readSplitScript } from '../src/adapters/aws/ssm-traffic.js';
import { startNginx, type NginxInstance } from '../src/adapters/nginx.js';
import { renderNginxConf, type NginxConfOptions } from '../src/core/render.js';
import { runCli } from './helpers/cli.js';
import { embed, freePort, nginxOrSkip, pool, startStandin, tempDir, type Standin } from './helpers/gateway.js';
import { writeReports } from './helpers/rollout-fixtures.js';
import { ssmStandin, type SsmStandin } from './helpers/ssm-standin.js';

const { skip } = nginxOrSkip();
const tmp = tempDir('embedctl-rollout-ssm-');
afterAll(() => tmp.cleanup());
const INSTANCE = 'i-0123456789abcdef0';
const ssm = mockClient(SSMClient);

let seq = 0;
let cwd: string;
let confPath: string;
let self: Standin;
let hosted: Standin;
let nginx: NginxInstance;
let standin: SsmStandin;
let options: NginxConfOptions;

beforeEach(async () => {
  ssm.reset();
  if (skip) return;
  cwd = join(tmp.dir, `p${++seq}`);
  // The instance: /opt/embedctl/deploy as user data lays it out, nginx's -p prefix beside it.
  const deployDir = join(cwd, 'instance', 'deploy');
  const prefix = join(cwd, 'instance', 'cache') + '/';
  mkdirSync(join(deployDir, 'nginx'), { recursive: true });
  mkdirSync(prefix, { recursive: true });
  [self, hosted] = await Promise.all([startStandin('selfhosted'), startStandin('hosted')]);
  options = {
    listen: { host: '127.0.0.1', port: await freePort() },
    // On an instance the container mounts $DEPLOY_DIR/nginx/split there; here nginx runs on the host.
    splitDir: join(deployDir, 'nginx', 'split'),
    selfHosted: [`127.0.0.1:${self.port}`],
    hostedUrl: `${hosted.url}/v1/embeddings`,
    selfHostedPercent: 0,
    workerProcesses: 1,
    errorLog: 'error.log',
    accessLog: 'access.log',
  };
  confPath = join(deployDir, 'nginx', 'nginx.conf');
  writeFileSync(confPath, renderNginxConf(options));
  nginx = await startNginx({ confPath, prefix });
  standin = ssmStandin({ root: cwd, deployDir, prefix, instanceId: INSTANCE });
  ssm.on(SendCommandCommand).callsFake((input) => standin.sendCommand(input));
  ssm.on(GetCommandInvocationCommand).callsFake((input) => standin.getInvocation(input));
  // What provision leaves in .embedctl/state.json.
  const at = new Date().toISOString();
  mkdirSync(join(cwd, '.embedctl'), { recursive: true });
  writeFileSync(
    join(cwd, '.embedctl', 'state.json'),
    JSON.stringify({ version: 1, deployments: { main: { name: 'main', region: 'eu-west-1', createdAt: at, updatedAt: at, attempt: 1, instance: { id: INSTANCE, instanceType: 'g4dn.xlarge', market: 'on-demand' }, alarms: [], gateway: nginx.url, endpoints: [] } }, attempts: { main: 2 } }),
  );
  writeReports(cwd, new Date());
});

afterEach(async () => {
  if (skip) return;
  await nginx.stop();
  await Promise.all([self.stop(), hosted.stop()]);
});

const rollout = (args: string[]) => runCli(['rollout', ...args], { cwd, env: { EMBEDCTL_USER: 'dana@ops', EMBEDCTL_SSM_POLL_MS: '20', AWS_REGION: 'us-east-1' } });

/** The apply script with its fresh generation name blanked (each run names a new one). */
const blankGeneration = (commands: string[] | undefined) => (commands ?? []).map((c) => c.replace(/g-(\d+)-[0-9a-z]+/g, 'g-$1-X'));

describe.skipIf(skip)('rollout with the ssm driver (SSM stand-in, real nginx)', () => {
  it('the weekly step (gates -> change -> confirm) picks ssm from state.json, says so, and asserts every SDK parameter', async () => {
    const original = readFileSync(confPath, 'utf8');
    const check = await rollout(['check']);
    expect(check.code, check.stderr).toBe(0);
    const r = await rollout(['to', '10', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`with the ssm driver (ssm ${INSTANCE} (eu-west-1), gateway ${nginx.url})`);
    const doc = r.json<{ driver: string; target: string; confirmed: boolean; observedPercent: number; detail: string }>();
    expect(doc).toMatchObject({ driver: 'ssm', confirmed: true });
    expect(doc.detail).toMatch(new RegExp(`${INSTANCE}: split 0% -> 10%, written to the gateway's split directory \\(no reload\\); 200 samples via ${nginx.url}`));
    // The config is untouched and nothing reloaded nginx; it serves the new split.
    expect(readFileSync(confPath, 'utf8')).toBe(original);
    expect(standin.scripts.join('\n')).not.toMatch(/reload|nginx -t/);
    expect(((await (await fetch(`${nginx.url}/health`)).json()) as { selfHostedPercent: number }).selfHostedPercent).toBe(10);

    const sends = ssm.commandCalls(SendCommandCommand).map((c) => c.args[0].input);
    expect(sends.map((x) => ({ ...x, Parameters: { ...x.Parameters, commands: blankGeneration(x.Parameters?.commands) } }))).toEqual([
      { InstanceIds: [INSTANCE], DocumentName: 'AWS-RunShellScript', Comment: 'embedctl rollout: read the gateway split', TimeoutSeconds: 60, Parameters: { commands: readSplitScript(), executionTimeout: ['120'] } },
      { InstanceIds: [INSTANCE], DocumentName: 'AWS-RunShellScript', Comment: 'embedctl rollout: 10% self-hosted', TimeoutSeconds: 60, Parameters: { commands: blankGeneration(applySplitScript(10, undefined)), executionTimeout: ['120'] } },
    ]);
    const polls = ssm.commandCalls(GetCommandInvocationCommand).map((c) => c.args[0].input);
    expect(polls).toEqual([{ CommandId: 'cmd-1', InstanceId: INSTANCE }, { CommandId: 'cmd-2', InstanceId: INSTANCE }]);
    // The SDK client was built for the deployment's region, not AWS_REGION.
    expect(await ssm.commandCalls(SendCommandCommand)[0]!.thisValue.config.region()).toBe('eu-west-1');
    expect(JSON.parse(readFileSync(join(cwd, '.embedctl', 'rollout.json'), 'utf8')).history.at(-1)).toMatchObject({ driver: 'ssm', to: 10, target: `ssm ${INSTANCE} (eu-west-1), gateway ${nginx.url}` });

    const back = await rollout(['rollback', '--reason', 'drill']);
    expect(back.code, back.stderr).toBe(0);
    const sides = await pool(200, 10, async (i) => (await embed(nginx.url, { 'x-tenant-id': `after-${i}` })).backend);
    expect(sides.every((s) => s === 'hosted')).toBe(true);
  });

  it('a split moved by someone else since it was read is left alone (exit 3 from the script)', async () => {
    expect((await rollout(['to', '10'])).code).toBe(0);
    const live = readFileSync(join(confPath, '..', 'split', 'current', 'health.json'), 'utf8');
    const sent = await standin.sendCommand({ InstanceIds: [INSTANCE], DocumentName: 'AWS-RunShellScript', Parameters: { commands: applySplitScript(50, 'g-25-stale') } });
    const inv = await standin.getInvocation({ CommandId: sent.Command!.CommandId!, InstanceId: INSTANCE });
    expect(inv).toMatchObject({ Status: 'Failed', ResponseCode: 3 });
    expect(inv.StandardErrorContent).toMatch(/the split changed since it was read \(g-10-[0-9a-z]+\); nothing applied/);
    expect(readFileSync(join(confPath, '..', 'split', 'current', 'health.json'), 'utf8')).toBe(live);
  });

  it('a gateway rendered by an older embedctl (split in nginx.conf): exit 1 saying to provision again; nothing changed', async () => {
    // The older template's shape: no split directory header, the split in split_clients.
    const legacy = renderNginxConf({ ...options, selfHostedPercent: 0 }).replace(/^# embedctl-split-dir: .*\n/m, '');
    writeFileSync(confPath, legacy);
    const r = await rollout(['to', '10']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/keeps its split in the file \(rendered by an older embedctl/);
    expect(r.stderr).toMatch(/hint: provision the instance again with this embedctl/);
    expect(readFileSync(confPath, 'utf8')).toBe(legacy);
    expect(existsSync(join(confPath, '..', 'split'))).toBe(false);
  });

  it('SendCommand denied: exit 1 naming the permission; nothing recorded', async () => {
    ssm.on(SendCommandCommand).rejects(Object.assign(new Error('User is not authorized to perform: ssm:SendCommand'), { name: 'AccessDeniedException', $metadata: { httpStatusCode: 400 } }));
    const r = await rollout(['to', '10']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^embedctl: error: .*ssm:SendCommand/m);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
