import { readFileSync } from 'node:fs';
import Docker from 'dockerode';
import { ExternalError, Interrupted, UsageError } from '../errors.js';

/**
 * Deploys the runtime image onto a Docker engine (the instance's, over ssh://) with dockerode:
 * pull with progress, create with a GPU device request, healthcheck, restart policy, log rotation
 * and memory limit, start, wait healthy. Used by `embedctl up --docker-host ...`.
 */

export const MANAGED_LABEL = 'embedctl.managed';
const ROLE_LABEL = 'embedctl.role';
const REPLICA_LABEL = 'embedctl.replica';
const DEFAULT_CONTAINER_PORT = 8080;
const DEFAULT_HOST_PORT = 8081;

export interface DockerConnectOptions {
  /** ssh://user@host[:port] | unix:///path | tcp://host:2375 */
  dockerHost: string;
  /** SSH private key for ssh:// (default: the ssh agent at SSH_AUTH_SOCK). */
  sshKeyPath?: string;
  env?: Record<string, string | undefined>;
}

export interface DeployOptions extends DockerConnectOptions {
  image: string;
  replicas: number;
  /** Model name or path inside the image (EMBEDCTL_MODEL). */
  model?: string;
  /**
   * Environment for the runtime containers (e.g. EMBEDCTL_API_KEY); also where SSH_AUTH_SOCK is
   * read for ssh://. Host-only variables (HOST_ONLY_ENV) never reach the containers.
   */
  env?: Record<string, string | undefined>;
  /** Request NVIDIA GPUs. */
  gpu: boolean;
  /** GPUs per replica (default: every GPU, shared by the replicas). */
  gpuCount?: number;
  /** Port the runtime listens on inside the container (default 8080). */
  containerPort?: number;
  /**
   * First host port; replica i (0-based) gets hostPort + i. Default 8081 on 127.0.0.1: the layout
   * of `render` (runtime-N on 127.0.0.1:8080+N behind nginx on the host network).
   */
  hostPort?: number;
  /** Address the host ports bind to (default 127.0.0.1: only the gateway is published). */
  hostIp?: string;
  /** Memory limit per replica in bytes (default 12 GiB, render's memoryLimit). */
  memoryBytes?: number;
  /** How long to wait for every replica to report healthy (default 10 minutes: model load + warm-up). */
  healthTimeoutMs?: number;
  /** Interval between health polls (default 2 s). */
  pollMs?: number;
  /** Skip the pull when the image is already on the engine. */
  pull?: boolean;
  onProgress?: (msg: string) => void;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  signal?: AbortSignal;
}

/** Variables that describe this machine, not the container: never copied into it. */
const HOST_ONLY_ENV = new Set(['SSH_AUTH_SOCK', 'SSH_AGENT_PID', 'DOCKER_HOST', 'DOCKER_CERT_PATH', 'DOCKER_TLS_VERIFY', 'HOME', 'PATH', 'USER']);

export interface DeployedContainer {
  id: string;
  name: string;
  healthy: boolean;
  hostPort: number;
}

export function dockerConnectOptions(o: DockerConnectOptions): Docker.DockerOptions {
  const raw = o.dockerHost.trim();
  if (raw.startsWith('/')) return { socketPath: raw };
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new UsageError(`${JSON.stringify(raw)} is not a Docker host`, {
      field: '--docker-host',
      hint: 'use ssh://ubuntu@<host>, unix:///var/run/docker.sock or tcp://<host>:2375',
    });
  }
  switch (u.protocol) {
    case 'unix:':
      return { socketPath: u.pathname || '/var/run/docker.sock' };
    case 'tcp:':
    case 'http:':
      return { host: u.hostname, port: Number(u.port || 2375), protocol: 'http' };
    case 'ssh:': {
      const sshOptions: Record<string, unknown> = {};
      const agent = o.env?.SSH_AUTH_SOCK;
      if (agent) sshOptions.agent = agent;
      if (o.sshKeyPath) {
        try {
          sshOptions.privateKey = readFileSync(o.sshKeyPath);
        } catch (err) {
          throw new UsageError(`cannot read ${o.sshKeyPath}: ${(err as Error).message}`, { field: '--ssh-key' });
        }
      }
      if (!agent && !o.sshKeyPath) {
        throw new UsageError('ssh:// needs a running ssh-agent (SSH_AUTH_SOCK) or a key file', {
          field: '--docker-host',
          hint: 'run `ssh-add <key>` first, or pass --ssh-key <path>',
        });
      }
      return {
        protocol: 'ssh',
        host: u.hostname,
        port: Number(u.port || 22),
        username: decodeURIComponent(u.username || 'ubuntu'),
        sshOptions,
      } as Docker.DockerOptions;
    }
    default:
      throw new UsageError(`unsupported scheme ${u.protocol}//`, {
        field: '--docker-host',
        hint: 'use ssh://, unix:// or tcp://',
      });
  }
}

