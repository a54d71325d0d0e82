import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { deployWithDocker } from '../src/adapters/docker.js';
import { ExternalError } from '../src/errors.js';
import { startFakeDocker, type FakeDocker } from './helpers/docker-api-server.js';

/**
 * What a real Docker Engine does that the shared stand-in does not model: how a runtime that exits
 * looks under a restart policy.
 */

let fake: FakeDocker | undefined;
let crashing: { server: Server; dir: string; stops: string[] } | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
  if (crashing) {
    const { server, dir } = crashing;
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
    crashing = undefined;
  }
});

/**
 * An engine whose one container exits at once and is restarted by its restart policy, as moby
 * does it: each restart resets the health to "starting" (initHealthMonitor), so the health never
 * reads "unhealthy" and the status never "exited"; only RestartCount and ExitCode move.
 */
async function startCrashLoopingEngine(): Promise<{ dockerHost: string; stops: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'embedctl-docker-crash-'));
  const socketPath = join(dir, 'docker.sock');
  const stops: string[] = [];
  let inspects = 0;
  const id = `c0de${'f'.repeat(60)}`;
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://docker').pathname.replace(/^\/v\d+\.\d+/, '');
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    req.resume();
    req.on('end', () => {
      if (path === '/_ping') {
        res.writeHead(200, { 'content-type': 'text/plain', 'api-version': '1.43' });
        return res.end('OK');
      }
      if (path === '/version') return json(200, { Version: '27.0.0-fake', ApiVersion: '1.43', Os: 'linux', Arch: 'amd64' });
      if (req.method === 'GET' && path === '/containers/json') return json(200, []);
      if (req.method === 'POST' && path === '/containers/create') return json(201, { Id: id, Warnings: [] });
      if (req.method === 'POST' && path.endsWith('/start')) {
        res.writeHead(204);
        return res.end();
      }
      // Only the container this engine created exists: a lookup by name before the create finds nothing.
      if (path.startsWith('/containers/') && !path.startsWith(`/containers/${id}`)) return json(404, { message: `No such container: ${path.split('/')[2]}` });
      if (req.method === 'POST' && path.endsWith('/stop')) {
        stops.push(path);
        res.writeHead(204);
        return res.end();
      }
      if (req.method === 'GET' && path.endsWith('/json')) {
        const restarts = inspects++;
        return json(200, {
          Id: id,
          Name: '/embedctl-runtime-1',
          RestartCount: restarts,
          State: { Status: 'running', Running: true, Restarting: false, ExitCode: restarts > 0 ? 1 : 0, Health: { Status: 'starting', FailingStreak: 0, Log: [] } },
        });
      }
      json(404, { message: `no route for ${req.method} ${path}` });
    });
  });
  await new Promise<void>((r) => server.listen(socketPath, r));
  crashing = { server, dir, stops };
  return { dockerHost: `unix://${socketPath}`, stops };
}

describe('a runtime that exits while starting, under the restart policy', () => {
  it('fails at once (not after the whole health timeout), naming the restarts, and stops the loop', async () => {
    const engine = await startCrashLoopingEngine();
    const sleeps: number[] = [];
    const err = await deployWithDocker({
      dockerHost: engine.dockerHost,
      image: 'x:1',
      replicas: 1,
      gpu: false,
      pull: false,
      healthTimeoutMs: 60_000,
      pollMs: 1_000,
      sleep: async (ms) => void sleeps.push(ms),
    }).catch((e) => e);
    expect(err).toBeInstanceOf(ExternalError);
    expect(err.message).toMatch(/embedctl-runtime-1 .*restart/);
    expect(err.message).not.toMatch(/not healthy after/);
    expect(err.hint).toMatch(/docker logs embedctl-runtime-1/);
    expect(sleeps.length).toBeLessThan(3);
    // Stopped, not removed: unless-stopped no longer restarts it, and its logs stay readable.
    expect(engine.stops).toHaveLength(1);
  });
});
