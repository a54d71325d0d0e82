import { readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import type { Context } from '../../context.js';
import { UsageError } from '../../errors.js';
import { parsers, resolveOption } from '../../config.js';
import { checkDeploymentName, checkRegion, internetExposure, parseCidr, type Market, type ProvisionOptions } from '../../core/provision-plan.js';
import { SCALE_TARGET_DEFAULTS, type ScaleMetric, type ScaleOptions } from '../../core/provision-scale.js';
import { defaultMonthlyBudgetUsd } from '../../core/provision-monitoring.js';
import { resolveDeployConfig, type DeployConfig, type DeployKey } from '../../core/deploy-config.js';
import { GATEWAY_FLAGS, tlsPlan } from '../../core/gateway-config.js';
import { parseGatewayKeys } from '../../core/gateway-keys.js';
import { SERVING_FLAGS } from '../../core/render-serving.js';

/** The flags as commander parses them. */
export interface ProvisionFlags {
  instanceType?: string;
  market?: string;
  region?: string;
  subnet?: string[];
  allowCidr?: string[];
  allowWorld?: boolean;
  keyName?: string;
  name?: string;
  volumeSize?: string;
  iamInstanceProfile?: string;
  alarmTopic?: string;
  min?: string;
  max?: string;
  certificateArn?: string;
  scaleMetric?: string;
  scaleTarget?: string;
  monthlyBudget?: string;
  activateCostTags?: boolean;
  gatewayKeys?: string;
  wait: boolean;
  waitTimeout?: string;
  dryRun?: boolean;
  yes?: boolean;
}

export interface Resolved extends ProvisionOptions {
  subnetIds: string[];
  deploy: DeployConfig;
  /** Set with --min/--max: an Auto Scaling group behind a load balancer instead of one instance. */
  scale?: ScaleOptions;
  monthlyBudgetUsd?: number;
  activateCostTags: boolean;
  /** --gateway-keys: a checked keys file to upload as the gateway keys parameter. */
  gatewayKeys?: { path: string; text: string };
  dryRun: boolean;
  yes: boolean;
  wait: boolean;
  waitTimeoutMs: number;
  sources: Record<string, string>;
}

/** The deploy settings `provision` bakes into the instance's user data (same schema as render). */
export const PROVISION_DEPLOY_FLAGS: readonly DeployKey[] = [
  'replicas',
  'model',
  'allowDemoModel',
  'image',
  'hostedUrl',
  'percent',
  'splitKey',
  'gatewayPort',
  'memoryLimit',
  'gpusPerReplica',
  'prometheus',
  'hostedKeyParameter',
  'hfTokenParameter',
  // HTTPS at the gateway, fallback, gateway keys; response cache and Redis.
  ...GATEWAY_FLAGS,
  ...SERVING_FLAGS,
];

/** Reads and checks --gateway-keys before any AWS call (the file holds secrets: errors name lines, never keys). */
function readGatewayKeys(cwd: string, path: string | undefined): Resolved['gatewayKeys'] {
  if (path === undefined) return undefined;
  const abs = resolvePath(cwd, path);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { field: '--gateway-keys', hint: 'a file of "client <key>" / "operator <key>" lines' });
  }
  try {
    parseGatewayKeys(text, path);
  } catch (err) {
    throw new UsageError((err as Error).message, { field: '--gateway-keys' });
  }
  return { path: abs, text };
}

/** HTTPS at the instance's nginx: checked here; with --min/--max the load balancer terminates TLS instead. */
function resolveTls(deploy: DeployConfig, scale: ScaleOptions | undefined): Pick<ProvisionOptions, 'httpsPort' | 'acmeHttp01'> {
  const plan = tlsPlan(deploy);
  if (plan.mode === 'off') return {};
  if (scale) {
    throw new UsageError('with --min/--max the load balancer terminates HTTPS', { field: deploy.tls !== 'off' ? '--tls' : '--tls-cert', hint: 'pass --certificate-arn (an ACM certificate) instead' });
  }
  return { httpsPort: plan.port, acmeHttp01: plan.mode === 'letsencrypt' };
}

export const collect = (v: string, prev: string[] | undefined) => [...(prev ?? []), ...v.split(',').map((s) => s.trim()).filter(Boolean)];

const int = (min: number, max: number) => parsers.number({ min, max, integer: true });

