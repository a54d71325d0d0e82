import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Service } from 'kubernetes-models/v1/Service';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { defaultDeployConfig, type DeployConfig } from '../src/core/deploy-config.js';
import { renderDeploy, renderUserData } from '../src/core/render.js';
import { runCli } from './helpers/cli.js';
import { tempDir } from './helpers/gateway.js';
import { startRedis } from './helpers/redis-server.js';
import { packedFile } from './helpers/user-data.js';

/** Issue 17: the rendered deploy files gain a Redis the runtimes share when one is chosen. */

const tmp = tempDir('embedctl-render-redis-');
afterAll(() => tmp.cleanup());

function rendered(o: Partial<DeployConfig>) {
  const files = renderDeploy(defaultDeployConfig(o));
  const get = (p: string) => files.find((f) => f.path === p)?.content;
  return { files, get, compose: parseYaml(get('docker-compose.yml')!) };
}

describe('render --cache-redis', () => {
  it('bundled: a compose Redis with persistence off, a memory cap with LRU eviction, a healthcheck, wired into every runtime', () => {
    const { compose } = rendered({ replicas: 2, maxReplicas: 4, cacheRedis: 'bundled', cacheSize: '10000', redisMaxMemory: '1gb' });
    const redis = compose.services.redis;
    expect(redis.image).toBe('redis:7.4-alpine');
    const cmd: string[] = redis.command;
    const arg = (flag: string) => cmd[cmd.indexOf(flag) + 1];
    expect(cmd[0]).toBe('redis-server');
    expect(arg('--save')).toBe('');
    expect(arg('--appendonly')).toBe('no');
    expect(arg('--maxmemory')).toBe('1gb');
    expect(arg('--maxmemory-policy')).toBe('allkeys-lru');
    expect(redis.healthcheck.test).toEqual(['CMD', 'redis-cli', 'ping']);
    // Data cap plus room for Redis's own overhead; never reachable from outside the project network.
    expect(redis.mem_limit).toBe('1280m');
    expect(redis.ports).toBeUndefined();
    expect(redis.network_mode).toBeUndefined();
    for (const name of ['runtime-1', 'runtime-2']) {
      const s = compose.services[name];
      expect(s.environment.EMBEDCTL_CACHE_REDIS).toBe('redis://redis:6379/0');
      expect(s.environment.EMBEDCTL_CACHE_SIZE).toBe('10000');
      // Redis down must not keep a runtime from starting: the cache only misses then.
      expect(s.depends_on).toEqual({ redis: { condition: 'service_started' } });
    }
  });

  it('the rendered Redis command line runs on a real redis-server and reads back as configured', async () => {
    const { compose } = rendered({ cacheRedis: 'bundled', redisMaxMemory: '64mb' });
    const r = await startRedis({ args: (compose.services.redis.command as string[]).slice(1) });
    const c = new Redis(r.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await c.connect();
      const cfg = async (k: string) => ((await c.config('GET', k)) as string[])[1];
      expect(await cfg('save')).toBe('');
      expect(await cfg('appendonly')).toBe('no');
      expect(await cfg('maxmemory')).toBe(String(64 * 1024 * 1024));
      expect(await cfg('maxmemory-policy')).toBe('allkeys-lru');
      // The healthcheck's own command, against this server.
      const [, cli, ping] = compose.services.redis.healthcheck.test as string[];
      expect(execFileSync(cli!, ['-p', String(r.port), ping!], { encoding: 'utf8' }).trim()).toBe('PONG');
    } finally {
      c.disconnect();
      await r.stop();
    }
  });

  it('bundled on Kubernetes: a Redis Deployment, Service and NetworkPolicy valid against the API schemas, the ConfigMap points at it', () => {
    const { files, get } = rendered({ cacheRedis: 'bundled', cacheSize: '256MB', namespace: 'search' });
    expect(files.map((f) => f.path)).toContain('k8s/redis.yaml');
    const objs = parseAllDocuments(get('k8s/redis.yaml')!).map((d) => d.toJS());
    expect(objs.map((o) => o.kind)).toEqual(['Deployment', 'Service', 'NetworkPolicy']);
    const errors: string[] = [];
    for (const [o, Model] of objs.map((o, i) => [o, [Deployment, Service, NetworkPolicy][i]!] as const)) {
      try {
        new (Model as new (d: never) => { validate(): void })(o as never).validate();
      } catch (err) {
        errors.push(`${o.kind}: ${(err as Error).message}`);
      }
    }
    expect(errors).toEqual([]);
    const [dep, svc, np] = objs;
    const args: string[] = dep.spec.template.spec.containers[0].args;
    expect(args.slice(args.indexOf('--save'), args.indexOf('--save') + 4)).toEqual(['--save', '', '--appendonly', 'no']);
    expect(args).toContain('allkeys-lru');
    expect(dep.spec.template.spec.containers[0].readinessProbe.exec.command).toEqual(['redis-cli', 'ping']);
    expect(svc.spec.selector).toEqual(dep.spec.selector.matchLabels);
    expect(svc.metadata.namespace).toBe('search');
    expect(np.spec.ingress[0].from[0].podSelector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'embedctl-runtime' });
    const cm = parseYaml(get('k8s/configmap.yaml')!);
    expect(cm.data.EMBEDCTL_CACHE_REDIS).toBe('redis://embedctl-redis:6379/0');
    expect(cm.data.EMBEDCTL_CACHE_SIZE).toBe('256MB');
  });

  it('an external Redis URL: runtimes use it, no Redis is rendered; none chosen: no Redis and no cache settings', () => {
    const ext = rendered({ cacheRedis: 'redis://cache.internal:6379/2' });
    expect(ext.compose.services.redis).toBeUndefined();
    expect(ext.compose.services['runtime-1'].environment.EMBEDCTL_CACHE_REDIS).toBe('redis://cache.internal:6379/2');
    expect(ext.files.map((f) => f.path)).not.toContain('k8s/redis.yaml');
    expect(parseYaml(ext.get('k8s/configmap.yaml')!).data.EMBEDCTL_CACHE_REDIS).toBe('redis://cache.internal:6379/2');
    const none = rendered({});
    expect(none.compose.services.redis).toBeUndefined();
    expect(JSON.stringify(none.compose)).not.toContain('EMBEDCTL_CACHE');
    expect(none.get('k8s/configmap.yaml')).not.toContain('EMBEDCTL_CACHE');
    // User data carries the same compose file (Redis included) to the instance.
    expect(packedFile(renderUserData(defaultDeployConfig({ cacheRedis: 'bundled' })), 'EMBEDCTL_COMPOSE_EOF')).toContain('"--maxmemory-policy", "allkeys-lru"');
  });

  it('through the CLI: bad values are one line naming the flag, exit 2, nothing written', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--cache-redis', 'memcached://x:1'], /--cache-redis.*bundled.*redis:\/\//],
      [['--cache-redis', 'redis://user:s3cr3tpw@cache:6379'], /--cache-redis.*credentials/],
      [['--redis-max-memory', '1.5g'], /--redis-max-memory.*512mb/],
      [['--cache-size', 'lots'], /--cache-size/],
    ];
    for (const [args, re] of cases) {
      const cwd = join(tmp.dir, `bad${cases.findIndex((c) => c[0] === args)}`);
      mkdirSync(cwd, { recursive: true });
      const r = await runCli(['render', ...args, '--out', 'deploy'], { cwd });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n')[0]).toMatch(re);
      expect(r.stderr).not.toContain('s3cr3tpw');
      expect(existsSync(join(cwd, 'deploy'))).toBe(false);
    }
    const cwd = join(tmp.dir, 'ok');
    mkdirSync(cwd, { recursive: true });
    const ok = await runCli(['render', '--allow-demo-model', '--cache-redis', 'bundled', '--cache-size', '10000', '--out', 'deploy'], { cwd });
    expect(ok.code, ok.stderr).toBe(0);
    expect(existsSync(join(cwd, 'deploy', 'k8s', 'redis.yaml'))).toBe(true);
  });
});
