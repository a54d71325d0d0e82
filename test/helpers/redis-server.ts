import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

/**
 * A real redis-server (Debian's binary) on 127.0.0.1 with a free port, no persistence. Always
 * `await redis.stop()` (afterAll); a test process that dies takes it along (SIGKILL on exit).
 */

export interface RedisHandle {
  url: string;
  port: number;
  child: ChildProcess;
  /** SIGKILL, as an outage looks to clients (no goodbye). Safe to call twice. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** `args` go last, so they override the defaults (a rendered deploy's own command line, say). */
export async function startRedis(opts: { maxmemory?: string; args?: string[] } = {}): Promise<RedisHandle> {
  // A port picked here may be taken by someone else before redis binds it; try a few.
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes'];
    if (opts.maxmemory) args.push('--maxmemory', opts.maxmemory, '--maxmemory-policy', 'allkeys-lru');
    if (opts.args) args.push(...opts.args);
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const killOnExit = () => child.kill('SIGKILL');
    process.once('exit', killOnExit);
    const exited = new Promise<void>((r) =>
      child.once('exit', () => {
        process.off('exit', killOnExit);
        r();
      }),
    );
    let out = '';
    const ready = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 10_000);
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('Ready to accept connections')) {
          clearTimeout(t);
          resolve(true);
        }
      });
      void exited.then(() => {
        clearTimeout(t);
        resolve(false);
      });
    });
    const kill = async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    };
    if (!ready) {
      await kill();
      if (attempt < 3 && /Address already in use/.test(out)) continue;
      throw new Error(`redis-server did not start on port ${port}:\n${out.slice(-2000)}`);
    }
    const stop = async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    };
    return { url: `redis://127.0.0.1:${port}`, port, child, kill, stop };
  }
}
