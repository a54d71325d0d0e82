import { mkdirSync, writeFileSync } from 'node:fs';
import { DEFAULT_DWELL_MS, DEFAULT_STEPS, initialState } from '../src/core/rollout/plan.js';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import {
  DeleteSecurityGroupCommand,
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { DeleteAlarmsCommand, DescribeAlarmsCommand, ListTagsForResourceCommand } from '@aws-sdk/client-cloudwatch';
import { DeleteParameterCommand, DescribeParametersCommand } from '@aws-sdk/client-ssm';
import { runCli } from './helpers/cli.js';
import { awsError, cw, ec2, fakeSleep, readHistory, readState, resetAws, ssm, tempProject } from './provision-fakes.js';

const ALARMS = ['embedctl-main-cpu-high', 'embedctl-main-gpu-high'];
const TAGS = [
  { Key: 'Name', Value: 'embedctl-main' },
  { Key: 'embedctl:managed', Value: 'true' },
  { Key: 'embedctl:deployment', Value: 'main' },
];

function writeState(dir: string) {
  mkdirSync(join(dir, '.embedctl'), { recursive: true });
  writeFileSync(
    join(dir, '.embedctl', 'state.json'),
    JSON.stringify({
      version: 1,
      attempts: { main: 3 },
      deployments: {
        main: {
          name: 'main',
          region: 'eu-west-1',
          createdAt: '2026-01-01T00:00:00.000Z',
          updatedAt: '2026-01-01T00:00:00.000Z',
          attempt: 3,
          clientToken: 'embedctl-main-3',
          instance: { id: 'i-0abc', instanceType: 'g4dn.xlarge', market: 'on-demand', state: 'running' },
          securityGroup: { id: 'sg-0abc', vpcId: 'vpc-1', name: 'embedctl-main', createdByUs: true },
          alarms: ALARMS,
          endpoints: ['http://ec2-x:8080'],
        },
      },
    }),
  );
}

/** An account where everything the state lists exists and carries embedctl's tags. */
function taggedAccount(instanceTags = TAGS) {
  ec2
    .on(DescribeInstancesCommand)
    .resolvesOnce({ Reservations: [{ Instances: [{ InstanceId: 'i-0abc', State: { Name: 'running' }, Tags: instanceTags }] }] })
    .resolvesOnce({ Reservations: [{ Instances: [{ InstanceId: 'i-0abc', State: { Name: 'shutting-down' }, Tags: instanceTags }] }] })
    .resolves({ Reservations: [{ Instances: [{ InstanceId: 'i-0abc', State: { Name: 'terminated' }, Tags: instanceTags }] }] });
  ec2.on(DescribeSecurityGroupsCommand).resolves({ SecurityGroups: [{ GroupId: 'sg-0abc', Tags: TAGS }] });
  ec2.on(TerminateInstancesCommand).resolves({});
  ec2.on(DeleteSecurityGroupCommand).resolves({});
  cw.on(DescribeAlarmsCommand).resolves({ MetricAlarms: ALARMS.map((n) => ({ AlarmName: n, AlarmArn: `arn:aws:cloudwatch:eu-west-1:1:alarm:${n}` })) });
  cw.on(ListTagsForResourceCommand).resolves({ Tags: TAGS });
  cw.on(DeleteAlarmsCommand).resolves({});
}

beforeEach(() => resetAws());
afterAll(() => resetAws());

describe('teardown', () => {
  it('removes alarms, then the instance (waiting for terminated), then the group; forgets the deployment', async () => {
    taggedAccount();
    const cwd = tempProject();
    writeState(cwd);
    const s = fakeSleep();
    const r = await runCli(['teardown', '--yes'], { cwd, sleep: s.sleep });
    expect(r.stderr).not.toMatch(/error:/);
    expect(r.code).toBe(0);
    expect(cw.commandCalls(DeleteAlarmsCommand)[0]!.args[0].input).toEqual({ AlarmNames: ALARMS });
    expect(ec2.commandCalls(TerminateInstancesCommand)[0]!.args[0].input).toEqual({ InstanceIds: ['i-0abc'] });
    expect(ec2.commandCalls(DeleteSecurityGroupCommand)[0]!.args[0].input).toEqual({ GroupId: 'sg-0abc' });
    // The group is deleted only after the instance reported terminated.
    const order = ec2.calls().map((c) => (c.args[0] as { constructor: { name: string } }).constructor.name);
    expect(order.lastIndexOf('DescribeInstancesCommand')).toBeLessThan(order.indexOf('DeleteSecurityGroupCommand'));
    expect(s.calls.length).toBeGreaterThanOrEqual(1);
    expect(r.stderr).toMatch(/instance i-0abc: terminated/);

    const st = readState(cwd);
    expect(st.deployments).toEqual({});
    expect(st.attempts.main).toBe(3);
    expect(readHistory(cwd).map((h) => h.action)).toEqual(['delete-alarms', 'terminate-instance', 'delete-security-group', 'forget-deployment']);
    expect(r.stdout).toMatch(/Teardown of "main" in eu-west-1: 4 removed, 0 already gone, 0 skipped/);

    const again = await runCli(['teardown', '--yes'], { cwd });
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/Nothing to tear down/);
  });

  it('never touches an instance whose tags lack embedctl:managed; keeps it (and its group) in the state', async () => {
    taggedAccount([{ Key: 'Name', Value: 'someone-elses' }]);
    const cwd = tempProject();
    writeState(cwd);
    const r = await runCli(['teardown', '--yes', '--json'], { cwd, sleep: fakeSleep().sleep });
    expect(r.code).toBe(1);
    expect(ec2.commandCalls(TerminateInstancesCommand)).toHaveLength(0);
    expect(ec2.commandCalls(DeleteSecurityGroupCommand)).toHaveLength(0);
    expect(r.stderr).toMatch(/warning: instance i-0abc skipped, not terminated: its tags do not say embedctl:managed=true/);
    const doc = r.json<{ schema: string; deployments: Array<{ skipped: Array<{ resource: string }> }> }>();
    expect(doc.schema).toBe('embedctl.teardown/v1');
    expect(doc.deployments[0]!.skipped.map((s) => s.resource)).toEqual(['instance i-0abc', 'security group sg-0abc']);
    const st = readState(cwd);
    expect(st.deployments.main.instance.id).toBe('i-0abc');
    expect(st.deployments.main.securityGroup.id).toBe('sg-0abc');
    expect(st.deployments.main.alarms).toEqual([]);
  });

  it('an alarm without our tags is left alone', async () => {
    taggedAccount();
    cw.on(ListTagsForResourceCommand, { ResourceARN: `arn:aws:cloudwatch:eu-west-1:1:alarm:${ALARMS[1]}` }).resolves({ Tags: [] });
    const cwd = tempProject();
    writeState(cwd);
    const r = await runCli(['teardown', '--yes'], { cwd, sleep: fakeSleep().sleep });
    expect(r.code).toBe(1);
    expect(cw.commandCalls(DeleteAlarmsCommand)[0]!.args[0].input).toEqual({ AlarmNames: [ALARMS[0]] });
    expect(readState(cwd).deployments.main.alarms).toEqual([ALARMS[1]]);
  });

  it('is idempotent: resources already gone are fine and are forgotten', async () => {
    ec2.on(DescribeInstancesCommand).rejects(awsError('InvalidInstanceID.NotFound', "The instance ID 'i-0abc' does not exist"));
    ec2.on(DescribeSecurityGroupsCommand).rejects(awsError('InvalidGroup.NotFound', "The security group 'sg-0abc' does not exist"));
    cw.on(DescribeAlarmsCommand).resolves({ MetricAlarms: [] });
    const cwd = tempProject();
    writeState(cwd);
    const r = await runCli(['teardown', '--yes'], { cwd });
    expect(r.code).toBe(0);
    expect(ec2.commandCalls(TerminateInstancesCommand)).toHaveLength(0);
    expect(ec2.commandCalls(DeleteSecurityGroupCommand)).toHaveLength(0);
    expect(cw.commandCalls(DeleteAlarmsCommand)).toHaveLength(0);
    expect(r.stdout).toMatch(/0 removed, 4 already gone, 0 skipped/);
    expect(readState(cwd).deployments).toEqual({});
  });

  it('a failure mid-way keeps every not-yet-removed resource in the state', async () => {
    taggedAccount();
    ec2.on(TerminateInstancesCommand).rejects(awsError('UnauthorizedOperation', 'You are not authorized', 403));
    const cwd = tempProject();
    writeState(cwd);
    const r = await runCli(['teardown', '--yes'], { cwd });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/not allowed to call ec2:TerminateInstances/);
    const st = readState(cwd);
    expect(st.deployments.main.alarms).toEqual([]);
    expect(st.deployments.main.instance.id).toBe('i-0abc');
    expect(st.deployments.main.securityGroup.id).toBe('sg-0abc');
  });

  it('retries DependencyViolation while the terminated instance lets go of the group', async () => {
    taggedAccount();
    ec2
      .on(DeleteSecurityGroupCommand)
      .rejectsOnce(awsError('DependencyViolation', 'resource sg-0abc has a dependent object'))
      .resolves({});
    const cwd = tempProject();
    writeState(cwd);
    const r = await runCli(['teardown', '--yes'], { cwd, sleep: fakeSleep().sleep });
    expect(r.code).toBe(0);
    expect(ec2.commandCalls(DeleteSecurityGroupCommand)).toHaveLength(2);
    expect(r.stderr).toMatch(/still in use, retrying/);
  });

  it('--dry-run asks EC2 with DryRun and changes nothing', async () => {
    taggedAccount();
    ec2.on(TerminateInstancesCommand).rejects(awsError('DryRunOperation', 'would succeed', 412));
    ec2.on(DeleteSecurityGroupCommand).rejects(awsError('DryRunOperation', 'would succeed', 412));
    const cwd = tempProject();
    writeState(cwd);
    const r = await runCli(['teardown', '--dry-run'], { cwd });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/instance i-0abc \(running\): will be removed/);
    expect(r.stdout).toMatch(/ok +ec2:TerminateInstances/);
    expect(r.stdout).toMatch(/ok +ec2:DeleteSecurityGroup/);
    // The settings view of --dry-run: each option with its value and source.
    expect(r.stdout).toMatch(/setting +value +from\n[- ]+\nname +- +default\ndryRun +true +--dry-run/);
    for (const c of [...ec2.commandCalls(TerminateInstancesCommand), ...ec2.commandCalls(DeleteSecurityGroupCommand)]) {
      expect(c.args[0].input.DryRun).toBe(true);
    }
    expect(cw.commandCalls(DeleteAlarmsCommand)).toHaveLength(0);
    expect(readState(cwd).deployments.main.instance.id).toBe('i-0abc');
  });

  it('without --yes and without a terminal: exit 2 naming --yes, nothing removed', async () => {
    taggedAccount();
    const cwd = tempProject();
    writeState(cwd);
    const r = await runCli(['teardown'], { cwd });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--yes: confirmation needed/);
    expect(ec2.commandCalls(TerminateInstancesCommand)).toHaveLength(0);
    expect(cw.commandCalls(DeleteAlarmsCommand)).toHaveLength(0);
  });

  it('on a terminal it asks, and "n" removes nothing', async () => {
    taggedAccount();
    const cwd = tempProject();
    writeState(cwd);
    const stdin = new PassThrough();
    setTimeout(() => stdin.write('n\n'), 50);
    const r = await runCli(['teardown'], { cwd, isTTY: true, stdin });
    expect(r.stderr).toMatch(/Remove these resources\?/);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Remove these resources\?.* n/);
    expect(ec2.commandCalls(TerminateInstancesCommand)).toHaveLength(0);
  });

  it('refuses while the rollout still sends traffic to self-hosted, unless --force', async () => {
    taggedAccount();
    const cwd = tempProject();
    writeState(cwd);
    // A rollout state as rollout writes it (src/contracts/rollout.ts), at 25%.
    writeFileSync(join(cwd, '.embedctl', 'rollout.json'), JSON.stringify({ ...initialState(DEFAULT_STEPS, DEFAULT_DWELL_MS, 'env'), percent: 25, stepIndex: 0 }));
    const r = await runCli(['teardown', '--yes'], { cwd });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--force: .*rollout\.json still sends 25% of traffic to self-hosted/);
    expect(r.stderr).toMatch(/hint: roll back first/);
    expect(ec2.commandCalls(TerminateInstancesCommand)).toHaveLength(0);
    const forced = await runCli(['teardown', '--yes', '--force'], { cwd, sleep: fakeSleep().sleep });
    expect(forced.code).toBe(0);
    expect(ec2.commandCalls(TerminateInstancesCommand)).toHaveLength(1);
  });

  it('an unknown --name is a usage error listing the known ones', async () => {
    const cwd = tempProject();
    writeState(cwd);
    const r = await runCli(['teardown', '--name', 'blue', '--yes'], { cwd });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--name: no deployment "blue"/);
    expect(r.stderr).toMatch(/known: main/);
  });

  it('keeps a gateway keys parameter another deployment still reads (the old shared default), and says so; deletes it when both go', async () => {
    const SHARED = '/embedctl/gateway-keys';
    const dep = (name: string, createdByUs: boolean) => ({
      name, region: 'eu-west-1', createdAt: 'x', updatedAt: 'x', attempt: 1, alarms: [], endpoints: [],
      gatewayKeys: { parameter: SHARED, createdByUs },
    });
    const cwd = tempProject();
    mkdirSync(join(cwd, '.embedctl'), { recursive: true });
    // blue created it; green, provisioned later with the same default, found it and uses it too.
    writeFileSync(join(cwd, '.embedctl', 'state.json'), JSON.stringify({ version: 1, attempts: {}, deployments: { blue: dep('blue', true), green: dep('green', false) } }));
    ssm.on(DescribeParametersCommand).resolves({ Parameters: [{ Name: SHARED, Type: 'SecureString', Description: 'embedctl gateway keys for deployment blue' }] });
    ssm.on(DeleteParameterCommand).resolves({});

    const dry = await runCli(['teardown', '--name', 'blue', '--dry-run'], { cwd });
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`parameter ${SHARED} (deployment "green" still uses it): will be kept`);

    const r = await runCli(['teardown', '--name', 'blue', '--yes'], { cwd });
    expect(r.code, r.stderr).toBe(0);
    expect(ssm.commandCalls(DeleteParameterCommand)).toHaveLength(0);
    expect(r.stdout).toContain('Teardown of "blue" in eu-west-1: 0 removed, 0 already gone, 0 skipped, 1 kept');
    expect(r.stdout).toContain(`  kept     parameter ${SHARED}: deployment "green" still uses it`);
    // green found it rather than made it: its teardown leaves it, so the way to remove it is said now.
    expect(r.stderr).toContain(`once no deployment uses ${SHARED}: aws ssm delete-parameter --name ${SHARED} --region eu-west-1`);
    expect(Object.keys(readState(cwd).deployments)).toEqual(['green']);
    expect(readHistory(cwd).map((h) => h.action)).toEqual(['keep-gateway-keys', 'forget-deployment']);

    // Both at once: nothing stays that reads it, so the one that created it deletes it.
    writeFileSync(join(cwd, '.embedctl', 'state.json'), JSON.stringify({ version: 1, attempts: {}, deployments: { blue: dep('blue', true), green: dep('green', false) } }));
    const both = await runCli(['teardown', '--yes', '--json'], { cwd });
    expect(both.code, both.stderr).toBe(0);
    expect(ssm.commandCalls(DeleteParameterCommand).map((c) => c.args[0].input)).toEqual([{ Name: SHARED }]);
    expect(readState(cwd).deployments).toEqual({});
  });
});
