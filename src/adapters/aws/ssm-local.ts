import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SSMClient, type GetCommandInvocationCommandInput, type GetCommandInvocationCommandOutput, type SendCommandCommandInput, type SendCommandCommandOutput } from '@aws-sdk/client-ssm';
import { execa } from 'execa';

/**
 * This machine standing in for one EC2 instance behind AWS Systems Manager, for `rehearse` and the
 * tests: SendCommand(AWS-RunShellScript) runs the very script the ssm traffic driver sends, with
 * bash, against a real nginx on loopback. Only the Docker daemon is replaced: `docker compose ...
 * exec -T gateway nginx ...` runs this host's nginx with the instance's paths (/etc/nginx/,
 * /var/cache/nginx/) mapped onto the local gateway's directories, and `docker compose ... cp`
 * copies beside its nginx.conf. So a rehearsal moves its gateway with exactly the code a
 * deployment runs, down to the shell script.
 */
export interface LocalInstance {
  sendCommand(input: SendCommandCommandInput): Promise<SendCommandCommandOutput>;
  getInvocation(input: GetCommandInvocationCommandInput): Promise<GetCommandInvocationCommandOutput>;
  /** Every script run, in order, as the instance would have run it. */
  scripts: string[];
}

export interface LocalInstanceOptions {
  /** A scratch directory (the docker shim lives under it). */
  root: string;
  /** Stands for /opt/embedctl/deploy: its nginx/nginx.conf is the live gateway config. */
  deployDir: string;
  /** nginx's -p prefix (stands for /var/cache/nginx/ in the container). */
  prefix: string;
  instanceId: string;
  /** PATH for the scripts (default: this process's); nginx must be on it or under EMBEDCTL_NGINX_BIN. */
  path?: string;
  nginxBin?: string;
}

const DOCKER_SHIM = `#!/usr/bin/env node
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
  try { execFileSync(process.env.EMBEDCTL_STANDIN_NGINX || 'nginx', args, { stdio: 'inherit' }); } catch (e) { process.exit(e.status ?? 1); }
  process.exit(0);
}
process.exit(66);
`;

export function localInstance(o: LocalInstanceOptions): LocalInstance {
  const bin = join(o.root, 'standin-bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'docker'), DOCKER_SHIM);
  chmodSync(join(bin, 'docker'), 0o755);
  const results = new Map<string, GetCommandInvocationCommandOutput>();
  const scripts: string[] = [];
  let seq = 0;
  return {
    scripts,
    async sendCommand(input) {
      if (input.DocumentName !== 'AWS-RunShellScript') throw new Error(`the local instance runs AWS-RunShellScript only, got ${input.DocumentName}`);
      if (!input.InstanceIds?.includes(o.instanceId)) throw Object.assign(new Error('Instances not in a valid state'), { name: 'InvalidInstanceId' });
      const script = (input.Parameters?.commands ?? []).join('\n');
      scripts.push(script);
      const r = await execa('bash', ['-c', script], {
        reject: false,
        timeout: 60_000,
        env: {
          PATH: `${bin}:${o.path ?? process.env.PATH}`,
          EMBEDCTL_DEPLOY_DIR: o.deployDir,
          EMBEDCTL_STANDIN_ETC: join(o.deployDir, 'nginx'),
          EMBEDCTL_STANDIN_PREFIX: o.prefix.endsWith('/') ? o.prefix : `${o.prefix}/`,
          ...(o.nginxBin ? { EMBEDCTL_STANDIN_NGINX: o.nginxBin } : {}),
        },
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

/**
 * The real SSM SDK client, answered by `instance` instead of AWS: a middleware at the front of
 * the stack takes SendCommand and GetCommandInvocation before anything is signed or sent, so no
 * credentials or network are needed and every other part of the driver's code runs as deployed.
 */
export function localSsmClient(instance: LocalInstance, region = 'local'): SSMClient {
  const client = new SSMClient({ region, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
  client.middlewareStack.add(
    (_next, context) => async (args) => {
      const input = args.input as never;
      if (context.commandName === 'SendCommandCommand') return { output: await instance.sendCommand(input), response: {} };
      if (context.commandName === 'GetCommandInvocationCommand') return { output: await instance.getInvocation(input), response: {} };
      throw new Error(`the local instance does not answer ${context.commandName}`);
    },
    { step: 'initialize', name: 'embedctlLocalInstance', priority: 'high' },
  );
  return client;
}