function resolveScale(ctx: Context, opts: ProvisionFlags): ScaleOptions | undefined {
  if (opts.min === undefined && opts.max === undefined) {
    for (const [flag, v] of [['--certificate-arn', opts.certificateArn], ['--scale-metric', opts.scaleMetric], ['--scale-target', opts.scaleTarget]] as const) {
      if (v !== undefined) throw new UsageError('only applies with --min/--max (scale-out)', { field: flag, hint: 'add --min 2 --max 6, or drop it' });
    }
    return undefined;
  }
  const min = resolveOption(ctx, { flag: '--min', flagValue: opts.min, default: 1, parse: int(1, 100) }).value;
  const max = resolveOption(ctx, { flag: '--max', flagValue: opts.max, default: Math.max(min, 2), parse: int(1, 100) }).value;
  if (max < min) throw new UsageError(`must be >= --min (${min}), got ${max}`, { field: '--max' });
  const metric = resolveOption<ScaleMetric>(ctx, { flag: '--scale-metric', flagValue: opts.scaleMetric, default: 'requests', parse: parsers.oneOf(['requests', 'p95'] as const) }).value;
  const target = resolveOption(ctx, {
    flag: '--scale-target',
    flagValue: opts.scaleTarget,
    default: SCALE_TARGET_DEFAULTS[metric],
    parse: parsers.number({ min: 1, max: 1_000_000 }),
  }).value;
  if (opts.certificateArn !== undefined && !/^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate\/[0-9a-f-]+$/.test(opts.certificateArn)) {
    throw new UsageError(`expected an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>), got ${JSON.stringify(opts.certificateArn)}`, {
      field: '--certificate-arn',
    });
  }
  return { min, max, certificateArn: opts.certificateArn, metric, target };
}

function resolveCidrs(ctx: Context, opts: ProvisionFlags) {
  const cidrs = resolveOption<string[]>(ctx, {
    flag: '--allow-cidr',
    flagValue: opts.allowCidr?.length ? opts.allowCidr : undefined,
    env: 'EMBEDCTL_ALLOW_CIDR',
    file: 'provision.allowCidr',
    default: [],
    parse: (raw) => {
      const list = Array.isArray(raw) ? raw.map(String) : String(raw).split(',').map((s) => s.trim()).filter(Boolean);
      return list.map((c) => parseCidr(c).cidr);
    },
  });
  if (cidrs.value.length === 0) {
    throw new UsageError('required: who may reach the instance', {
      field: '--allow-cidr',
      hint: 'pass your address, e.g. --allow-cidr "$(curl -s https://checkip.amazonaws.com)/32"',
    });
  }
  // Checked as a set, before any AWS call: two /1s are the whole internet as surely as one /0.
  const exposure = internetExposure(cidrs.value);
  if (exposure && !opts.allowWorld) {
    throw new UsageError(`${exposure}: that opens the endpoint to the whole internet`, {
      field: cidrs.origin,
      hint: 'use your own address (<your-ip>/32) or your network (/16../32), or add --allow-world if that is really intended',
    });
  }
  return cidrs;
}

/** A region embedctl knows, or (EMBEDCTL_ALLOW_UNKNOWN_REGION=1) one newer than its list that the user vouches for. */
const regionParser = (env: Record<string, string | undefined>) => (raw: unknown): string => {
  const r = parsers.string()(raw);
  const bad = checkRegion(r);
  if (bad && env.EMBEDCTL_ALLOW_UNKNOWN_REGION !== '1') throw new Error(`${bad} (a brand-new region? set EMBEDCTL_ALLOW_UNKNOWN_REGION=1)`);
  return r;
};

function parseInstanceType(raw: unknown): string {
  const t = parsers.string()(raw);
  if (!/^[a-z][a-z0-9-]*\.[a-z0-9]+$/.test(t)) throw new Error(`${JSON.stringify(t)} is not an instance type (e.g. g4dn.xlarge)`);
  return t;
}

function parseDeploymentName(raw: unknown): string {
  const n = parsers.string()(raw);
  const bad = checkDeploymentName(n);
  if (bad) throw new Error(bad);
  return n;
}

