import type { Command } from 'commander';
import { gatewayKeysLine, localPaths, readLocalStack, runtimeEntryPath, startLocalStack, stopLocalStack } from '../adapters/local-stack.js';
import { nginxBinary } from '../adapters/nginx.js';
import { parseFlag, parsers } from '../config.js';
import type { Context } from '../context.js';
import { guardDeployModel, resolveDeployConfig, type DeployConfig, type DeployKey, type ResolvedDeploy } from '../core/deploy-config.js';
import { UsageError } from '../errors.js';
import { printJson, table, type Logger } from '../ui/output.js';
import { addDeployOptions } from './render.js';
import { action, examples, type ExitHolder } from './shared.js';

const UP_FLAGS: readonly DeployKey[] = ['model', 'replicas', 'hostedUrl', 'percent', 'splitKey', 'sameModel', 'image', 'gpusPerReplica', 'memoryLimit', 'allowDemoModel'];

export interface UpOpts extends Record<string, unknown> {
  local?: boolean;
  port?: string;
  dockerHost?: string;
  sshKey?: string;
  readyTimeout?: string;
  dryRun?: boolean;
}

function bytesOf(size: string): number {
  const m = /^(\d+(?:\.\d+)?)([kmgKMG]?)$/.exec(size)!;
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Math.round(Number(m[1]) * mult);
}

async function upLocal(ctx: Context, opts: UpOpts, config: DeployConfig, json: boolean, log: { info(m: string): void; warn(m: string): void }): Promise<number> {
  const port = opts.port === undefined ? 0 : parseFlag('--port', opts.port, parsers.number({ min: 0, max: 65535, integer: true }));
  const readyTimeoutS = opts.readyTimeout === undefined ? 120 : parseFlag('--ready-timeout', opts.readyTimeout, parsers.number({ min: 1, max: 3600 }));
  const key = ctx.env.EMBEDCTL_HOSTED_API_KEY || undefined;
  const paths = localPaths(ctx.cwd);
  const plan = {
    runtimes: Array.from({ length: config.replicas }, (_, i) => ({
      name: `runtime-${i + 1}`,
      command: `node ${runtimeEntryPath()} --model ${config.model} --host 127.0.0.1 --port 0`,
      log: paths.runtimeLog(i),
    })),
    nginx: { listen: `127.0.0.1:${port || '<free port>'}`, prefix: paths.prefix, confPath: paths.confPath, binary: nginxBinary(ctx.env) ?? null },
    hostedUrl: config.hostedUrl,
    percent: config.percent,
    splitKey: config.splitKey,
    hostedAuth: key ? `injected from EMBEDCTL_HOSTED_API_KEY via ${paths.hostedAuth} (0600)` : "passthrough (clients' own Authorization header)",
    state: paths.state,
  };
  if (opts.dryRun) {
    if (json) printJson(ctx, 'up', { mode: 'local', dryRun: true, plan });
    else {
      ctx.stdout.write(`dry run: would start ${config.replicas} runtime${config.replicas === 1 ? '' : 's'} (${config.model}) and nginx on ${plan.nginx.listen}\n`);
      for (const r of plan.runtimes) ctx.stdout.write(`  ${r.name}: ${r.command}\n`);
      ctx.stdout.write(`  nginx: -p ${paths.prefix} -c ${paths.confPath}; ${config.percent}% self-hosted, hosted ${config.hostedUrl}\n  hosted auth: ${plan.hostedAuth}\n`);
    }
    return 0;
  }
  if (!nginxBinary(ctx.env)) throw new UsageError('nginx is not installed', { field: '--local', hint: 'install nginx (apt-get install nginx-light) or set EMBEDCTL_NGINX_BIN' });
  if (!key) log.warn('EMBEDCTL_HOSTED_API_KEY is not set: requests to hosted carry the client\'s own Authorization header');
  const state = await startLocalStack({
    cwd: ctx.cwd,
    model: config.model,
    replicas: config.replicas,
    hostedUrl: config.hostedUrl,
    percent: config.percent,
    splitKey: config.splitKey,
    sameModel: config.sameModel,
    port,
    hostedApiKey: key,
    env: ctx.env,
    readyTimeoutMs: readyTimeoutS * 1000,
    onProgress: (m) => log.info(m),
    signal: ctx.signal,
  });
  if (json) {
    printJson(ctx, 'up', { mode: 'local', dryRun: false, statePath: paths.state, ...state });
  } else {
    ctx.stdout.write(
      table(
        ['process', 'pid', 'url'],
        [['nginx (gateway)', state.nginx.pid, state.url], ...state.runtimes.map((r, i) => [`runtime-${i + 1}`, r.pid, r.url] as Array<string | number>)],
      ),
    );
    ctx.stdout.write(`\nGateway: ${state.url}/v1/embeddings (${state.percent}% self-hosted, hosted ${state.hostedUrl})\n${gatewayKeysLine(state)}\nStop with: embedctl down --local\n`);
  }
  return 0;
}