async function connect(o: DockerConnectOptions): Promise<Docker> {
  const docker = new Docker(dockerConnectOptions(o));
  try {
    await docker.ping();
  } catch (err) {
    throw new ExternalError('Docker', `cannot reach the engine at ${o.dockerHost}: ${(err as Error).message}`, {
      cause: err,
      hint: o.dockerHost.startsWith('ssh://')
        ? 'check that `ssh <user>@<host> docker version` works (key, security group port 22, user in the docker group)'
        : 'check that the Docker engine runs and the address is right',
    });
  }
  return docker;
}

function fail(what: string, err: unknown): never {
  const e = err as { statusCode?: number; json?: { message?: string }; message?: string };
  const msg = e.json?.message ?? e.message ?? String(err);
  throw new ExternalError('Docker', `${what}: ${msg}`, { cause: err });
}

/** Pulls with a progress line at each 10% of bytes (per-layer byte counts summed). */
async function pullImage(docker: Docker, image: string, onProgress?: (msg: string) => void): Promise<void> {
  let stream: NodeJS.ReadableStream;
  try {
    stream = (await docker.pull(image)) as NodeJS.ReadableStream;
  } catch (err) {
    fail(`pulling ${image}`, err);
  }
  const layers = new Map<string, { current: number; total: number }>();
  let lastDecile = -1;
  const errors: string[] = [];
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (err: Error | null) => (err ? reject(err) : resolve()),
      (ev: { id?: string; status?: string; error?: string; progressDetail?: { current?: number; total?: number } }) => {
        if (ev.error) errors.push(ev.error);
        if (ev.id && ev.progressDetail?.total) {
          layers.set(ev.id, { current: ev.progressDetail.current ?? 0, total: ev.progressDetail.total });
        } else if (ev.id && /Pull complete|Already exists|Download complete/.test(ev.status ?? '')) {
          const l = layers.get(ev.id);
          if (l) l.current = l.total;
        }
        let cur = 0;
        let tot = 0;
        for (const l of layers.values()) {
          cur += l.current;
          tot += l.total;
        }
        if (tot > 0) {
          const decile = Math.floor((cur / tot) * 10);
          if (decile !== lastDecile) {
            lastDecile = decile;
            onProgress?.(`pulling ${image}: ${Math.round((cur / tot) * 100)}% of ${(tot / 1e6).toFixed(0)} MB (${layers.size} layers)`);
          }
        }
        if (ev.status?.startsWith('Status:') || ev.status?.startsWith('Digest:')) onProgress?.(`pulling ${image}: ${ev.status}`);
      },
    );
  }).catch((err) => fail(`pulling ${image}`, err));
  // The engine reports pull failures (auth, unknown tag) inside a 200 stream, not as a status.
  if (errors.length) {
    throw new ExternalError('Docker', `pulling ${image}: ${errors[0]}`, {
      hint: 'check the image name and tag, and that the engine is logged in to the registry (`docker login`)',
    });
  }
}

export function containerName(i: number): string {
  return `embedctl-runtime-${i + 1}`;
}

