import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRuntime, type RuntimeHandle } from './helpers/runtime.js';

/**
 * A model whose worker thread dies (native crash, out of memory) cannot come back in the
 * process. Docker's restart policy restarts only exited containers, so the runtime logs one
 * "fatal" line, drains briefly and exits 1; EMBEDCTL_EXIT_ON_MODEL_FAULT=0 keeps the old
 * behaviour (up, answering 503). The real runtime process; a preload (NODE_OPTIONS --import)
 * ends its model worker thread on SIGUSR2, as a crash inside the thread would.
 */

let dir: string;
let preload: string;
const running: RuntimeHandle[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'embedctl-model-fault-'));
  preload = join(dir, 'kill-worker-on-usr2.mjs');
  writeFileSync(
    preload,
    `import { isMainThread } from 'node:worker_threads';
if (isMainThread) {
  const workers = new Set();
  process.on('worker', (w) => { workers.add(w); w.once('exit', () => workers.delete(w)); });
  process.on('SIGUSR2', () => { for (const w of workers) void w.terminate(); });
}
`,
  );
});
afterAll(async () => {
  await Promise.all(running.map((r) => r.stop()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function start(env: Record<string, string> = {}): Promise<RuntimeHandle> {
  const rt = await startRuntime({
    model: 'tiny-bert',
    args: ['--model-worker', 'on'],
    env: { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${preload}`.trim(), ...env },
  });
  running.push(rt);
  return rt;
}

const embed = (url: string) => fetch(`${url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"input":"green tea"}' });

/** The exit code, or 'running' if the process is still up after `ms`. */
const exitWithin = (rt: RuntimeHandle, ms: number) => Promise.race([rt.exited, new Promise<'running'>((r) => setTimeout(() => r('running'), ms))]);

describe('a model worker thread that dies', () => {
  it('makes the runtime log one fatal line and exit 1, so that its supervisor restarts it', async () => {
    const rt = await start();
    expect((await embed(rt.url)).status).toBe(200);
    rt.child.kill('SIGUSR2');
    expect(await exitWithin(rt, 15_000)).toBe(1);
    const events = rt.events();
    const fatal = events.filter((e) => e.event === 'fatal');
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toMatchObject({ model: 'tiny-bert', error: expect.stringMatching(/^the model failed: the model worker thread exited/) });
    expect(events.find((e) => e.event === 'model_failed')).toMatchObject({ model: 'tiny-bert', error: expect.stringMatching(/worker thread exited/) });
    const names = events.map((e) => e.event);
    // fatal, then the drain, then the exit line, in that order.
    expect(names.indexOf('fatal')).toBeLessThan(names.indexOf('draining'));
    expect(events.at(-1)).toMatchObject({ event: 'exit', code: 1 });
  }, 40_000);

  it('with EMBEDCTL_EXIT_ON_MODEL_FAULT=0 stays up answering 503 "the model failed" (not "failed to load"), and exits 0 on SIGTERM', async () => {
    const rt = await start({ EMBEDCTL_EXIT_ON_MODEL_FAULT: '0' });
    expect((await embed(rt.url)).status).toBe(200);
    rt.child.kill('SIGUSR2');
    // /health turns 503 once the thread is gone.
    let health = 200;
    for (let i = 0; i < 100 && health === 200; i++) {
      await new Promise((r) => setTimeout(r, 50));
      health = (await fetch(`${rt.url}/health`)).status;
    }
    expect(health).toBe(503);
    expect(await exitWithin(rt, 500)).toBe('running');
    const res = await embed(rt.url);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    const body = (await res.json()) as { error: { message: string; type: string; code: string } };
    expect(body.error).toMatchObject({ type: 'server_error', code: 'model_not_ready' });
    expect(body.error.message).toMatch(/^the model failed: the model worker thread exited/);
    expect((await fetch(`${rt.url}/ready`)).status).toBe(503);
    expect(rt.events().filter((e) => e.event === 'fatal')).toHaveLength(0);
    expect(rt.events().find((e) => e.event === 'model_failed')).toBeDefined();
    await rt.stop();
    expect(await rt.exited).toBe(0);
  }, 40_000);
});