async function upRemote(ctx: Context, opts: UpOpts, { config, origins }: ResolvedDeploy, json: boolean, log: { info(m: string): void; warn(m: string): void }): Promise<number> {
  const dockerHost = opts.dockerHost ?? ctx.env.EMBEDCTL_DOCKER_HOST ?? ctx.env.DOCKER_HOST;
  if (!dockerHost) {
    throw new UsageError('say where to deploy: --docker-host ssh://ubuntu@<instance> (or unix:///var/run/docker.sock), or --local for this machine', { field: '--docker-host' });
  }
  // A remote engine serves users: the built-in demo models stay on this machine (up --local).
  guardDeployModel({ config, origins }, opts.dryRun, (m) => log.warn(m), 'up');
  const deployOpts = {
    dockerHost,
    sshKeyPath: opts.sshKey,
    image: config.image,
    replicas: config.replicas,
    model: config.model,
    gpu: config.gpusPerReplica > 0,
    gpuCount: config.gpusPerReplica > 0 ? config.gpusPerReplica : undefined,
    memoryBytes: bytesOf(config.memoryLimit),
    // docker.ts reads SSH_AUTH_SOCK from here and passes the rest into the containers: never
    // hand it the whole environment.
    env: { SSH_AUTH_SOCK: ctx.env.SSH_AUTH_SOCK, EMBEDCTL_API_KEY: ctx.env.EMBEDCTL_API_KEY },
  };
  if (opts.dryRun) {
    const plan = { dockerHost, image: config.image, replicas: config.replicas, model: config.model, gpusPerReplica: config.gpusPerReplica, memoryLimit: config.memoryLimit };
    if (json) printJson(ctx, 'up', { mode: 'docker', dryRun: true, plan });
    else ctx.stdout.write(`dry run: would pull ${config.image} on ${dockerHost} and run ${config.replicas} runtime container${config.replicas === 1 ? '' : 's'} (${config.model}, ${config.gpusPerReplica} GPU each, ${config.memoryLimit})\n`);
    return 0;
  }
  const { deployWithDocker } = await import('../adapters/docker.js');
  const result = await deployWithDocker({ ...deployOpts, onProgress: (m: string) => log.info(m), sleep: ctx.sleep, signal: ctx.signal });
  if (json) printJson(ctx, 'up', { mode: 'docker', dryRun: false, dockerHost, containers: result.containers });
  else ctx.stdout.write(table(['container', 'healthy', 'id'], result.containers.map((c) => [c.name, c.healthy ? 'yes' : 'no', c.id.slice(0, 12)])));
  return result.containers.every((c) => c.healthy) ? 0 : 1;
}

/**
 * `embedctl up` as a function (what rehearse calls): --local or --docker-host, the deploy
 * settings by their flags' camelCase names; `json` prints the --json document.
 */
export async function run(opts: UpOpts, ctx: Context, log: Logger, json = true): Promise<number> {
  if (opts.local && opts.dockerHost) throw new UsageError('choose one of --local and --docker-host', { field: '--docker-host' });
  const resolved = resolveDeployConfig(ctx, opts, UP_FLAGS);
  return opts.local ? upLocal(ctx, opts, resolved.config, json, log) : upRemote(ctx, opts, resolved, json, log);
}