/** The create body; exported so its shape is reviewable and testable on its own. */
export function runtimeContainerSpec(o: DeployOptions, i: number): Docker.ContainerCreateOptions {
  const hostPort = (o.hostPort ?? DEFAULT_HOST_PORT) + i;
  const CONTAINER_PORT = o.containerPort ?? DEFAULT_CONTAINER_PORT;
  const env = { EMBEDCTL_PORT: String(CONTAINER_PORT), EMBEDCTL_HOST: '0.0.0.0', ...(o.model ? { EMBEDCTL_MODEL: o.model } : {}), ...o.env };
  const sec = 1_000_000_000; // Docker API durations are nanoseconds.
  return {
    name: containerName(i),
    Image: o.image,
    Env: Object.entries(env)
      .filter(([k, v]) => v !== undefined && !HOST_ONLY_ENV.has(k))
      .map(([k, v]) => `${k}=${v}`),
    Labels: { [MANAGED_LABEL]: 'true', [ROLE_LABEL]: 'runtime', [REPLICA_LABEL]: String(i + 1), 'embedctl.image': o.image },
    ExposedPorts: { [`${CONTAINER_PORT}/tcp`]: {} },
    // node is in the image for sure (curl is not): /ready is 200 once the model is loaded and warm.
    Healthcheck: {
      Test: ['CMD', 'node', '-e', `fetch('http://127.0.0.1:${CONTAINER_PORT}/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))`],
      Interval: 10 * sec,
      Timeout: 3 * sec,
      Retries: 3,
      StartPeriod: 120 * sec,
    },
    StopTimeout: 30,
    HostConfig: {
      ...(o.gpu ? { DeviceRequests: [{ Driver: 'nvidia', Count: o.gpuCount ?? -1, Capabilities: [['gpu']] }] } : {}),
      RestartPolicy: { Name: 'unless-stopped' },
      LogConfig: { Type: 'json-file', Config: { 'max-size': '50m', 'max-file': '5' } },
      Memory: o.memoryBytes ?? 12 * 1024 ** 3,
      PortBindings: { [`${CONTAINER_PORT}/tcp`]: [{ HostIp: o.hostIp ?? '127.0.0.1', HostPort: String(hostPort) }] },
      // Tokenizer threads and onnxruntime's arena like a roomier /dev/shm than Docker's 64 MB.
      ShmSize: 1024 ** 3,
    },
  };
}

async function removeByName(docker: Docker, name: string): Promise<boolean> {
  const c = docker.getContainer(name);
  try {
    await c.inspect();
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return false;
    fail(`inspecting ${name}`, err);
  }
  try {
    await c.stop({ t: 30 });
  } catch (err) {
    const code = (err as { statusCode?: number }).statusCode;
    if (code !== 304 && code !== 404) fail(`stopping ${name}`, err);
  }
  try {
    await c.remove({ force: true });
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 404) fail(`removing ${name}`, err);
  }
  return true;
}

const realSleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), reject(signal.reason)), { once: true });
  });

