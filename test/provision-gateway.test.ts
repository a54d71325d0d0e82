import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { AuthorizeSecurityGroupIngressCommand, DescribeInstancesCommand, DescribeSecurityGroupsCommand, RunInstancesCommand, TerminateInstancesCommand } from '@aws-sdk/client-ec2';
import { DeleteParameterCommand, DescribeParametersCommand, GetCommandInvocationCommand, GetParameterCommand, PutParameterCommand, SendCommandCommand, SSMServiceException } from '@aws-sdk/client-ssm';
import { DescribeAlarmsCommand, GetDashboardCommand, PutDashboardCommand } from '@aws-sdk/client-cloudwatch';
import { parseGatewayKeys } from '../src/core/gateway-keys.js';
import { runCli } from './helpers/cli.js';
import { ec2, cw, fakeSleep, happyAccount, readState, resetAws, ssm, tempProject } from './provision-fakes.js';

/** Issue 18: provision's TLS/gateway flags and the gateway keys SSM SecureString (aws-sdk-client-mock, every parameter asserted). */

const CIDR = '203.0.113.7/32';
const base = ['provision', '--region', 'us-east-1', '--allow-cidr', CIDR, '--allow-demo-model', '--yes'];
const TLS = ['--tls', 'letsencrypt', '--domain', 'embed.example.com', '--email', 'ops@example.com'];
const PARAM = '/embedctl/main/gateway-keys';
const MARKER = 'embedctl gateway keys for deployment main';
const TAGS = [
  { Key: 'Name', Value: PARAM },
  { Key: 'embedctl:managed', Value: 'true' },
  { Key: 'embedctl:deployment', Value: 'main' },
];

const inputs = <T>(calls: Array<{ args: [{ input: T }] }>) => calls.map((c) => c.args[0].input);

beforeEach(() => resetAws());
afterAll(() => resetAws());