export function register(program: Command, ctx: Context, holder: ExitHolder): void {
  const up = program
    .command('up')
    .description('Start the self-hosted runtimes: on this machine behind nginx (--local) or on a Docker engine (--docker-host)')
    .option('--local', 'run the runtimes and nginx as local processes (what rehearse uses)')
    .option('--port <n>', '--local: gateway port on 127.0.0.1 (default: a free port)')
    .option('--ready-timeout <s>', '--local: seconds to wait for each runtime to load its model', '120')
    .option('--docker-host <url>', 'ssh://user@host | unix:///path | tcp://host:2375 (env EMBEDCTL_DOCKER_HOST, DOCKER_HOST)')
    .option('--ssh-key <path>', 'private key for an ssh:// docker host (default: the ssh agent)')
    .option('--dry-run', 'print what would start; start nothing');
  addDeployOptions(up, UP_FLAGS);
  examples(up, [
    'embedctl up --local',
    'embedctl up --local --replicas 2 --percent 25 --hosted-url http://127.0.0.1:9000/v1/embeddings',
    'EMBEDCTL_HOSTED_API_KEY=jina_... embedctl up --local --port 8000',
    'embedctl up --docker-host ssh://ubuntu@203.0.113.10 --replicas 2',
    'embedctl up --local --dry-run --json',
  ]);
  up.action(
    action<UpOpts>(ctx, holder, async ({ opts, globals, log }) => run(opts, ctx, log, globals.json)),
  );

  const down = program
    .command('down')
    .description('Stop what `up` started: the local runtimes and nginx (--local) or the runtime containers (--docker-host)')
    .option('--local', 'stop the local stack recorded in .embedctl/local.json')
    .option('--docker-host <url>', 'remove the embedctl-labelled containers on this engine')
    .option('--ssh-key <path>', 'private key for an ssh:// docker host')
    .option('--dry-run', 'print what would stop; stop nothing');
  examples(down, ['embedctl down --local', 'embedctl down --docker-host ssh://ubuntu@203.0.113.10', 'embedctl down --local --dry-run']);
  down.action(
    action<{ local?: boolean; dockerHost?: string; sshKey?: string; dryRun?: boolean }>(ctx, holder, async ({ opts, globals, log }) => {
      if (opts.local && opts.dockerHost) throw new UsageError('choose one of --local and --docker-host', { field: '--docker-host' });
      if (opts.local) {
        const s = await readLocalStack(ctx.cwd);
        if (opts.dryRun || !s) {
          const pids = s ? [{ what: 'nginx', pid: s.nginx.pid }, ...s.runtimes.map((r, i) => ({ what: `runtime-${i + 1}`, pid: r.pid }))] : [];
          if (globals.json) printJson(ctx, 'down', { mode: 'local', dryRun: Boolean(opts.dryRun), running: Boolean(s), wouldStop: pids });
          else ctx.stdout.write(s ? `dry run: would stop ${pids.map((p) => `${p.what} (pid ${p.pid})`).join(', ')}\n` : `No local stack (${localPaths(ctx.cwd).state} does not exist); nothing to stop.\n`);
          return 0;
        }
        const result = await stopLocalStack(ctx.cwd, (m) => log.info(m));
        if (globals.json) printJson(ctx, 'down', { mode: 'local', dryRun: false, stopped: result?.stopped ?? [] });
        else ctx.stdout.write(`Local stack stopped (${result?.stopped.filter((p) => p.wasRunning).length ?? 0} processes).\n`);
        return 0;
      }
      const dockerHost = opts.dockerHost ?? ctx.env.EMBEDCTL_DOCKER_HOST ?? ctx.env.DOCKER_HOST;
      if (!dockerHost) throw new UsageError('say what to stop: --local, or --docker-host ssh://ubuntu@<instance>', { field: '--local' });
      if (opts.dryRun) {
        if (globals.json) printJson(ctx, 'down', { mode: 'docker', dryRun: true, dockerHost });
        else ctx.stdout.write(`dry run: would stop and remove the embedctl-labelled containers on ${dockerHost}\n`);
        return 0;
      }
      const { removeWithDocker } = await import('../adapters/docker.js');
      const result = await removeWithDocker({ dockerHost, sshKeyPath: opts.sshKey, env: ctx.env, onProgress: (m: string) => log.info(m) });
      if (globals.json) printJson(ctx, 'down', { mode: 'docker', dryRun: false, dockerHost, removed: result.removed });
      else ctx.stdout.write(`Removed ${result.removed.length} container${result.removed.length === 1 ? '' : 's'} on ${dockerHost}.\n`);
      return 0;
    }),
  );
}
