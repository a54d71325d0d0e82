import { z } from 'zod';
import { formatDuration, parseDuration } from '../../common/values.js';
import { resolveOption, type Resolved } from '../config.js';
import { booleanSchema } from './schema-values.js';
import type { Context } from '../context.js';
import { UsageError } from '../errors.js';
import { packageVersion } from '../util/paths.js';
import { GATEWAY_FIELDS } from './gateway-config.js';
import { SERVING_FIELDS } from './render-serving.js';
import { MODEL_FIELDS } from './render-model.js';
import { parseHostedUrl, SPLIT_KEYS, type SplitKey } from './render.js';
import { MODEL_PRESETS, findPreset } from './model-presets.js';

/**
 * What gets deployed: one schema for `render`, `up` and `provision`, resolved from
 * flags > EMBEDCTL_* env > embedctl.yaml `deploy:` > defaults, each value keeping its origin.
 */

const sizeRe = /^\d+(?:\.\d+)?[kmgKMG]?$/;
/** The one duration grammar (common/values.ts), written back in a form nginx reads (1m30s, 1500ms). */
const nginxDuration = z.union([z.string(), z.number()]).transform((raw, c) => {
  try {
    return formatDuration(parseDuration(raw));
  } catch (err) {
    c.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

const hostedUrl = z.string().superRefine((v, ctx) => {
  try {
    parseHostedUrl(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

const percent = z.coerce
  .number({ message: 'expected a number from 0 to 100' })
  .min(0, 'must be >= 0')
  .max(100, 'must be <= 100')
  .int('a whole percent (the gateway splits keys into 100 buckets of 1 %)');

const int = (min: number, max: number) =>
  z.coerce.number({ message: 'expected a whole number' }).int('expected a whole number').min(min, `must be >= ${min}`).max(max, `must be <= ${max}`);


/** A model reference the runtime understands: a built-in bundle name or a hub id org/name. */
const model = z
  .string()
  .min(1, 'expected a model name')
  .regex(/^(?:[A-Za-z0-9][\w.-]*|[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*)$/, 'expected a built-in model (default, default-q, tiny-bert) or a hub id like BAAI/bge-small-en-v1.5');

/** A docker image reference (no spaces or quotes; shell and YAML safe). */
const image = z.string().regex(/^[a-z0-9][a-z0-9._/:@-]*$/i, 'expected an image reference like registry/name:tag');

export const FIELDS = {
  replicas: { flag: '--replicas', env: 'EMBEDCTL_REPLICAS', default: 1, schema: int(1, 16), help: 'self-hosted runtime replicas behind nginx' },
  model: { flag: '--model', env: 'EMBEDCTL_MODEL', default: 'default', schema: model, help: 'model: default, default-q, tiny-bert or a hub id (fetched on the instance)' },
  hostedUrl: { flag: '--hosted-url', env: 'EMBEDCTL_HOSTED_URL', default: 'https://api.jina.ai/v1/embeddings', schema: hostedUrl, help: 'the hosted embeddings endpoint nginx splits with and falls back to' },
  percent: { flag: '--percent', env: 'EMBEDCTL_SELF_HOSTED_PERCENT', default: 0, schema: percent, help: 'share of split keys sent to self-hosted (0-100)' },
  splitKey: { flag: '--split-key', env: 'EMBEDCTL_SPLIT_KEY', default: 'auto' as SplitKey, schema: z.enum(SPLIT_KEYS as [SplitKey, ...SplitKey[]]), help: 'auto (X-Tenant-Id, else API key, else per request), tenant, api-key or request' },
  gatewayPort: { flag: '--gateway-port', env: 'EMBEDCTL_GATEWAY_PORT', default: 8000, schema: int(1, 65535), help: 'port nginx publishes on the instance' },
  runtimePort: { flag: '--runtime-port', env: 'EMBEDCTL_RUNTIME_PORT', default: 8080, schema: int(1, 65535), help: 'port each runtime listens on inside its container' },
  image: { flag: '--image', env: 'EMBEDCTL_IMAGE', default: `ghcr.io/embedctl/runtime:${packageVersion()}`, schema: image, help: 'runtime container image (build: docker build -f runtime/Dockerfile)' },
  nginxImage: { flag: '--nginx-image', env: 'EMBEDCTL_NGINX_IMAGE', default: 'nginx:1.27', schema: image, help: 'nginx image for the gateway' },
  memoryLimit: { flag: '--memory-limit', env: 'EMBEDCTL_MEMORY_LIMIT', default: '12g', schema: z.string().regex(sizeRe, 'expected a size like 12g or 4096m'), help: 'memory limit per runtime container' },
  gpusPerReplica: { flag: '--gpus-per-replica', env: 'EMBEDCTL_GPUS_PER_REPLICA', default: 1, schema: int(0, 8), help: 'GPUs reserved per runtime (0 = CPU only)' },
  clientMaxBodySize: { flag: '--max-body', env: 'EMBEDCTL_MAX_BODY', default: '8m', schema: z.string().regex(sizeRe, 'expected a size like 8m'), help: 'largest request body nginx accepts' },
  readTimeout: { flag: '--read-timeout', env: 'EMBEDCTL_READ_TIMEOUT', default: '30s', schema: nginxDuration, help: 'how long nginx waits for a self-hosted answer' },
  prometheus: { flag: '--prometheus', env: 'EMBEDCTL_PROMETHEUS', default: false, schema: booleanSchema, help: 'also run Prometheus (compose profile "monitoring" always rendered)' },
  hfTokenParameter: { flag: '--hf-token-parameter', env: 'EMBEDCTL_HF_TOKEN_PARAMETER', default: '', schema: z.string().regex(/^$|^\/?[\w./-]+$/, 'expected an SSM parameter name like /embedctl/hf-token'), help: 'SSM SecureString holding HF_TOKEN for gated models' },
  hostedKeyParameter: { flag: '--hosted-key-parameter', env: 'EMBEDCTL_HOSTED_KEY_PARAMETER', default: '/embedctl/hosted-api-key', schema: z.string().regex(/^\/?[\w./-]+$/, 'expected an SSM parameter name'), help: 'SSM SecureString holding the hosted API key on the instance' },
  namespace: { flag: '--namespace', env: 'EMBEDCTL_K8S_NAMESPACE', default: 'embedctl', schema: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'expected a DNS-1123 label'), help: 'Kubernetes namespace' },
  allowDemoModel: { flag: '--allow-demo-model', env: 'EMBEDCTL_ALLOW_DEMO_MODEL', default: false, schema: booleanSchema, help: 'deploy a built-in demo model (default, default-q, tiny-bert) to a remote target anyway' },
  maxReplicas: { flag: '--max-replicas', env: 'EMBEDCTL_MAX_REPLICAS', default: 4, schema: int(1, 64), help: 'HorizontalPodAutoscaler ceiling' },
  // Fallback, client keys and TLS at the gateway (owned with the nginx template).
  ...GATEWAY_FIELDS,
  // Response cache and the Redis the runtimes share (issue 17; owned with render-serving.ts).
  ...SERVING_FIELDS,
  // How the instance optimises a fetched hub model (issue 20; owned with templates/user-data.sh).
  ...MODEL_FIELDS,
} as const;

export type DeployKey = keyof typeof FIELDS;
export type DeployConfig = { [K in DeployKey]: z.output<(typeof FIELDS)[K]['schema']> };

/** Commander's camelCase of each flag ("--hosted-url" -> "hostedUrl"). */
export const flagKey = (flag: string) => flag.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

export interface ResolvedDeploy {
  config: DeployConfig;
  origins: Record<DeployKey, Resolved<unknown>>;
}

/**
 * Resolves every deploy setting. `flags` holds commander's parsed options (camelCase keys);
 * a bad value is a UsageError naming where it came from ("--percent", "EMBEDCTL_REPLICAS",
 * "embedctl.yaml: deploy.replicas").
 */
export function resolveDeployConfig(ctx: Context, flags: Record<string, unknown>, only?: readonly DeployKey[]): ResolvedDeploy {
  const config: Record<string, unknown> = {};
  const origins: Record<string, Resolved<unknown>> = {};
  for (const key of Object.keys(FIELDS) as DeployKey[]) {
    const f = FIELDS[key];
    const flagged = only === undefined || only.includes(key);
    const r = resolveOption<unknown>(ctx, {
      flag: f.flag,
      flagValue: flagged ? flags[flagKey(f.flag)] : undefined,
      env: f.env,
      file: `deploy.${key}`,
      default: f.default,
      parse: (raw) => {
        const out = (f.schema as z.ZodType).safeParse(raw);
        if (!out.success) throw new Error(out.error.issues[0]?.message ?? 'invalid value');
        return out.data;
      },
    });
    config[key] = r.value;
    origins[key] = r;
  }
  return { config: config as DeployConfig, origins: origins as Record<DeployKey, Resolved<unknown>> };
}

/** The config tests and golden files use: every default, nothing from the environment. */
export function defaultDeployConfig(overrides: Partial<DeployConfig> = {}): DeployConfig {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(FIELDS) as DeployKey[]) out[key] = FIELDS[key].default;
  return { ...(out as DeployConfig), ...overrides };
}

/**
 * Why `model` must not go to a remote target (a GPU instance, an Auto Scaling group, a cluster),
 * or undefined when it may: production means a hub preset (src/core/model-presets.ts), which the
 * instance can fetch and serve with the right pooling; the built-in bundles are word-vector and
 * tiny test models for rehearsals. `render`, `up` (remote) and `provision` call this.
 */
export function demoModelProblem(model: string, allowDemo: boolean): string | undefined {
  if (findPreset(model)) return undefined;
  const presets = MODEL_PRESETS.map((p) => p.repoId).join(', ');
  if (model.includes('/')) return `${model} is not a hub preset embedctl can fetch on the instance (known: ${presets})`;
  if (allowDemo) return undefined;
  return `${JSON.stringify(model)} is a built-in demo model (100-dimension word vectors or a test model), not one to serve users with; use a preset (${presets}) or pass --allow-demo-model`;
}


/** demoModelProblem as a usage error naming --model, for commands that refuse to deploy it. */
export function requireProductionModel(config: Pick<DeployConfig, 'model' | 'allowDemoModel'>, field = '--model'): void {
  const problem = demoModelProblem(config.model, Boolean(config.allowDemoModel));
  if (problem) {
    throw new UsageError(problem, {
      field,
      hint: `e.g. --model BAAI/bge-base-en-v1.5 (in place of OpenAI text-embedding-3-small) or --model jinaai/jina-embeddings-v3 (the same model as Jina's API; CC BY-NC); see docs/runbook.md`,
    });
  }
}

/**
 * For `render` and `up` to a remote engine: refuse a demo model (naming where it came from: the
 * flag when it was the default, else its env var or embedctl.yaml key); a dry run deploys
 * nothing, so it only warns.
 */
export function guardDeployModel(r: Pick<ResolvedDeploy, 'config' | 'origins'>, dryRun: boolean | undefined, warn: (m: string) => void, command: string): void {
  const origin = r.origins.model.origin;
  if (!dryRun) return requireProductionModel(r.config, origin === 'default' ? '--model' : origin);
  const problem = demoModelProblem(r.config.model, Boolean(r.config.allowDemoModel));
  if (problem) warn(`${command} without --dry-run refuses this: ${problem}`);
}
