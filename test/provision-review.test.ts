import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { CreateSecurityGroupCommand, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { GetParameterCommand } from '@aws-sdk/client-ssm';
import { ListCostAllocationTagsCommand, UpdateCostAllocationTagsStatusCommand } from '@aws-sdk/client-cost-explorer';
import { internetExposure } from '../src/core/provision-plan.js';
import { runCli } from './helpers/cli.js';
import { asg, budgets, ce, cw, ec2, elb, fakeSleep, happyAccount, resetAws, ssm, tempProject } from './provision-fakes.js';

beforeEach(() => resetAws());
afterAll(() => resetAws());

const noCredentials = () =>
  ssm.on(GetParameterCommand).rejects(Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' }));
const allCalls = () => [ssm, ec2, cw, budgets, ce, asg, elb].reduce((n, m) => n + m.calls().length, 0);

describe('provision --dry-run without credentials: the whole plan, offline', () => {
  it('prints g4dn, the CIDR, the volume, AMI source, subnet choice, user data size, tags, alarms, and what it could not check; exit 0', async () => {
    noCredentials();
    const cwd = tempProject();
    const r = await runCli(['provision', '--dry-run', '--allow-cidr', '203.0.113.5/32', '--region', 'us-east-1'], { cwd });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: no AWS credentials found: printing the plan without checking it against the account/);
    const out = r.stdout;
    expect(out).toMatch(/instance +g4dn\.xlarge, on-demand/);
    expect(out).toMatch(/image +latest from SSM parameter \/aws\/service\/deeplearning\/ami\/x86_64\/base-oss-nvidia-driver-gpu-ubuntu-22\.04\/latest\/ami-id .*resolved at launch/);
    expect(out).toMatch(/network +the default VPC of us-east-1/);
    expect(out).toMatch(/root volume +125 GiB gp3, encrypted/);
    expect(out).toMatch(/security group +embedctl-main \(create or reuse\): tcp 8000 from 203\.0\.113\.5\/32/);
    expect(out).toMatch(/user data +\d+ bytes( gzipped)? of EC2's 16384/);
    expect(out).toMatch(/tags +embedctl:managed=true, embedctl:deployment=main/);
    expect(out).toMatch(/alarms +embedctl-main-cpu-high, .*embedctl-main-status-check, embedctl-main-disk-high, embedctl-main-traffic-drop/);
    expect(out).toMatch(/budget +embedctl-main-monthly: \$470\.00\/month/);
    // The demo model is flagged, not fatal, in a review.
    expect(out).toMatch(/MODEL +provision \(without --dry-run\) refuses this: "default" is a built-in demo model/);
    expect(out).toMatch(/Offline plan \(nothing was created or checked\)/);
    expect(out).toMatch(/Not checked:\n {2}- no AWS credentials found: nothing below was checked/);
    expect(out).toMatch(/IAM permissions \(EC2 DryRun of CreateSecurityGroup, RunInstances\)/);
    expect(out).toMatch(/whether the cost-allocation tag embedctl:managed is active/);
    expect(ec2.calls()).toHaveLength(0);
    expect(existsSync(join(cwd, '.embedctl', 'state.json'))).toBe(false);

    const j = await runCli(['provision', '--dry-run', '--allow-cidr', '203.0.113.5/32', '--region', 'us-east-1', '--json'], { cwd });
    expect(j.code).toBe(0);
    const doc = j.json<{ schema: string; offline: boolean; plan: { instanceType: string; volume: unknown; securityGroup: { ingress: unknown }; runInstances: { ImageId: string }; notChecked: string[] } }>();
    expect(doc).toMatchObject({ schema: 'embedctl.provision/v1', offline: true, plan: { instanceType: 'g4dn.xlarge', volume: { sizeGiB: 125, type: 'gp3', encrypted: true } } });
    expect(doc.plan.securityGroup.ingress).toEqual([{ port: 8000, from: '203.0.113.5/32' }]);
    // EC2 itself resolves this form of ImageId at launch: the offline request is still a real one.
    expect(doc.plan.runInstances.ImageId).toBe('resolve:ssm:/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id');
  });

  it('scale-out: --min 2 --max 6 --dry-run prints the ASG/ALB plan offline', async () => {
    noCredentials();
    const r = await runCli(['provision', '--dry-run', '--allow-cidr', '203.0.113.5/32', '--region', 'us-east-1', '--min', '2', '--max', '6', '--model', 'BAAI/bge-base-en-v1.5'], { cwd: tempProject() });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/instance +g4dn\.xlarge, on-demand, .*2 to 6 of them/);
    expect(r.stdout).toMatch(/launch template embedctl-main \(this user data, IMDSv2, encrypted gp3\)/);
    expect(r.stdout).toMatch(/auto scaling +group embedctl-main: min 2, max 6, ELB health checks/);
    expect(r.stdout).toMatch(/load balancer +embedctl-main \(internet-facing ALB\): HTTP 80 -> target group embedctl-main-tg \(port 8000, health check \/ready\)/);
    expect(r.stdout).toMatch(/scaling policy +target tracking on ALBRequestCountPerTarget, target 1000/);
    expect(r.stdout).toMatch(/security group .*tcp 80 from 203\.0\.113\.5\/32; tcp 8000 from the load balancer/);
    expect(r.stdout).toMatch(/budget +embedctl-main-monthly: \$2,?770\.00\/month/);
    expect(r.stdout).not.toMatch(/MODEL/);
    expect(r.stdout).toMatch(/Auto Scaling and Elastic Load Balancing permissions \(neither has a dry run\)/);
  });

  it('a real run without credentials still fails, exit 1, nothing created', async () => {
    noCredentials();
    const r = await runCli(['provision', '--allow-cidr', '203.0.113.5/32', '--region', 'us-east-1', '--model', 'BAAI/bge-base-en-v1.5', '--yes'], { cwd: tempProject() });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/AWS: no credentials found/);
  });
});