describe('provision: HTTPS at the gateway and the gateway keys parameter', () => {
  it("Let's Encrypt + no keys yet: creates the SecureString with fresh keys (saved 0600), before the instance; opens 443 to the CIDR and 80 for HTTP-01; teardown deletes it", async () => {
    happyAccount();
    const order: string[] = [];
    ssm.on(DescribeParametersCommand).resolves({ Parameters: [] });
    ssm.on(PutParameterCommand).callsFake(() => (order.push('put-parameter'), { Version: 1 }));
    const cwd = tempProject();
    ec2.on(RunInstancesCommand).callsFake(() => (order.push('run-instances'), { Instances: [{ InstanceId: 'i-0abc', State: { Name: 'pending' } }] }));
    const r = await runCli([...base, ...TLS], { cwd, sleep: fakeSleep().sleep });
    expect(r.code, r.stderr).toBe(0);
    expect(order).toEqual(['put-parameter', 'run-instances']);

    expect(inputs(ssm.commandCalls(DescribeParametersCommand))[0]).toEqual({ ParameterFilters: [{ Key: 'Name', Option: 'Equals', Values: [PARAM] }] });
    const [put] = inputs(ssm.commandCalls(PutParameterCommand));
    const saved = join(cwd, '.embedctl', 'gateway-keys', 'main');
    const text = readFileSync(saved, 'utf8');
    expect(put).toEqual({ Name: PARAM, Value: text, Type: 'SecureString', Description: MARKER, Tier: 'Standard', Overwrite: false, Tags: TAGS });
    expect(statSync(saved).mode & 0o777).toBe(0o600);
    expect(parseGatewayKeys(text).map((k) => k.role)).toEqual(['operator', 'client']);
    expect(r.stderr).toContain(`gateway keys: SSM parameter ${PARAM} created with a fresh operator and client key; the keys are in .embedctl/gateway-keys/main (0600)`);
    // The keys never reach the output or the state.
    for (const k of parseGatewayKeys(text)) {
      expect(r.stdout + r.stderr).not.toContain(k.key);
      expect(readFileSync(join(cwd, '.embedctl', 'state.json'), 'utf8')).not.toContain(k.key);
    }

    const [ingress] = inputs(ec2.commandCalls(AuthorizeSecurityGroupIngressCommand));
    const perms = Object.fromEntries(ingress!.IpPermissions!.map((p) => [p.FromPort, p]));
    expect(Object.keys(perms).sort()).toEqual(['443', '80', '8000']);
    expect(perms[443]!.IpRanges).toEqual([{ CidrIp: CIDR, Description: 'embedctl gateway (nginx, HTTPS)' }]);
    expect(perms[80]).toEqual({
      IpProtocol: 'tcp',
      FromPort: 80,
      ToPort: 80,
      // No apostrophe: EC2 refuses one in a rule description (test/provision-plan.test.ts).
      IpRanges: [{ CidrIp: '0.0.0.0/0', Description: 'ACME HTTP-01 for Lets Encrypt (certbot --standalone only)' }],
      Ipv6Ranges: [{ CidrIpv6: '::/0', Description: 'ACME HTTP-01 for Lets Encrypt (certbot --standalone only)' }],
    });
    const raw = Buffer.from(inputs(ec2.commandCalls(RunInstancesCommand))[0]!.UserData!, 'base64');
    const script = (raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw).toString('utf8');
    expect(script).toContain('certbot certonly --standalone --non-interactive --agree-tos --keep-until-expiring -m ops@example.com -d embed.example.com');
    expect(script).toContain(`GATEWAY_KEYS_PARAMETER=${PARAM}`);

    const dep = readState(cwd).deployments.main;
    expect(dep.gatewayKeys).toEqual({ parameter: PARAM, createdByUs: true });
    expect(dep.gateway).toBe('https://embed.example.com');

    // Teardown: the parameter goes with the rest.
    const tags = [{ Key: 'embedctl:managed', Value: 'true' }, { Key: 'embedctl:deployment', Value: 'main' }];
    ec2
      .on(DescribeInstancesCommand)
      .resolvesOnce({ Reservations: [{ Instances: [{ InstanceId: 'i-0abc', State: { Name: 'running' }, Tags: tags }] }] })
      .resolves({ Reservations: [{ Instances: [{ InstanceId: 'i-0abc', State: { Name: 'terminated' }, Tags: tags }] }] });
    ec2.on(DescribeSecurityGroupsCommand).resolves({ SecurityGroups: [{ GroupId: 'sg-0new', Tags: tags }] });
    cw.on(GetDashboardCommand).resolves({ DashboardBody: inputs(cw.commandCalls(PutDashboardCommand))[0]!.DashboardBody });
    ssm.on(DescribeParametersCommand).resolves({ Parameters: [{ Name: PARAM, Type: 'SecureString', Description: MARKER }] });
    ssm.on(DeleteParameterCommand).resolves({});
    cw.on(DescribeAlarmsCommand).resolves({ MetricAlarms: [] });
    ec2.on(TerminateInstancesCommand).resolves({});
    const t = await runCli(["teardown", "--yes"], { cwd, sleep: fakeSleep().sleep });
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toContain(`removed  parameter ${PARAM}`);
    expect(inputs(ssm.commandCalls(DeleteParameterCommand))).toEqual([{ Name: PARAM }]);
  });

  it('--gateway-keys FILE overwrites an existing parameter with that file (no tags with Overwrite); named callers and limits go along', async () => {
    happyAccount();
    ssm.on(DescribeParametersCommand).resolves({ Parameters: [{ Name: '/team/keys', Type: 'SecureString', Description: 'made by hand' }] });
    ssm.on(PutParameterCommand).resolves({ Version: 2 });
    const cwd = tempProject();
    const file = join(cwd, 'keys.txt');
    const text = 'operator ek_operator_0123456789abcdef\nclient ek_team_a_0123456789abcdef name=team-a rpm=600\n';
    writeFileSync(file, text, { mode: 0o600 });
    const r = await runCli([...base, '--gateway-keys', 'keys.txt', '--gateway-keys-parameter', '/team/keys'], { cwd, sleep: fakeSleep().sleep });
    expect(r.code, r.stderr).toBe(0);
    expect(inputs(ssm.commandCalls(PutParameterCommand))).toEqual([{ Name: '/team/keys', Value: text, Type: 'SecureString', Description: MARKER, Tier: 'Standard', Overwrite: true }]);
    // It existed before: not ours to delete at teardown.
    expect(readState(cwd).deployments.main.gatewayKeys).toEqual({ parameter: '/team/keys', createdByUs: false });
    expect(r.stdout + r.stderr).not.toContain('ek_team_a_0123456789abcdef');
  });

  it('a rotation on a running instance is applied there over SSM (gateway-keys.sh --reload); an instance without the script fails naming the fix', async () => {
    happyAccount();
    ssm.on(DescribeParametersCommand).resolves({ Parameters: [] });
    ssm.on(PutParameterCommand).resolves({ Version: 1 });
    const cwd = tempProject();
    const first = await runCli(base, { cwd, sleep: fakeSleep().sleep });
    expect(first.code, first.stderr).toBe(0);
    // A first provision launches the instance with the keys: nothing to apply over SSM.
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(0);
    const id = readState(cwd).deployments.main.instance!.id;
    ssm.on(DescribeParametersCommand).resolves({ Parameters: [{ Name: PARAM, Type: 'SecureString', Description: MARKER }] });
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-1' } });
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'Success', StandardOutputContent: 'gateway keys: 2 keys (1 operator), 0 named callers, 0 with a request limit\nembedctl gateway-keys: the gateway reloaded with the keys of /embedctl/gateway-keys\n' });
    writeFileSync(join(cwd, 'keys.txt'), 'operator ek_operator_rotated_0123456789\nclient ek_client_rotated_0123456789\n', { mode: 0o600 });
    const again = await runCli([...base, '--gateway-keys', 'keys.txt'], { cwd, sleep: fakeSleep().sleep });
    expect(again.code, again.stderr).toBe(0);
    const [sent] = inputs(ssm.commandCalls(SendCommandCommand));
    expect(sent).toMatchObject({ InstanceIds: [id], DocumentName: 'AWS-RunShellScript', Parameters: { commands: [expect.stringContaining('test -x /opt/embedctl/deploy/gateway-keys.sh'), '/opt/embedctl/deploy/gateway-keys.sh --reload'] } });
    // The upload comes first: the instance reads the parameter.
    expect(ssm.commandCalls(PutParameterCommand).length).toBeGreaterThan(0);
    expect(again.stderr).toContain(`gateway keys: applied on ${id} over SSM: embedctl gateway-keys: the gateway reloaded with the keys of /embedctl/gateway-keys`);
    expect(again.stdout + again.stderr).not.toContain('ek_client_rotated');

    // An instance from an older embedctl has no script: exit 3 there, and the error says what to do.
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'Failed', ResponseCode: 3, StandardErrorContent: '/opt/embedctl/deploy/gateway-keys.sh is missing: provisioned by an older embedctl\n' });
    const old = await runCli([...base, '--gateway-keys', 'keys.txt'], { cwd, sleep: fakeSleep().sleep });
    expect(old.code).not.toBe(0);
    expect(old.stderr).toMatch(/gateway-keys\.sh is missing: provisioned by an older embedctl/);
    expect(old.stderr).toMatch(/replace it \(embedctl teardown, then provision\) to rotate its keys/);
    expect(old.stderr).not.toMatch(/\n\s+at /);
  });

  it('each deployment gets its own parameter by default; one whose state records the old shared one keeps it; the flag wins', async () => {
    happyAccount();
    ssm.on(DescribeParametersCommand).resolves({ Parameters: [] });
    ssm.on(PutParameterCommand).resolves({ Version: 1 });
    const userDataParameter = () => {
      const raw = Buffer.from(inputs(ec2.commandCalls(RunInstancesCommand)).at(-1)!.UserData!, 'base64');
      return /^GATEWAY_KEYS_PARAMETER=(.*)$/m.exec((raw[0] === 0x1f ? gunzipSync(raw) : raw).toString('utf8'))![1];
    };
    const cwd = tempProject();
    const blue = await runCli([...base, '--name', 'blue'], { cwd, sleep: fakeSleep().sleep });
    expect(blue.code, blue.stderr).toBe(0);
    expect(inputs(ssm.commandCalls(PutParameterCommand)).map((p) => p.Name)).toEqual(['/embedctl/blue/gateway-keys']);
    expect(userDataParameter()).toBe('/embedctl/blue/gateway-keys');
    expect(readState(cwd).deployments.blue.gatewayKeys).toEqual({ parameter: '/embedctl/blue/gateway-keys', createdByUs: true });

    // A deployment provisioned when every --name defaulted to /embedctl/gateway-keys: its
    // instance reads that one, so provision keeps using it.
    const state = JSON.parse(readFileSync(join(cwd, '.embedctl', 'state.json'), 'utf8'));
    state.deployments.legacy = { ...state.deployments.blue, name: 'legacy', instance: undefined, gatewayKeys: { parameter: '/embedctl/gateway-keys', createdByUs: true } };
    writeFileSync(join(cwd, '.embedctl', 'state.json'), JSON.stringify(state));
    ssm.on(DescribeParametersCommand).resolves({ Parameters: [{ Name: '/embedctl/gateway-keys', Type: 'SecureString', Description: 'embedctl gateway keys for deployment legacy' }] });
    const legacy = await runCli([...base, '--name', 'legacy'], { cwd, sleep: fakeSleep().sleep });
    expect(legacy.code, legacy.stderr).toBe(0);
    expect(inputs(ssm.commandCalls(DescribeParametersCommand)).at(-1)).toEqual({ ParameterFilters: [{ Key: 'Name', Option: 'Equals', Values: ['/embedctl/gateway-keys'] }] });
    expect(userDataParameter()).toBe('/embedctl/gateway-keys');
    expect(readState(cwd).deployments.legacy.gatewayKeys).toEqual({ parameter: '/embedctl/gateway-keys', createdByUs: true });

    // The plans (offline): a new name gets its own; --gateway-keys-parameter wins over the record.
    ssm.on(GetParameterCommand).rejects(Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' }));
    const plan = async (...extra: string[]) => (await runCli(['provision', '--region', 'us-east-1', '--allow-cidr', CIDR, '--allow-demo-model', '--dry-run', ...extra], { cwd })).stdout;
    expect(await plan('--name', 'green')).toContain('gateway keys    SSM SecureString /embedctl/green/gateway-keys:');
    expect(await plan('--name', 'legacy')).toContain('gateway keys    SSM SecureString /embedctl/gateway-keys:');
    expect(await plan('--name', 'legacy', '--gateway-keys-parameter', '/team/keys')).toContain('gateway keys    SSM SecureString /team/keys:');
  });

  it('a rotation on an instance SSM does not manage (InvalidInstanceId) names AmazonSSMManagedInstanceCore, as the guidance does', async () => {
    happyAccount();
    ssm.on(DescribeParametersCommand).resolves({ Parameters: [] });
    ssm.on(PutParameterCommand).resolves({ Version: 1 });
    const cwd = tempProject();
    const first = await runCli(base, { cwd, sleep: fakeSleep().sleep });
    expect(first.code, first.stderr).toBe(0);
    // Without a profile: the warning says what the role needs, Run Command included.
    expect(first.stderr).toMatch(/warning: no --iam-instance-profile: .*SSM Run Command .*AmazonSSMManagedInstanceCore .*CloudWatchAgentServerPolicy/);
    expect((await runCli(['provision', '--help'], { cwd })).stdout).toMatch(/--iam-instance-profile <name-or-arn> +instance profile; its role needs\s+AmazonSSMManagedInstanceCore/);

    ssm.on(DescribeParametersCommand).resolves({ Parameters: [{ Name: PARAM, Type: 'SecureString', Description: MARKER }] });
    // What SSM answers for an instance whose agent never registered (a role without the policy).
    ssm.on(SendCommandCommand).rejects(new SSMServiceException({ name: 'InvalidInstanceId', $fault: 'client', $metadata: { httpStatusCode: 400 }, message: '' }));
    writeFileSync(join(cwd, 'keys.txt'), 'operator ek_operator_rotated_0123456789\nclient ek_client_rotated_0123456789\n', { mode: 0o600 });
    const r = await runCli([...base, '--gateway-keys', 'keys.txt', '--iam-instance-profile', 'embedctl-instance'], { cwd, sleep: fakeSleep().sleep });
    expect(r.code).toBe(1);
    const id = readState(cwd).deployments.main.instance!.id;
    const [error, hint] = r.stderr.trim().split('\n').slice(-2);
    expect(error).toBe(`embedctl: error: AWS SSM (us-east-1): ssm:SendCommand: ${id} is not a managed instance (InvalidInstanceId), so it still enforces the previous gateway keys`);
    expect(hint).toMatch(/^  hint: attach AmazonSSMManagedInstanceCore to the role of its instance profile \(--iam-instance-profile\), wait until `aws ssm describe-instance-information --region us-east-1` lists/);
    expect(ssm.commandCalls(GetCommandInvocationCommand)).toHaveLength(0);
  });

  it('--no-wait with HTTPS records the gateway (its DNS name) at launch, for status to probe', async () => {
    happyAccount();
    ssm.on(DescribeParametersCommand).resolves({ Parameters: [] });
    ssm.on(PutParameterCommand).resolves({ Version: 1 });
    const cwd = tempProject();
    const r = await runCli([...base, ...TLS, '--no-wait', '--https-port', '8443'], { cwd, sleep: fakeSleep().sleep });
    expect(r.code, r.stderr).toBe(0);
    expect(ec2.commandCalls(DescribeInstancesCommand)).toHaveLength(0);
    expect(readState(cwd).deployments.main.gateway).toBe('https://embed.example.com:8443');
  });

  it('an existing parameter and no file: kept as it is (no PutParameter), and teardown leaves it', async () => {
    happyAccount();
    ssm.on(DescribeParametersCommand).resolves({ Parameters: [{ Name: PARAM, Type: 'SecureString', Description: 'shared by two deployments' }] });
    const cwd = tempProject();
    const r = await runCli(base, { cwd, sleep: fakeSleep().sleep });
    expect(r.code, r.stderr).toBe(0);
    expect(ssm.commandCalls(PutParameterCommand)).toHaveLength(0);
    expect(r.stderr).toContain(`gateway keys: SSM parameter ${PARAM} exists, kept as it is`);
    expect(readState(cwd).deployments.main.gatewayKeys).toEqual({ parameter: PARAM, createdByUs: false });
    cw.on(DescribeAlarmsCommand).resolves({ MetricAlarms: [] });
    await runCli(['teardown', '--yes'], { cwd, sleep: fakeSleep().sleep });
    expect(ssm.commandCalls(DeleteParameterCommand)).toHaveLength(0);
  });

  it('the dry run shows the parameter and HTTPS plan offline; bad input is one line naming the flag, before any AWS call', async () => {
    const cwd = tempProject();
    ssm.on(GetParameterCommand).rejects(Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' }));
    const dry = await runCli(['provision', '--region', 'us-east-1', '--allow-cidr', CIDR, '--allow-demo-model', '--dry-run', ...TLS], { cwd });
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`gateway keys    SSM SecureString ${PARAM}: keep if it exists, else create with a fresh operator and client key`);
    expect(dry.stdout).toContain("https           embed.example.com:443 (Let's Encrypt via certbot on the instance");
    expect(dry.stdout).toMatch(/tcp 80 from 0\.0\.0\.0\/0/);
    resetAws();
    const bad: Array<[string[], RegExp]> = [
      [['--gateway-keys', 'missing.txt'], /--gateway-keys: cannot read missing\.txt/],
      [['--tls', 'letsencrypt', '--domain', 'embed.example.com'], /--email/],
      [[...TLS, '--min', '2', '--max', '4'], /--tls: with --min\/--max the load balancer terminates HTTPS/],
    ];
    writeFileSync(join(cwd, 'bad.txt'), 'client short\n');
    bad.push([['--gateway-keys', 'bad.txt'], /--gateway-keys: bad\.txt line 1: a key is 16-256 characters/]);
    for (const [args, re] of bad) {
      const r = await runCli([...base, ...args], { cwd });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n')[0]).toMatch(re);
    }
    expect(ssm.calls()).toHaveLength(0);
    expect(ec2.calls()).toHaveLength(0);
  });
});
