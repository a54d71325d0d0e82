import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import { DescribeParametersCommand, PutParameterCommand } from '@aws-sdk/client-ssm';
import { runCli } from './helpers/cli.js';
import { ec2, fakeSleep, happyAccount, readHistory, readState, resetAws, ssm, tempProject } from './provision-fakes.js';

/**
 * A single instance's gateway as `status` finds it: from the address EC2 reports now (none is
 * recorded after `provision --no-wait`, and a stop and start changes it) and the recorded scheme
 * and port. A running deployment whose gateway does not answer is not healthy.
 */

const closers: Array<() => Promise<void>> = [];
beforeEach(() => resetAws());
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

/** The instance's nginx as status sees it: /health with the live split. */
async function gateway() {
  const server = createServer((req, res) => {
    if (req.url === '/health') return res.writeHead(200).end('{"status":"ok","component":"nginx","config":"abc","selfHostedPercent":10}\n');
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

/** A port nothing listens on (the gateway of an instance whose user data failed). */
async function deadPort() {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

const running = (address: { ip?: string; dns?: string } = {}) => ({
  Reservations: [{ Instances: [{ InstanceId: 'i-0abc', State: { Name: 'running' as const }, PublicDnsName: address.dns ?? '', ...(address.ip ? { PublicIpAddress: address.ip } : {}) }] }],
});

function writeState(cwd: string, dep: Record<string, unknown>) {
  mkdirSync(join(cwd, '.embedctl'), { recursive: true });
  const main = { name: 'main', region: 'us-east-1', createdAt: 'x', updatedAt: 'x', attempt: 1, alarms: [], endpoints: [], instance: { id: 'i-0abc', instanceType: 'g4dn.xlarge', market: 'on-demand' }, ...dep };
  writeFileSync(join(cwd, '.embedctl', 'state.json'), JSON.stringify({ version: 1, attempts: { main: 1 }, deployments: { main } }));
}

describe('status: a single instance gateway, from the live instance', () => {
  it('after provision --no-wait (nothing recorded): probes the live address on the gateway port, exits 0 and records it', async () => {
    happyAccount();
    ssm.on(DescribeParametersCommand).resolves({ Parameters: [] });
    ssm.on(PutParameterCommand).resolves({ Version: 1 });
    const port = await gateway();
    // The gateway port as the project configures it, for provision and status alike.
    const env = { EMBEDCTL_GATEWAY_PORT: String(port) };
    const cwd = tempProject();
    const p = await runCli(['provision', '--region', 'us-east-1', '--allow-cidr', '203.0.113.7/32', '--allow-demo-model', '--yes', '--no-wait'], { cwd, env, sleep: fakeSleep().sleep });
    expect(p.code, p.stderr).toBe(0);
    expect(readState(cwd).deployments.main.gateway).toBeUndefined();

    ec2.on(DescribeInstancesCommand).resolves(running({ ip: '127.0.0.1' }));
    const r = await runCli(['status', '--json'], { cwd, env });
    expect(r.code, r.stdout).toBe(0);
    const url = `http://127.0.0.1:${port}`;
    expect(r.json<any>().gateways).toMatchObject([{ url, source: 'deployment main', health: { ok: true, status: 200 }, selfHostedPercent: 10 }]);
    // Recorded for rollout and the --deployment evidence commands, with who did it.
    const dep = readState(cwd).deployments.main;
    expect(dep.gateway).toBe(url);
    expect(dep.instance).toMatchObject({ id: 'i-0abc', publicIp: '127.0.0.1' });
    expect(readHistory(cwd).at(-1)).toMatchObject({ command: 'status', deployment: 'main', action: 'gateway', detail: { gateway: url, from: null } });
  });

  it('a gateway that does not answer (user data failed) is not healthy: exit 1, a hint, nothing recorded', async () => {
    const port = await deadPort();
    const cwd = tempProject();
    writeState(cwd, {});
    ec2.on(DescribeInstancesCommand).resolves(running({ ip: '127.0.0.1' }));
    const r = await runCli(['status', '--json', '--timeout', '2s'], { cwd, env: { EMBEDCTL_GATEWAY_PORT: String(port) } });
    expect(r.code).toBe(1);
    const [g] = r.json<any>().gateways;
    expect(g).toMatchObject({ url: `http://127.0.0.1:${port}`, health: { ok: false, error: 'ECONNREFUSED' } });
    expect(g.hint).toMatch(/user data may still be working .* or have failed; see \/var\/log\/embedctl-user-data\.log on i-0abc/);
    const h = await runCli(['status', '--timeout', '2s'], { cwd, env: { EMBEDCTL_GATEWAY_PORT: String(port) } });
    expect(h.code).toBe(1);
    expect(h.stdout).toMatch(/gateway http:\/\/127\.0\.0\.1:\d+ \(deployment main\): ECONNREFUSED\n  hint: the instance runs but its gateway does not answer/);
    expect(readState(cwd).deployments.main.gateway).toBeUndefined();
  });

  it('after a stop and start: the recorded port on the new address, and the new address recorded', async () => {
    const port = await gateway();
    const cwd = tempProject();
    // The address it had before the stop (TEST-NET-3: nothing answers there).
    writeState(cwd, { gateway: `http://203.0.113.10:${port}`, instance: { id: 'i-0abc', instanceType: 'g4dn.xlarge', market: 'on-demand', publicIp: '203.0.113.10' } });
    ec2.on(DescribeInstancesCommand).resolves(running({ ip: '127.0.0.1' }));
    const r = await runCli(['status', '--json', '--timeout', '2s'], { cwd });
    expect(r.code, r.stdout).toBe(0);
    expect(r.json<any>().gateways).toMatchObject([{ url: `http://127.0.0.1:${port}`, health: { ok: true } }]);
    const dep = readState(cwd).deployments.main;
    expect(dep.gateway).toBe(`http://127.0.0.1:${port}`);
    expect(dep.instance.publicIp).toBe('127.0.0.1');
    expect(readHistory(cwd).at(-1)).toMatchObject({ action: 'gateway', detail: { from: `http://203.0.113.10:${port}` } });
  });

  it('a running instance without a public address cannot be probed: exit 1 naming why; a stopped one is not probed', async () => {
    const cwd = tempProject();
    writeState(cwd, {});
    ec2.on(DescribeInstancesCommand).resolves(running());
    const r = await runCli(['status', '--json'], { cwd });
    expect(r.code).toBe(1);
    expect(r.json<any>().gateways).toMatchObject([{ url: '(no address)', source: 'deployment main', health: { ok: false, error: 'i-0abc has no public address' }, hint: expect.stringMatching(/--subnet/) }]);

    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ InstanceId: 'i-0abc', State: { Name: 'stopped' } }] }] });
    const stopped = await runCli(['status', '--json'], { cwd });
    expect(stopped.code).toBe(1);
    expect(stopped.json<any>().gateways).toEqual([]);
    expect(stopped.json<any>().deployments[0].state).toBe('stopped');
  });
});