export async function deployWithDocker(o: DeployOptions): Promise<{ containers: DeployedContainer[] }> {
  if (!Number.isInteger(o.replicas) || o.replicas < 1) throw new UsageError(`expected a whole number >= 1, got ${o.replicas}`, { field: '--replicas' });
  const say = o.onProgress ?? (() => {});
  const sleep = o.sleep ?? realSleep;
  const docker = await connect(o);
  if (o.pull !== false) await pullImage(docker, o.image, say);

  const created: Array<{ id: string; name: string; hostPort: number }> = [];
  for (let i = 0; i < o.replicas; i++) {
    const spec = runtimeContainerSpec(o, i);
    const name = spec.name!;
    if (await removeByName(docker, name)) say(`${name}: replaced the previous container`);
    let c: Docker.Container;
    try {
      c = await docker.createContainer(spec);
    } catch (err) {
      fail(`creating ${name}`, err);
    }
    try {
      await c.start();
    } catch (err) {
      const msg = (err as { json?: { message?: string } }).json?.message ?? (err as Error).message;
      throw new ExternalError('Docker', `starting ${name}: ${msg}`, {
        cause: err,
        hint: /nvidia|gpu|device driver/i.test(msg) ? 'the engine has no NVIDIA runtime: install nvidia-container-toolkit (the Deep Learning AMI has it)' : undefined,
      });
    }
    const hostPort = (o.hostPort ?? DEFAULT_HOST_PORT) + i;
    say(`${name}: started (${c.id.slice(0, 12)}), host port ${hostPort}`);
    created.push({ id: c.id, name, hostPort });
  }

  const timeoutMs = o.healthTimeoutMs ?? 10 * 60_000;
  const pollMs = o.pollMs ?? 2_000;
  const healthy = new Set<string>();
  let waited = 0;
  const last = new Map<string, string>();
  for (;;) {
    for (const c of created) {
      if (healthy.has(c.id)) continue;
      let info: Docker.ContainerInspectInfo;
      try {
        info = await docker.getContainer(c.id).inspect();
      } catch (err) {
        fail(`inspecting ${c.name}`, err);
      }
      // Under the restart policy an engine restarts a runtime that exits and resets its health to
      // "starting" on each start (moby initHealthMonitor), so a crash loop never reads "unhealthy"
      // or "exited": only RestartCount tells. Stop it (not remove: `docker logs` stays readable),
      // or unless-stopped keeps it looping on the GPU, across reboots too.
      if ((info.RestartCount ?? 0) > 0 || info.State.Restarting) {
        await docker
          .getContainer(c.id)
          .stop({ t: 10 })
          .catch(() => {});
        const code = info.State.ExitCode ? `, last exit code ${info.State.ExitCode}` : '';
        throw new ExternalError('Docker', `${c.name} exited while starting and was restarted ${info.RestartCount ?? 0} time(s)${code}; stopped it`, {
          hint: `look at its logs: docker logs ${c.name}`,
        });
      }
      const status = info.State.Health?.Status ?? (info.State.Running ? 'running (no healthcheck)' : info.State.Status);
      if (last.get(c.id) !== status) {
        say(`${c.name}: ${status}`);
        last.set(c.id, status);
      }
      if (status === 'healthy' || status === 'running (no healthcheck)') healthy.add(c.id);
      else if (status === 'unhealthy' || ['exited', 'dead'].includes(info.State.Status)) {
        throw new ExternalError('Docker', `${c.name} is ${status} (exit code ${info.State.ExitCode ?? '?'})`, {
          hint: `look at its logs: docker logs ${c.name}`,
        });
      }
    }
    if (healthy.size === created.length) break;
    if (waited >= timeoutMs) {
      throw new ExternalError('Docker', `${created.length - healthy.size} container(s) not healthy after ${Math.round(timeoutMs / 1000)} s`, {
        hint: `look at their logs: docker logs ${created.find((c) => !healthy.has(c.id))!.name}`,
      });
    }
    try {
      await sleep(pollMs, o.signal);
    } catch (err) {
      if (o.signal?.aborted) throw new Interrupted('interrupted while waiting for the containers to be healthy; they keep running');
      throw err;
    }
    waited += pollMs;
  }
  return { containers: created.map((c) => ({ ...c, healthy: true })) };
}

/** Stops (30 s for the runtime to drain) and removes every embedctl-labelled container. */
export async function removeWithDocker(o: DockerConnectOptions & { onProgress?: (msg: string) => void }): Promise<{ removed: string[] }> {
  const docker = await connect(o);
  let list: Docker.ContainerInfo[];
  try {
    list = await docker.listContainers({ all: true, filters: { label: [`${MANAGED_LABEL}=true`] } });
  } catch (err) {
    fail('listing containers', err);
  }
  const removed: string[] = [];
  for (const info of list) {
    const name = (info.Names?.[0] ?? info.Id).replace(/^\//, '');
    await removeByName(docker, info.Id);
    o.onProgress?.(`${name}: removed`);
    removed.push(name);
  }
  return { removed };
}
