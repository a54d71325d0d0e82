import { readFileSync } from 'node:fs';
import { deployFile } from '../../contracts/deploy.js';
import { resolve } from 'node:path';
import { parseFlag, parsers } from '../../config.js';
import type { Context } from '../../context.js';
import { envDriver } from '../../adapters/traffic/env.js';
import { DEFAULT_INGRESS, k8sDriver } from '../../adapters/traffic/k8s.js';
import { nginxDriver } from '../../adapters/traffic/nginx.js';
import type { TrafficDriver } from '../../adapters/traffic/types.js';
import type { DriverName, RolloutState } from '../../core/rollout/types.js';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { ssmClient } from '../../adapters/aws/ssm.js';
import { ssmTrafficDriver } from '../../adapters/aws/ssm-traffic.js';
import { readState, statePaths, type DeploymentRecord } from '../../core/state.js';
import { UsageError } from '../../errors.js';
import type { RolloutOpts, Settings } from './options.js';

/**
 * Which driver moves traffic: one named explicitly (flag, env, embedctl.yaml) wins; otherwise the
 * rollout's own (traffic goes back the way it went forward); otherwise the default.
 */
export function chooseDriver(settings: Settings, state: RolloutState | undefined, deployment?: DeploymentRecord): DriverName {
  if (settings.driver.source !== 'default') return settings.driver.value;
  if (state?.history.length) return state.driver;
  // A provisioned instance's gateway is moved over SSM; a local stack's with the nginx driver.
  return deployment?.instance ? 'ssm' : (state?.driver ?? settings.driver.value);
}

/**
 * The deployment whose gateway rollout moves: --deployment, else the only one in
 * .embedctl/state.json. Undefined when there is none (a local stack, or an app with the env driver).
 */
export async function currentDeployment(ctx: Context, opts: RolloutOpts): Promise<DeploymentRecord | undefined> {
  const st = await readState(statePaths(ctx.cwd, ctx.env).state);
  const all = Object.values(st.deployments);
  if (opts.deployment) {
    const d = st.deployments[opts.deployment];
    if (!d) throw new UsageError(`no deployment named ${opts.deployment} in .embedctl/state.json (${all.map((x) => x.name).join(', ') || 'none'})`, { field: '--deployment' });
    return d;
  }
  if (all.length > 1) {
    throw new UsageError(`.embedctl/state.json holds ${all.length} deployments (${all.map((x) => x.name).join(', ')}): say which one`, { field: '--deployment' });
  }
  return all[0];
}

export function buildDriver(ctx: Context, opts: RolloutOpts, name: DriverName, deployment?: DeploymentRecord): TrafficDriver {
  switch (name) {
    case 'ssm':
      return ssmFromDeployment(ctx, opts, deployment);
    case 'env':
      return envDriver(resolve(ctx.cwd, opts.trafficEnv ?? ctx.env.EMBEDCTL_TRAFFIC_ENV_FILE ?? '.embedctl/traffic.env'));
    case 'k8s':
      return k8sDriver({
        ingress: opts.k8sIngress ?? DEFAULT_INGRESS,
        namespace: opts.k8sNamespace ?? 'default',
        manifests: opts.k8sManifests ? resolve(ctx.cwd, opts.k8sManifests) : undefined,
        kubectl: opts.kubectl,
        env: ctx.env,
      });
    case 'nginx':
      return nginxFromDeploy(ctx, opts);
  }
}

export function sampleOptions(opts: RolloutOpts): { samples?: number; tolerance?: number } {
  if (opts.confirm === false && opts.samples !== undefined) throw new UsageError('cannot be used with --no-confirm, which samples nothing', { field: '--samples', hint: 'drop one of them' });
  return {
    samples: opts.confirm === false ? 0 : opts.samples === undefined ? undefined : parseFlag('--samples', opts.samples, parsers.number({ min: 0, max: 100_000, integer: true })),
    tolerance: opts.tolerance === undefined ? undefined : parseFlag('--tolerance', opts.tolerance, parsers.number({ min: 0, max: 100 })),
  };
}

