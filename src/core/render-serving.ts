import { z } from 'zod';
import type { TemplateVars } from './template.js';

/**
 * The serving half of `render` (issue 17): the runtimes' response cache and a Redis they share
 * for it and for the per-caller rate limits. Merged into deploy-config's FIELDS like the gateway's
 * settings. Env names carry DEPLOY_ so a shell set up for `embedctl serve` (EMBEDCTL_CACHE_REDIS)
 * does not silently change what gets rendered for the instance.
 */

/** The value of --cache-redis that renders a Redis next to the runtimes (compose service, k8s Deployment). */
export const BUNDLED_REDIS = 'bundled';
/** The Service (k8s) / compose service name the runtimes reach the bundled Redis by. */
export const K8S_REDIS = 'embedctl-redis';
export const COMPOSE_REDIS = 'redis';
export const REDIS_PORT = 6379;

const cacheRedis = z.string().superRefine((v, ctx) => {
  if (v === '' || v === BUNDLED_REDIS) return;
  let u: URL | undefined;
  try {
    u = new URL(v);
  } catch {
    /* reported below */
  }
  if (!u || (u.protocol !== 'redis:' && u.protocol !== 'rediss:') || !u.hostname) {
    ctx.addIssue({ code: 'custom', message: `expected "${BUNDLED_REDIS}" (a Redis next to the runtimes) or a URL like redis://cache.internal:6379/0` });
  } else if (u.username || u.password) {
    // Rendered files are meant to be committed and are embedded in user data, which any process
    // on the instance can read from the metadata service.
    ctx.addIssue({ code: 'custom', message: 'must not carry credentials: rendered files and user data are not secret; use a Redis reachable without a password from the private subnet' });
  } else if (u.search || u.hash) {
    ctx.addIssue({ code: 'custom', message: 'must not have a query string or fragment' });
  }
});

const cacheSize = z.string().regex(/^$|^\d+$|^\d+(?:\.\d+)?(?:[kmg]i?b?)$/i, 'expected entries (10000) or a size (256MB, 1GiB)');
/** Redis's own size syntax (maxmemory): 512mb, 2gb. */
const redisMemory = z.string().regex(/^\d+(?:mb|gb)$/i, 'expected a size Redis understands, like 512mb or 2gb');
const image = z.string().regex(/^[a-z0-9][a-z0-9._/:@-]*$/i, 'expected an image reference like redis:7.4-alpine');

export const SERVING_FIELDS = {
  cacheSize: {
    flag: '--cache-size',
    env: 'EMBEDCTL_DEPLOY_CACHE_SIZE',
    default: '',
    schema: cacheSize,
    help: 'response cache inside each runtime: entries (10000) or bytes (256MB); empty = none',
  },
  cacheRedis: {
    flag: '--cache-redis',
    env: 'EMBEDCTL_DEPLOY_CACHE_REDIS',
    default: '',
    schema: cacheRedis,
    help: `Redis the runtimes share for the cache and per-key limits: "${BUNDLED_REDIS}" renders one (compose service, k8s Deployment), or a redis:// URL; empty = none`,
  },
  redisMaxMemory: {
    flag: '--redis-max-memory',
    env: 'EMBEDCTL_REDIS_MAX_MEMORY',
    default: '512mb',
    schema: redisMemory,
    help: 'memory cap of the bundled Redis (least recently used keys are evicted past it)',
  },
  redisImage: { flag: '--redis-image', env: 'EMBEDCTL_REDIS_IMAGE', default: 'redis:7.4-alpine', schema: image, help: 'image of the bundled Redis' },
} as const;

export const SERVING_FLAGS = Object.keys(SERVING_FIELDS) as Array<keyof typeof SERVING_FIELDS>;

export interface ServingDeploy {
  cacheSize?: string;
  cacheRedis?: string;
  redisMaxMemory?: string;
  redisImage?: string;
}

/** "512mb" -> bytes; the container's memory limit adds room for Redis's own overhead. */
function redisBytes(size: string): number {
  const m = /^(\d+)(mb|gb)$/i.exec(size)!;
  return Number(m[1]) * 1024 ** (m[2]!.toLowerCase() === 'gb' ? 3 : 2);
}

/** Container limit: the data cap plus a quarter (fragmentation, buffers), at least 64 MiB more. */
export function redisContainerMiB(size: string): number {
  const mib = redisBytes(size) / 1024 ** 2;
  return Math.ceil(mib + Math.max(64, mib / 4));
}

/** Where the runtimes find Redis in each target, or undefined when none is configured. */
export function redisUrlFor(c: ServingDeploy, target: 'compose' | 'k8s'): string | undefined {
  if (!c.cacheRedis) return undefined;
  if (c.cacheRedis !== BUNDLED_REDIS) return c.cacheRedis;
  return `redis://${target === 'compose' ? COMPOSE_REDIS : K8S_REDIS}:${REDIS_PORT}/0`;
}

/** Template values for the compose file and the k8s manifests. */
export function servingVars(c: ServingDeploy): TemplateVars {
  const bundled = c.cacheRedis === BUNDLED_REDIS;
  const maxMemory = c.redisMaxMemory ?? SERVING_FIELDS.redisMaxMemory.default;
  const runtimeEnv = (target: 'compose' | 'k8s'): TemplateVars[] => [
    ...(c.cacheSize ? [{ name: 'EMBEDCTL_CACHE_SIZE', value: c.cacheSize }] : []),
    ...(c.cacheRedis ? [{ name: 'EMBEDCTL_CACHE_REDIS', value: redisUrlFor(c, target)! }] : []),
  ];
  return {
    composeServingEnv: runtimeEnv('compose'),
    k8sServingEnv: runtimeEnv('k8s'),
    redis: bundled
      ? {
          redisImage: c.redisImage ?? SERVING_FIELDS.redisImage.default,
          redisMaxMemory: maxMemory.toLowerCase(),
          redisMemLimit: `${redisContainerMiB(maxMemory)}m`,
          redisMemLimitK8s: `${redisContainerMiB(maxMemory)}Mi`,
          redisPort: REDIS_PORT,
          redisService: COMPOSE_REDIS,
          redisK8sName: K8S_REDIS,
        }
      : false,
  };
}

/** Extra k8s manifests (only with a bundled Redis). */
export function servingK8sFiles(c: ServingDeploy): string[] {
  return c.cacheRedis === BUNDLED_REDIS ? ['redis.yaml'] : [];
}
