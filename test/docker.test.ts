import { afterEach, describe, expect, it } from 'vitest';
import { deployWithDocker, dockerConnectOptions, removeWithDocker } from '../src/adapters/docker.js';
import { ExternalError, UsageError } from '../src/errors.js';
import { startFakeDocker, type FakeDocker } from './helpers/docker-api-server.js';

let fake: FakeDocker | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

const noSleep = async () => {};

describe('deployWithDocker against a Docker Engine API on a unix socket', () => {
  it('pulls with progress, creates GPU containers with healthcheck, restart policy, labels, memory; waits healthy', async () => {
    fake = await startFakeDocker({ healthyAfter: 2 });
    const progress: string[] = [];
    const sleeps: number[] = [];
    const out = await deployWithDocker({
      dockerHost: fake.dockerHost,
      image: 'ghcr.io/acme/embedctl-runtime:1.2.3',
      replicas: 2,
      model: 'default',
      env: { EMBEDCTL_API_KEY: 'k-123', SSH_AUTH_SOCK: '/tmp/agent.sock', UNSET: undefined },
      gpu: true,
      memoryBytes: 4 * 1024 ** 3,
      onProgress: (m) => progress.push(m),
      sleep: async (ms) => void sleeps.push(ms),
    });

    expect(fake.pulls).toEqual(['ghcr.io/acme/embedctl-runtime:1.2.3']);
    expect(progress.some((p) => /pulling .*: 100% of 200 MB \(2 layers\)/.test(p))).toBe(true);
    expect(progress.some((p) => /Status: Downloaded newer image/.test(p))).toBe(true);

    expect(fake.containers.map((c) => c.name)).toEqual(['embedctl-runtime-1', 'embedctl-runtime-2']);
    const body = fake.containers[0]!.body as Record<string, any>;
    expect(body.Image).toBe('ghcr.io/acme/embedctl-runtime:1.2.3');
    expect(body.HostConfig.DeviceRequests).toEqual([{ Driver: 'nvidia', Count: -1, Capabilities: [['gpu']] }]);
    expect(body.HostConfig.RestartPolicy).toEqual({ Name: 'unless-stopped' });
    expect(body.HostConfig.LogConfig).toEqual({ Type: 'json-file', Config: { 'max-size': '50m', 'max-file': '5' } });
    expect(body.HostConfig.Memory).toBe(4 * 1024 ** 3);
    expect(body.HostConfig.PortBindings).toEqual({ '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: '8081' }] });
    expect((fake.containers[1]!.body as any).HostConfig.PortBindings['8080/tcp'][0].HostPort).toBe('8082');
    expect(body.Healthcheck.Test[0]).toBe('CMD');
    expect(body.Healthcheck.Test.join(' ')).toMatch(/\/ready/);
    // Durations in nanoseconds, as the Engine API wants them.
    expect(body.Healthcheck).toMatchObject({ Interval: 10e9, Timeout: 3e9, Retries: 3, StartPeriod: 120e9 });
    expect(body.Labels).toMatchObject({ 'embedctl.managed': 'true', 'embedctl.role': 'runtime', 'embedctl.replica': '1' });
    expect(body.Env).toEqual(expect.arrayContaining(['EMBEDCTL_MODEL=default', 'EMBEDCTL_API_KEY=k-123', 'EMBEDCTL_PORT=8080']));
    // The ssh agent socket is this machine's, not the container's.
    expect(body.Env.some((e: string) => e.startsWith('SSH_AUTH_SOCK') || e.startsWith('UNSET'))).toBe(false);

    expect(fake.containers.every((c) => c.running)).toBe(true);
    expect(out.containers).toEqual([
      { id: fake.containers[0]!.id, name: 'embedctl-runtime-1', healthy: true, hostPort: 8081 },
      { id: fake.containers[1]!.id, name: 'embedctl-runtime-2', healthy: true, hostPort: 8082 },
    ]);
    // Two "starting" inspections each, then healthy: two sleeps of the poll interval.
    expect(sleeps).toEqual([2000, 2000]);
    expect(progress).toContain('embedctl-runtime-1: starting');
    expect(progress).toContain('embedctl-runtime-1: healthy');
  });

  it('without gpu there is no device request; a redeploy replaces the previous container of the same name', async () => {
    fake = await startFakeDocker({ healthyAfter: 0 });
    const o = { dockerHost: fake.dockerHost, image: 'embedctl-runtime:dev', replicas: 1, gpu: false, sleep: noSleep };
    await deployWithDocker({ ...o, gpu: true, gpuCount: 1, hostPort: 9001, hostIp: '0.0.0.0' });
    expect((fake.containers[0]!.body as any).HostConfig.DeviceRequests).toEqual([{ Driver: 'nvidia', Count: 1, Capabilities: [['gpu']] }]);
    expect((fake.containers[0]!.body as any).HostConfig.PortBindings['8080/tcp']).toEqual([{ HostIp: '0.0.0.0', HostPort: '9001' }]);
    const progress: string[] = [];
    await deployWithDocker({ ...o, gpu: false, onProgress: (m) => progress.push(m) });
    expect((fake.containers[1]!.body as any).HostConfig.DeviceRequests).toBeUndefined();
    expect(fake.containers.filter((c) => !c.removed)).toHaveLength(1);
    expect(fake.containers[0]!.removed).toBe(true);
    expect(progress).toContain('embedctl-runtime-1: replaced the previous container');
  });

  it('an unhealthy container is an ExternalError pointing at its logs', async () => {
    fake = await startFakeDocker({ unhealthy: true });
    const err = await deployWithDocker({ dockerHost: fake.dockerHost, image: 'x:1', replicas: 1, gpu: true, sleep: noSleep }).catch((e) => e);
    expect(err).toBeInstanceOf(ExternalError);
    expect(err.message).toMatch(/embedctl-runtime-1 is unhealthy/);
    expect(err.hint).toMatch(/docker logs embedctl-runtime-1/);
  });

  it('the health wait is bounded', async () => {
    fake = await startFakeDocker({ healthyAfter: 1e9 });
    const sleeps: number[] = [];
    const err = await deployWithDocker({
      dockerHost: fake.dockerHost,
      image: 'x:1',
      replicas: 1,
      gpu: true,
      healthTimeoutMs: 10_000,
      pollMs: 1_000,
      sleep: async (ms) => void sleeps.push(ms),
    }).catch((e) => e);
    expect(err.message).toMatch(/1 container\(s\) not healthy after 10 s/);
    expect(sleeps).toHaveLength(10);
  });

  it('a pull error inside the stream (HTTP 200) fails with a hint', async () => {
    fake = await startFakeDocker({ pullError: 'pull access denied for nope, repository does not exist' });
    const err = await deployWithDocker({ dockerHost: fake.dockerHost, image: 'nope:1', replicas: 1, gpu: true, sleep: noSleep }).catch((e) => e);
    expect(err.message).toMatch(/Docker: pulling nope:1: pull access denied/);
    expect(err.hint).toMatch(/docker login/);
    expect(fake.containers).toHaveLength(0);
  });

  it('a start failure about the NVIDIA runtime says to install the toolkit', async () => {
    fake = await startFakeDocker({ startError: 'could not select device driver "nvidia" with capabilities: [[gpu]]' });
    const err = await deployWithDocker({ dockerHost: fake.dockerHost, image: 'x:1', replicas: 1, gpu: true, sleep: noSleep }).catch((e) => e);
    expect(err.message).toMatch(/starting embedctl-runtime-1: could not select device driver/);
    expect(err.hint).toMatch(/nvidia-container-toolkit/);
  });

  it('an engine that is not there is one clear ExternalError', async () => {
    const err = await deployWithDocker({ dockerHost: 'unix:///nonexistent/docker.sock', image: 'x:1', replicas: 1, gpu: true }).catch((e) => e);
    expect(err).toBeInstanceOf(ExternalError);
    expect(err.message).toMatch(/cannot reach the engine at unix:\/\/\/nonexistent\/docker.sock/);
  });
});

describe('removeWithDocker', () => {
  it('stops and removes only embedctl-labelled containers', async () => {
    fake = await startFakeDocker({ healthyAfter: 0 });
    await deployWithDocker({ dockerHost: fake.dockerHost, image: 'x:1', replicas: 2, gpu: true, sleep: noSleep });
    // Someone else's container on the same engine.
    const { default: Docker } = await import('dockerode');
    const other = await new Docker({ socketPath: fake.socketPath }).createContainer({ name: 'postgres', Image: 'postgres:16', Labels: {} });
    await other.start();

    const progress: string[] = [];
    const out = await removeWithDocker({ dockerHost: fake.dockerHost, onProgress: (m) => progress.push(m) });
    expect(out.removed.sort()).toEqual(['embedctl-runtime-1', 'embedctl-runtime-2']);
    expect(fake.containers.find((c) => c.name === 'postgres')!.removed).toBe(false);
    expect(fake.containers.filter((c) => c.name.startsWith('embedctl')).every((c) => c.removed)).toBe(true);
    expect(fake.requests.filter((r) => /^POST \/containers\/.+\/stop$/.test(r))).toHaveLength(2);
    expect((await removeWithDocker({ dockerHost: fake.dockerHost })).removed).toEqual([]);
  });
});

describe('dockerConnectOptions', () => {
  it('parses the three schemes', () => {
    expect(dockerConnectOptions({ dockerHost: 'unix:///var/run/docker.sock' })).toEqual({ socketPath: '/var/run/docker.sock' });
    expect(dockerConnectOptions({ dockerHost: 'tcp://10.0.0.5:2375' })).toEqual({ host: '10.0.0.5', port: 2375, protocol: 'http' });
    expect(dockerConnectOptions({ dockerHost: 'ssh://ubuntu@ec2-1.example.com', env: { SSH_AUTH_SOCK: '/tmp/agent.sock' } })).toEqual({
      protocol: 'ssh',
      host: 'ec2-1.example.com',
      port: 22,
      username: 'ubuntu',
      sshOptions: { agent: '/tmp/agent.sock' },
    });
  });

  it('bad hosts are usage errors naming --docker-host', () => {
    for (const h of ['not a url', 'ftp://x', 'ssh://ubuntu@host']) {
      let err: unknown;
      try {
        dockerConnectOptions({ dockerHost: h, env: {} });
      } catch (e) {
        err = e;
      }
      expect(err, h).toBeInstanceOf(UsageError);
      expect((err as UsageError).field).toBe('--docker-host');
    }
  });
});