function ssmFromDeployment(ctx: Context, opts: RolloutOpts, d: DeploymentRecord | undefined): TrafficDriver {
  const instanceId = opts.ssmInstance ?? d?.instance?.id;
  const region = opts.ssmRegion ?? d?.region ?? ctx.env.AWS_REGION ?? ctx.env.AWS_DEFAULT_REGION;
  if (!instanceId) throw new UsageError('the ssm driver needs the gateway instance: provision one (state.json) or give --ssm-instance i-...', { field: '--ssm-instance' });
  if (!/^(i|mi)-[0-9a-f]{8,17}$/.test(instanceId)) throw new UsageError(`expected an instance id like i-0123456789abcdef0, got ${JSON.stringify(instanceId)}`, { field: '--ssm-instance' });
  if (!region) throw new UsageError('the ssm driver needs a region: --ssm-region or AWS_REGION', { field: '--ssm-region' });
  const gatewayUrl = opts.gatewayUrl ?? d?.gateway;
  const poll = Number(ctx.env.EMBEDCTL_SSM_POLL_MS);
  return ssmTrafficDriver({
    client: ctx.adapters.ssmClient ?? ssmClient(region),
    instanceId,
    region,
    gatewayUrl,
    ...sampleOptions(opts),
    pollMs: Number.isFinite(poll) && poll > 0 ? poll : undefined,
    sleep: ctx.sleep,
  });
}

interface DeployNginx {
  confPath?: string;
  prefix?: string;
  url?: string;
  model?: string;
  options?: Record<string, unknown>;
}

/**
 * The nginx gateway's parameters: `.embedctl/deploy.json` ({ nginx: { confPath, prefix, url,
 * options: <render options> } }) written when the gateway is brought up, overridden by flags.
 */
function nginxFromDeploy(ctx: Context, opts: RolloutOpts): TrafficDriver {
  const deployPath = resolve(ctx.cwd, opts.deployFile ?? '.embedctl/deploy.json');
  const deploy: DeployNginx = (deployFile.readSync(deployPath)?.nginx ?? {}) as DeployNginx;
  const confPath = opts.nginxConf ?? deploy.confPath;
  const prefix = opts.nginxPrefix ?? deploy.prefix;
  const fromDeploy = (deploy.options ?? {}) as Record<string, unknown>;
  const selfHosted = opts.selfHosted ? opts.selfHosted.split(',').map((s) => s.trim()).filter(Boolean) : (fromDeploy.selfHosted as string[] | undefined);
  const hostedUrl = opts.hostedUrl ?? (fromDeploy.hostedUrl as string | undefined);
  const missing = [!confPath && '--nginx-conf', !prefix && '--nginx-prefix', !selfHosted?.length && '--self-hosted', !hostedUrl && '--hosted-url'].filter(Boolean) as string[];
  if (missing.length > 0) {
    throw new UsageError(`the nginx driver needs ${missing.join(', ')} (or an nginx section in ${deployPath})`, {
      field: missing[0],
      hint: 'bring the gateway up with `embedctl up --local`, or use --driver env|k8s',
    });
  }
  const abs = (p: string) => resolve(ctx.cwd, p);
  let listen = fromDeploy.listen as { host?: string; port: number } | undefined;
  if (!listen) {
    try {
      const m = /^# listen: (\S+):(\d+)$/m.exec(readFileSync(abs(confPath!), 'utf8'));
      if (m) listen = { host: m[1], port: Number(m[2]) };
    } catch {
      /* reported below */
    }
  }
  if (!listen) throw new UsageError(`cannot tell where nginx listens: ${abs(confPath!)} has no "# listen:" header and the deploy file no options.listen`, { field: '--nginx-conf' });
  return nginxDriver({
    confPath: abs(confPath!),
    prefix: abs(prefix!),
    conf: { ...(fromDeploy as object), selfHosted: selfHosted!, hostedUrl: hostedUrl!, listen } as never,
    url: opts.nginxUrl ?? deploy.url,
    model: deploy.model,
    ...sampleOptions(opts),
    env: ctx.env,
  });
}
