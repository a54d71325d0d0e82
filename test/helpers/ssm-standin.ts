import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GetCommandInvocationCommandInput, GetCommandInvocationCommandOutput, SendCommandCommandInput, SendCommandCommandOutput } from '@aws-sdk/client-ssm';
import { execa } from 'execa';

/**
 * A stand-in for one EC2 instance behind AWS Systems Manager: SendCommand(AWS-RunShellScript)
 * runs the very script embedctl sends, with bash, on this machine, against a real nginx on
 * loopback. Only the Docker daemon is faked: `docker compose ... exec -T gateway nginx ...` runs
 * this host's nginx with the instance's paths mapped onto the test's directories, and
 * `docker compose ... cp` copies next to nginx.conf. Put it behind aws-sdk-client-mock's
 * callsFake so the real SDK client, and every parameter it sends, stay in the picture.
 */
export interface SsmStandin {
  sendCommand(input: SendCommandCommandInput): Promise<SendCommandCommandOutput>;
  getInvocation(input: GetCommandInvocationCommandInput): Promise<GetCommandInvocationCommandOutput>;
  /** Every script run, in order, as the instance would have run it. */
  scripts: string[];
}

const FAKE_DOCKER = `#!/usr/bin/env node
// docker compose -f FILE (cp SRC gateway:/etc/nginx/NAME | exec -T gateway nginx ARGS...)
const { execFileSync } = require('node:child_process');
const { copyFileSync } = require('node:fs');
const etc = process.env.EMBEDCTL_STANDIN_ETC, prefix = process.env.EMBEDCTL_STANDIN_PREFIX;
let a = process.argv.slice(2);
if (a[0] !== 'compose') process.exit(64);
a = a.slice(1);
if (a[0] === '-f') a = a.slice(2);
const map = (p) => p === '/var/cache/nginx/' ? prefix : p.startsWith('/etc/nginx/') ? etc + '/' + p.slice(11) : p;
if (a[0] === 'cp') { copyFileSync(a[1], map(a[2].replace(/^gateway:/, ''))); process.exit(0); }
if (a[0] === 'exec') {
  a = a.slice(1);
  if (a[0] === '-T') a = a.slice(1);
  if (a[0] !== 'gateway' || a[1] !== 'nginx') process.exit(65);
  const args = a.slice(2).map(map);
  if (!args.includes('-c')) args.push('-c', etc + '/nginx.conf');
  try { execFileSync('nginx', args, { stdio: 'inherit' }); } catch (e) { process.exit(e.status ?? 1); }
  process.exit(0);
}
process.exit(66);
`;

export function ssmStandin(o: { root: string; deployDir: string; prefix: string; instanceId: string }): SsmStandin {
  const bin = join(o.root, 'standin-bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'docker'), FAKE_DOCKER);
  chmodSync(join(bin, 'docker'), 0o755);
  const results = new Map<string, GetCommandInvocationCommandOutput>();
  const scripts: string[] = [];
  let seq = 0;
  return {
    scripts,
    async sendCommand(input) {
      if (input.DocumentName !== 'AWS-RunShellScript') throw new Error(`stand-in runs AWS-RunShellScript only, got ${input.DocumentName}`);
      if (!input.InstanceIds?.includes(o.instanceId)) throw Object.assign(new Error('Instances not in a valid state'), { name: 'InvalidInstanceId' });
      const script = (input.Parameters?.commands ?? []).join('\n');
      scripts.push(script);
      const r = await execa('bash', ['-c', script], {
        reject: false,
        timeout: 60_000,
        env: { PATH: `${bin}:${process.env.PATH}`, EMBEDCTL_DEPLOY_DIR: o.deployDir, EMBEDCTL_STANDIN_ETC: join(o.deployDir, 'nginx'), EMBEDCTL_STANDIN_PREFIX: o.prefix },
        extendEnv: false,
      });
      const id = `cmd-${++seq}`;
      results.set(id, {
        CommandId: id,
        InstanceId: o.instanceId,
        Status: r.exitCode === 0 ? 'Success' : 'Failed',
        ResponseCode: r.exitCode ?? -1,
        // SSM keeps the first 24,000 characters of each stream.
        StandardOutputContent: String(r.stdout).slice(0, 24_000),
        StandardErrorContent: String(r.stderr).slice(0, 8_000),
        $metadata: {},
      });
      return { Command: { CommandId: id, DocumentName: input.DocumentName, InstanceIds: input.InstanceIds }, $metadata: {} };
    },
    async getInvocation(input) {
      const r = results.get(input.CommandId ?? '');
      if (!r || input.InstanceId !== o.instanceId) throw Object.assign(new Error('InvocationDoesNotExist'), { name: 'InvocationDoesNotExist' });
      return r;
    },
  };
}