describe('provision refuses CIDR sets that add up to the internet, before any AWS call', () => {
  const refused: string[][] = [
    ['0.0.0.0/1', '128.0.0.0/1'],
    ['2000::/3'],
    ['10.0.0.0/7'],
    ['::/0'],
    // Two /8s: more than one /8 worth of addresses.
    ['11.0.0.0/8', '12.0.0.0/8'],
  ];
  for (const set of refused) {
    it(`${set.join(' + ')}: exit 2 without --allow-world, accepted with it`, async () => {
      const args = ['provision', '--region', 'us-east-1', ...set.flatMap((c) => ['--allow-cidr', c]), '--model', 'BAAI/bge-base-en-v1.5', '--yes'];
      const r = await runCli(args, { cwd: tempProject() });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/error: --allow-cidr: .*opens the endpoint to the whole internet/);
      expect(r.stderr).toMatch(/hint: .*--allow-world/);
      expect(allCalls()).toBe(0);
      happyAccount();
      const ok = await runCli([...args, '--allow-world'], { cwd: tempProject(), sleep: fakeSleep().sleep });
      expect(ok.code, ok.stderr).toBe(0);
      resetAws();
    });
  }

  it('the arithmetic: unions, overlaps and families', () => {
    expect(internetExposure(['0.0.0.0/1', '128.0.0.0/1'])).toMatch(/0\.0\.0\.0\/1, 128\.0\.0\.0\/1 are shorter than \/8/);
    expect(internetExposure(['10.0.0.0/8', '11.0.0.0/8'])).toMatch(/10\.0\.0\.0\/8 \+ 11\.0\.0\.0\/8 together cover 0\.78% of the IPv4 internet/);
    expect(internetExposure(['2000::/3'])).toMatch(/2000::\/3 is shorter than \/8/);
    expect(internetExposure(['10.0.0.0/8'])).toBeUndefined();
    // The same /8 twice, and a /16 inside it, is still one /8.
    expect(internetExposure(['10.0.0.0/8', '10.0.0.0/8', '10.1.0.0/16'])).toBeUndefined();
    expect(internetExposure(['203.0.113.5/32', '2001:db8::/32'])).toBeUndefined();
    expect(internetExposure(['10.0.0.0/8', '11.0.0.0/9'])).toMatch(/cover 0\.58% of the IPv4 internet \(more than one \/8\)/);
  });
});