export function resolveOptions(ctx: Context, opts: ProvisionFlags): Resolved {
  const deploy = resolveDeployConfig(ctx, opts as unknown as Record<string, unknown>, PROVISION_DEPLOY_FLAGS);
  const envRegion = ctx.env.AWS_REGION || ctx.env.AWS_DEFAULT_REGION;
  // Flag > EMBEDCTL_* > embedctl.yaml > default, one setting a line: [flag, value, env, yaml key, default, parser].
  const setting = <T>(flag: string, flagValue: unknown, env: string | undefined, file: string, def: T, parse: (raw: unknown) => T) =>
    resolveOption<T>(ctx, { flag, flagValue, env, file, default: def, parse });
  const region = setting('--region', opts.region, 'EMBEDCTL_REGION', 'aws.region', envRegion ?? 'us-east-1', regionParser(ctx.env));
  const instanceType = setting('--instance-type', opts.instanceType, 'EMBEDCTL_INSTANCE_TYPE', 'provision.instanceType', 'g4dn.xlarge', parseInstanceType);
  const market = setting<Market>('--market', opts.market, 'EMBEDCTL_MARKET', 'provision.market', 'on-demand', parsers.oneOf(['on-demand', 'spot'] as const));
  const name = setting('--name', opts.name, 'EMBEDCTL_DEPLOYMENT', 'provision.name', 'main', parseDeploymentName);
  // The DLAMI's own snapshot is ~75 GB; a smaller root volume fails at launch.
  const volumeSize = setting('--volume-size', opts.volumeSize, undefined, 'provision.volumeSize', 125, parsers.number({ min: 100, max: 16384, integer: true }));
  const waitTimeout = resolveOption(ctx, { flag: '--wait-timeout', flagValue: opts.waitTimeout, default: 20, parse: parsers.number({ min: 1, max: 120 }) });
  const cidrs = resolveCidrs(ctx, opts);
  const subnetIds = opts.subnet ?? [];
  for (const s of subnetIds) {
    if (!/^subnet-[0-9a-f]+$/.test(s)) throw new UsageError(`expected a subnet id like subnet-0abc123, got ${JSON.stringify(s)}`, { field: '--subnet' });
  }
  const scale = resolveScale(ctx, opts);
  const tls = resolveTls(deploy.config, scale);
  if (!scale && subnetIds.length > 1) {
    throw new UsageError('one instance lives in one subnet; several are for scale-out', { field: '--subnet', hint: 'pass one --subnet, or add --min/--max' });
  }
  if (opts.alarmTopic !== undefined && !/^arn:aws[a-z-]*:sns:/.test(opts.alarmTopic)) {
    throw new UsageError(`expected an SNS topic ARN (arn:aws:sns:...), got ${JSON.stringify(opts.alarmTopic)}`, { field: '--alarm-topic' });
  }
  const budget = resolveOption<number | undefined>(ctx, {
    flag: '--monthly-budget',
    flagValue: opts.monthlyBudget,
    file: 'provision.monthlyBudget',
    default: defaultMonthlyBudgetUsd(instanceType.value, scale?.max ?? 1),
    parse: parsers.number({ min: 1, max: 10_000_000 }),
  });
  return {
    name: name.value,
    region: region.value,
    instanceType: instanceType.value,
    market: market.value,
    allowCidrs: cidrs.value,
    keyName: opts.keyName,
    subnetId: subnetIds[0],
    subnetIds,
    volumeSize: volumeSize.value,
    gatewayPort: deploy.config.gatewayPort,
    ...tls,
    iamInstanceProfile: opts.iamInstanceProfile,
    alarmTopicArn: opts.alarmTopic,
    deploy: deploy.config,
    scale,
    monthlyBudgetUsd: budget.value,
    activateCostTags: Boolean(opts.activateCostTags),
    gatewayKeys: readGatewayKeys(ctx.cwd, opts.gatewayKeys),
    dryRun: Boolean(opts.dryRun),
    yes: Boolean(opts.yes),
    wait: opts.wait !== false,
    waitTimeoutMs: waitTimeout.value * 60_000,
    sources: {
      region: region.origin === 'default' && envRegion ? (ctx.env.AWS_REGION ? 'AWS_REGION' : 'AWS_DEFAULT_REGION') : region.origin,
      instanceType: instanceType.origin,
      market: market.origin,
      name: name.origin,
      allowCidr: cidrs.origin,
    },
  };
}
