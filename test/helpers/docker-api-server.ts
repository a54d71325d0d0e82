import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A small stand-in for the Docker Engine API on a UNIX socket: the paths dockerode uses to pull,
 * create, start, inspect, list, stop and remove containers. It records every create body so tests
 * can assert what a real engine would have been asked to run.
 */
export interface FakeContainer {
  id: string;
  name: string;
  body: Record<string, unknown>;
  labels: Record<string, string>;
  running: boolean;
  inspects: number;
  removed: boolean;
}

export interface FakeDockerOptions {
  /** Inspections in "starting" before a container reports healthy (default 2). */
  healthyAfter?: number;
  /** Report "unhealthy" instead of healthy. */
  unhealthy?: boolean;
  /** Containers carry no healthcheck state at all. */
  noHealth?: boolean;
  /** The pull stream ends with this error line (as the engine does for auth or unknown tags). */
  pullError?: string;
  /** Start fails with this message (e.g. no NVIDIA runtime). */
  startError?: string;
}

export interface FakeDocker {
  socketPath: string;
  dockerHost: string;
  containers: FakeContainer[];
  requests: string[];
  pulls: string[];
  close(): Promise<void>;
}

export async function startFakeDocker(opts: FakeDockerOptions = {}): Promise<FakeDocker> {
  const dir = mkdtempSync(join(tmpdir(), 'embedctl-docker-'));
  const socketPath = join(dir, 'docker.sock');
  const containers: FakeContainer[] = [];
  const requests: string[] = [];
  const pulls: string[] = [];
  let seq = 0;

  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const find = (ref: string) => containers.find((c) => !c.removed && (c.id === ref || c.id.startsWith(ref) || c.name === ref));
  const readBody = (req: IncomingMessage) =>
    new Promise<string>((resolve) => {
      let s = '';
      req.on('data', (d) => (s += d));
      req.on('end', () => resolve(s));
    });

  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://docker');
    // dockerode may prefix a version (/v1.43/...); the routes below ignore it.
    const path = url.pathname.replace(/^\/v\d+\.\d+/, '');
    requests.push(`${req.method} ${path}`);
    const body = await readBody(req);

    if (path === '/_ping') {
      res.writeHead(200, { 'content-type': 'text/plain', 'api-version': '1.43' });
      return res.end('OK');
    }
    if (path === '/version') return json(res, 200, { Version: '27.0.0-fake', ApiVersion: '1.43', Os: 'linux', Arch: 'amd64' });

    if (req.method === 'POST' && path === '/images/create') {
      const image = `${url.searchParams.get('fromImage')}:${url.searchParams.get('tag') ?? 'latest'}`;
      pulls.push(image);
      res.writeHead(200, { 'content-type': 'application/json' });
      const lines: unknown[] = [{ status: `Pulling from ${url.searchParams.get('fromImage')}`, id: 'latest' }];
      if (opts.pullError) {
        lines.push({ errorDetail: { message: opts.pullError }, error: opts.pullError });
      } else {
        for (const id of ['aaa', 'bbb']) {
          for (const cur of [0, 50, 100]) lines.push({ status: 'Downloading', id, progressDetail: { current: cur * 1e6, total: 100e6 } });
          lines.push({ status: 'Pull complete', id, progressDetail: {} });
        }
        lines.push({ status: 'Digest: sha256:0000' }, { status: `Status: Downloaded newer image for ${image}` });
      }
      // Written in pieces, as the engine streams them.
      for (const l of lines) res.write(`${JSON.stringify(l)}\r\n`);
      return res.end();
    }

    if (req.method === 'POST' && path === '/containers/create') {
      const name = url.searchParams.get('name') ?? `c${seq}`;
      if (find(name)) return json(res, 409, { message: `Conflict. The container name "/${name}" is already in use` });
      const parsed = JSON.parse(body || '{}') as Record<string, unknown>;
      const c: FakeContainer = {
        id: `${(++seq).toString(16).padStart(4, '0')}${'f'.repeat(60)}`,
        name,
        body: parsed,
        labels: (parsed.Labels as Record<string, string>) ?? {},
        running: false,
        inspects: 0,
        removed: false,
      };
      containers.push(c);
      return json(res, 201, { Id: c.id, Warnings: [] });
    }

    if (req.method === 'GET' && path === '/containers/json') {
      const filters = JSON.parse(url.searchParams.get('filters') ?? '{}') as { label?: string[] };
      const all = url.searchParams.get('all') === 'true' || url.searchParams.get('all') === '1';
      const list = containers.filter(
        (c) =>
          !c.removed &&
          (all || c.running) &&
          (filters.label ?? []).every((l) => {
            const [k, v] = l.split('=');
            return v === undefined ? k! in c.labels : c.labels[k!] === v;
          }),
      );
      return json(
        res,
        200,
        list.map((c) => ({ Id: c.id, Names: [`/${c.name}`], Image: c.body.Image, Labels: c.labels, State: c.running ? 'running' : 'exited' })),
      );
    }

    const m = /^\/containers\/([^/]+)(\/[a-z]+)?$/.exec(path);
    const c = m ? find(decodeURIComponent(m[1]!)) : undefined;
    if (m && !c) return json(res, 404, { message: `No such container: ${m[1]}` });
    if (m && c) {
      const op = m[2] ?? '';
      if (req.method === 'POST' && op === '/start') {
        if (opts.startError) return json(res, 500, { message: opts.startError });
        if (c.running) {
          res.writeHead(304);
          return res.end();
        }
        c.running = true;
        res.writeHead(204);
        return res.end();
      }
      if (req.method === 'POST' && op === '/stop') {
        if (!c.running) {
          res.writeHead(304);
          return res.end();
        }
        c.running = false;
        res.writeHead(204);
        return res.end();
      }
      if (req.method === 'DELETE' && op === '') {
        if (c.running && url.searchParams.get('force') !== 'true') return json(res, 409, { message: 'container is running' });
        c.removed = true;
        c.running = false;
        res.writeHead(204);
        return res.end();
      }
      if (req.method === 'GET' && op === '/json') {
        c.inspects++;
        const health = opts.noHealth
          ? undefined
          : {
              Status: !c.running ? 'starting' : opts.unhealthy ? 'unhealthy' : c.inspects > (opts.healthyAfter ?? 2) ? 'healthy' : 'starting',
              FailingStreak: 0,
              Log: [],
            };
        return json(res, 200, {
          Id: c.id,
          Name: `/${c.name}`,
          Config: { Image: c.body.Image, Labels: c.labels },
          State: { Status: c.running ? 'running' : 'created', Running: c.running, ExitCode: 0, ...(health ? { Health: health } : {}) },
        });
      }
    }
    json(res, 404, { message: `fake docker: no route for ${req.method} ${path}` });
  });

  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    socketPath,
    dockerHost: `unix://${socketPath}`,
    containers,
    requests,
    pulls,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          rmSync(dir, { recursive: true, force: true });
          resolve();
        });
      }),
  };
}