describe('provision deploys a production model', () => {
  it('the built-in demo model is refused before any AWS call unless --allow-demo-model; a hub preset is accepted', async () => {
    const r = await runCli(['provision', '--region', 'us-east-1', '--allow-cidr', '203.0.113.5/32', '--yes'], { cwd: tempProject() });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/error: --model: "default" is a built-in demo model .* or pass --allow-demo-model/);
    expect(r.stderr).toMatch(/hint: e\.g\. --model BAAI\/bge-base-en-v1\.5/);
    expect(allCalls()).toBe(0);
    const unknownHub = await runCli(['provision', '--region', 'us-east-1', '--allow-cidr', '203.0.113.5/32', '--model', 'someone/some-model', '--allow-demo-model', '--yes'], { cwd: tempProject() });
    expect(unknownHub.code).toBe(2);
    expect(unknownHub.stderr).toMatch(/--model: someone\/some-model is not a hub preset/);

    happyAccount();
    const ok = await runCli(['provision', '--region', 'us-east-1', '--allow-cidr', '203.0.113.5/32', '--model', 'BAAI/bge-base-en-v1.5', '--yes'], { cwd: tempProject(), sleep: fakeSleep().sleep });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ec2.commandCalls(CreateSecurityGroupCommand)).toHaveLength(1);
    expect(ec2.commandCalls(RunInstancesCommand)).toHaveLength(1);
  });
});

describe('provision offers to activate the cost-allocation tags', () => {
  const inactive = () => ce.on(ListCostAllocationTagsCommand).resolves({ CostAllocationTags: [{ TagKey: 'embedctl:managed', Type: 'UserDefined', Status: 'Inactive' }] });
  const args = ['provision', '--region', 'us-east-1', '--allow-cidr', '203.0.113.5/32', '--model', 'BAAI/bge-base-en-v1.5', '--yes'];

  it('without a terminal: only with --activate-cost-tags; otherwise a warning saying how', async () => {
    happyAccount();
    inactive();
    const r = await runCli(args, { cwd: tempProject(), sleep: fakeSleep().sleep });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: the cost-allocation tags are not active, so cost-report --actual and the budget show \$0; activate it: `aws ce update-cost-allocation-tags-status/);
    expect(ce.commandCalls(UpdateCostAllocationTagsStatusCommand)).toHaveLength(0);

    const on = await runCli([...args, '--activate-cost-tags'], { cwd: tempProject(), sleep: fakeSleep().sleep });
    expect(on.code, on.stderr).toBe(0);
    expect(ce.commandCalls(UpdateCostAllocationTagsStatusCommand).map((c) => c.args[0].input)).toEqual([
      { CostAllocationTagsStatus: [{ TagKey: 'embedctl:managed', Status: 'Active' }, { TagKey: 'embedctl:deployment', Status: 'Active' }] },
    ]);
    expect(on.stderr).toMatch(/cost-allocation tags activated: embedctl:managed, embedctl:deployment/);
  });

  it('on a terminal: asks, and activates on yes', async () => {
    happyAccount();
    inactive();
    const asked: string[] = [];
    const r = await runCli(args, {
      cwd: tempProject(),
      sleep: fakeSleep().sleep,
      isTTY: true,
      adapters: { confirm: async (q: { message: string }) => (asked.push(q.message), true) },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(asked).toEqual([expect.stringMatching(/^Activate embedctl:managed and embedctl:deployment as cost-allocation tags/)]);
    expect(ce.commandCalls(UpdateCostAllocationTagsStatusCommand)).toHaveLength(1);
  });
});
