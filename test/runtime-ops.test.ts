import { spawnSync } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadModel, type Model } from '../runtime/inference/model.js';
import { startServer } from '../runtime/app.js';
import { main } from '../src/cli.js';
import { sleep, type Context } from '../src/context.js';
import { runCli } from './helpers/cli.js';
import { runtimeEntry, startRuntime } from './helpers/runtime.js';
import { cosine } from './helpers/reference-math.js';

/**
 * Operations: auth, overload, graceful shutdown, readiness, the transformer path, and the
 * `embedctl serve` command, each against a real server.
 */

const LONG = Array.from({ length: 80 }, (_, i) => ['alpha', 'beta', 'gamma', 'delta', 'river', 'city'][i % 6]).join(' ');
const longInputs = (n: number, tag: string) => Array.from({ length: n }, (_, i) => `${LONG} ${tag} ${i}`);

const post = (url: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal) =>
  fetch(`${url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body), signal });

const metric = async (url: string, name: string) => {
  const text = await fetch(`${url}/metrics`).then((r) => r.text());
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
};


describe('API key', () => {
  it('answers 401 without or with a wrong Bearer key, 200 with the right one, and never logs the key', async () => {
    const key = 'sk-test-9f8e7d6c5b4a';
    const rt = await startRuntime({ model: 'tiny-bert', apiKey: key });
    try {
      for (const headers of [{} as Record<string, string>, { authorization: 'Bearer wrong' }, { authorization: `Bearer ${key}x` }, { authorization: key }]) {
        const r = await post(rt.url, { input: 'x' }, headers);
        expect(r.status).toBe(401);
        expect(((await r.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: 'invalid_api_key', message: expect.stringMatching(/Bearer/) });
      }
      expect((await post(rt.url, { input: 'x' }, { authorization: `Bearer ${key}` })).status).toBe(200);
      expect((await fetch(`${rt.url}/v1/models`)).status).toBe(401);
      // Probes from load balancers and orchestrators carry no key.
      expect((await fetch(`${rt.url}/ready`)).status).toBe(200);
      expect((await fetch(`${rt.url}/health`)).status).toBe(200);
      expect(rt.stderrLines().join('\n')).not.toContain(key);
    } finally {
      await rt.stop();
    }
  });
});

describe('overload', () => {
  it('answers 429 with Retry-After when the queue is full, serves the rest, and keeps running', async () => {
    const rt = await startRuntime({ model: 'tiny-bert', args: ['--max-queue', '64', '--max-batch-size', '16'] });
    try {
      const rs = await Promise.all(Array.from({ length: 16 }, (_, c) => post(rt.url, { input: longInputs(48, `c${c}`) })));
      const statuses = rs.map((r) => r.status);
      expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
      expect(statuses.filter((s) => s === 200).length).toBeGreaterThan(0);
      expect(statuses.every((s) => s === 200 || s === 429)).toBe(true);
      const refused = rs.find((r) => r.status === 429)!;
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(((await refused.json()) as { error: { type: string; code: string } }).error).toMatchObject({ type: 'rate_limit_error', code: 'queue_full' });
      await Promise.all(rs.filter((r) => !r.bodyUsed).map((r) => r.body?.cancel()));
      expect((await post(rt.url, { input: 'still alive' })).status).toBe(200);
      expect(await metric(rt.url, 'embedctl_queue_depth')).toBe(0);
      expect(rt.child.exitCode).toBeNull();
    } finally {
      await rt.stop();
    }
  });
});

describe('client going away', () => {
  it('drops the queued inputs of a request whose client disconnected and keeps serving others', async () => {
    const rt = await startRuntime({ model: 'tiny-bert', args: ['--max-batch-size', '8'] });
    try {
      const ac = new AbortController();
      const gone = post(rt.url, { input: longInputs(1500, 'gone') }, { 'x-request-id': 'gone-1' }, ac.signal).catch((e: Error) => e);
      const deadline = Date.now() + 20_000;
      while ((await metric(rt.url, 'embedctl_queue_depth')) < 100) {
        expect(Date.now()).toBeLessThan(deadline);
        await sleep(5);
      }
      ac.abort();
      expect(await gone).toBeInstanceOf(Error);
      while ((await metric(rt.url, 'embedctl_queue_depth')) > 0) {
        expect(Date.now()).toBeLessThan(deadline);
        await sleep(5);
      }
      // Far fewer than 1500 inputs were run: the rest left the queue with their client.
      expect(await metric(rt.url, 'embedctl_batch_size_sum')).toBeLessThan(1400);
      expect((await post(rt.url, { input: 'still here' })).status).toBe(200);
      await sleep(50);
      expect(rt.events().find((e) => e.id === 'gone-1')).toMatchObject({ event: 'request', status: 499, aborted: true });
    } finally {
      await rt.stop();
    }
  });
});

describe('graceful shutdown', () => {
  it('on SIGTERM answers /ready 503 and new requests 503, completes every in-flight request with 200, and exits 0', async () => {
    // No latency budget: on a loaded machine the crowd below can be refused (429) at the door,
    // which is admission's business (test/batcher.test.ts), not shutdown's.
    const rt = await startRuntime({ model: 'tiny-bert', args: ['--max-queue-ms', '0'] });
    try {
      // One request whose body this test finishes only after SIGTERM: in flight for certain.
      const slowBody = JSON.stringify({ input: longInputs(40, 'slow') });
      const slow = httpRequest(`${rt.url}/v1/embeddings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(slowBody) },
      });
      const slowDone = new Promise<{ status: number; body: string }>((resolve, reject) => {
        slow.on('response', (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        });
        slow.on('error', reject);
      });
      slow.write(slowBody.slice(0, 100));
      const deadline = Date.now() + 20_000;
      while ((await metric(rt.url, 'embedctl_requests_in_flight')) < 1) {
        expect(Date.now()).toBeLessThan(deadline);
        await sleep(10);
      }
      // And a crowd of ordinary ones that are being worked on when the signal comes.
      const n = 8;
      const crowd = Array.from({ length: n }, (_, c) =>
        post(rt.url, { input: longInputs(120, `s${c}`) }).then(async (r) => ({ status: r.status, body: (await r.json()) as { data?: unknown[] } })),
      );
      while ((await metric(rt.url, 'embedctl_requests_in_flight')) < 2) {
        expect(Date.now()).toBeLessThan(deadline);
        await sleep(5);
      }
      rt.child.kill('SIGTERM');
      let draining: Record<string, unknown> | undefined;
      while (!(draining = rt.events().find((e) => e.event === 'draining'))) {
        expect(Date.now()).toBeLessThan(deadline);
        await sleep(5);
      }
      expect((await fetch(`${rt.url}/ready`)).status).toBe(503);
      const late = await post(rt.url, { input: 'too late' });
      expect(late.status).toBe(503);
      expect(((await late.json()) as { error: { code: string } }).error.code).toBe('shutting_down');

      slow.end(slowBody.slice(100));
      const s = await slowDone;
      expect(s.status).toBe(200);
      expect((JSON.parse(s.body) as { data: unknown[] }).data).toHaveLength(40);
      const done = await Promise.all(crowd);
      expect(await rt.exited).toBe(0);
      // Every request is answered (none reset); those in flight at SIGTERM all with 200.
      expect(done.every((d) => d.status === 200 || d.status === 503)).toBe(true);
      expect(done.filter((d) => d.status === 200).every((d) => d.body.data?.length === 120)).toBe(true);
      expect(Number(draining.inFlight)).toBeGreaterThanOrEqual(2);
      expect(1 + done.filter((d) => d.status === 200).length).toBeGreaterThanOrEqual(Number(draining.inFlight));
      const events = rt.events().map((e) => e.event);
      expect(events[events.length - 1]).toBe('exit');
    } finally {
      await rt.stop(); // no-op once it has exited; kills it if an assertion failed first
    }
  });
});

describe('readiness before warm-up', () => {
  it('answers /ready and embeddings 503 until the model has loaded, then 200', async () => {
    let resolveModel!: (m: Model) => void;
    const modelPromise = new Promise<Model>((r) => (resolveModel = r));
    const srv = await startServer({ model: modelPromise, port: 0 });
    try {
      expect((await fetch(`${srv.url}/ready`)).status).toBe(503);
      const early = await post(srv.url, { input: 'x' });
      expect(early.status).toBe(503);
      expect(early.headers.get('retry-after')).toBe('1');
      expect(((await early.json()) as { error: { code: string } }).error.code).toBe('model_not_ready');
      expect(((await fetch(`${srv.url}/health`).then((r) => r.json())) as { status: string }).status).toBe('loading');
      resolveModel(await loadModel('tiny-bert'));
      await srv.ready;
      expect((await fetch(`${srv.url}/ready`)).status).toBe(200);
      expect((await post(srv.url, { input: 'x' })).status).toBe(200);
    } finally {
      await srv.close();
      await (await modelPromise).close();
    }
  });
});

describe('transformer path (tiny-bert)', () => {
  it('equals a direct session run, applies task prefixes, and refuses over-long text with truncate:false', async () => {
    const [rt, direct] = await Promise.all([startRuntime({ model: 'tiny-bert' }), loadModel('tiny-bert')]);
    try {
      const inputs = ['the quick brown fox', 'a much longer sentence about rivers and cities and music', 'x'];
      const r = (await (await post(rt.url, { input: inputs })).json()) as { data: Array<{ embedding: number[] }> };
      const expected = await direct.embed(inputs.map((t) => direct.encode(t)));
      inputs.forEach((_, i) => expect(cosine(r.data[i]!.embedding, expected[i]!)).toBeGreaterThan(0.99999));

      const q = (await (await post(rt.url, { input: inputs[0], task: 'retrieval.query' })).json()) as { data: Array<{ embedding: number[] }> };
      const [withPrefix] = await direct.embed([direct.encode(`query: ${inputs[0]}`)]);
      expect(cosine(q.data[0]!.embedding, withPrefix!)).toBeGreaterThan(0.99999);
      expect(cosine(q.data[0]!.embedding, expected[0]!)).toBeLessThan(0.9999);
      // A Jina task this model has no prefix for is accepted and embeds the text as is.
      const tm = (await (await post(rt.url, { input: inputs[0], task: 'text-matching' })).json()) as { data: Array<{ embedding: number[] }> };
      expect(cosine(tm.data[0]!.embedding, expected[0]!)).toBeGreaterThan(0.99999);

      const tooLong = await post(rt.url, { input: ['ok', 'ok', LONG], truncate: false });
      expect(tooLong.status).toBe(400);
      expect(((await tooLong.json()) as { error: { message: string } }).error.message).toMatch(/input\[2\].*limit of 64/);
      // Only the full size is offered when the bundle lists no Matryoshka sizes.
      const dims = await post(rt.url, { input: 'x', dimensions: 16 });
      expect(((await dims.json()) as { error: { message: string } }).error.message).toMatch(/use 32, its only size \(not a Matryoshka model\)$/);
    } finally {
      await Promise.all([rt.stop(), direct.close()]);
    }
  });
});

describe('runtime entry point', () => {
  it('exits 2 with one JSON line naming a bad flag or env value', () => {
    const bad = spawnSync(process.execPath, [runtimeEntry, '--port', 'eighty'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(JSON.parse(bad.stderr.split('\n')[0]!)).toMatchObject({ event: 'usage_error', error: expect.stringMatching(/^--port: expected a whole number/) });
    const env = spawnSync(process.execPath, [runtimeEntry], { encoding: 'utf8', env: { ...process.env, EMBEDCTL_EP: 'tpu' } });
    expect(env.status).toBe(2);
    expect(env.stderr).toMatch(/EMBEDCTL_EP: unknown execution provider \\"tpu\\"/);
  });
});

function cliContext(signal: AbortSignal, env: Record<string, string> = {}) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out = { stdout: '', stderr: '' };
  stdout.on('data', (d) => (out.stdout += d));
  stderr.on('data', (d) => (out.stderr += d));
  const ctx: Context = {
    stdout,
    stderr,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, CI: 'true', ...env },
    cwd: process.cwd(),
    now: () => new Date(),
    sleep,
    isTTY: false,
    signal,
    adapters: {},
  };
  return { ctx, out };
}

describe('embedctl serve', () => {
  it('serves in-process, prints the URL, and stops cleanly when its signal aborts', async () => {
    const ac = new AbortController();
    const { ctx, out } = cliContext(ac.signal, { EMBEDCTL_API_KEY: 'k-123456' });
    const running = main(['node', 'embedctl', 'serve', '--model', 'tiny-bert', '--port', '0', '--json'], ctx);
    const deadline = Date.now() + 20_000;
    while (!out.stdout.includes('"url"')) {
      expect(Date.now()).toBeLessThan(deadline);
      await sleep(20);
    }
    const doc = JSON.parse(out.stdout) as { schema: string; url: string; model: string; auth: string };
    expect(doc).toMatchObject({ schema: 'embedctl.serve/v1', model: 'tiny-bert', auth: 'bearer' });
    expect(out.stderr).toMatch(new RegExp(`listening on ${doc.url.replace(/[.]/g, '\\.')}`));
    const r = await post(doc.url, { input: ['hello', 'world'] }, { authorization: 'Bearer k-123456' });
    expect(r.status).toBe(200);
    expect(out.stderr).not.toContain('k-123456');
    ac.abort();
    // Ctrl-C exits 130 everywhere (src/cli.ts), serve included, after a clean drain.
    expect(await running).toBe(130);
    expect(out.stderr).toContain('stopped');
    await expect(fetch(`${doc.url}/health`)).rejects.toThrow();
  });

  it('--dry-run shows each setting and its source without starting anything, the key masked', async () => {
    const r = await runCli(['serve', '--dry-run', '--json', '--max-batch-size', '32'], { env: { EMBEDCTL_MAX_QUEUE: '99', EMBEDCTL_API_KEY: 'hidden-key' } });
    expect(r.code).toBe(0);
    const doc = r.json<{ schema: string; settings: Record<string, { value: unknown; source: string }> }>();
    expect(doc.schema).toBe('embedctl.serve/v1');
    expect(doc.settings.maxBatchSize).toEqual({ value: 32, source: '--max-batch-size' });
    expect(doc.settings.maxQueue).toEqual({ value: 99, source: 'EMBEDCTL_MAX_QUEUE' });
    expect(doc.settings.port).toEqual({ value: 8080, source: 'default' });
    expect(doc.settings.apiKey!.value).toBe('(set)');
    expect(r.stdout + r.stderr).not.toContain('hidden-key');
  });

  it('refuses bad values with one line naming the flag and exit 2', async () => {
    const port = await runCli(['serve', '--port', '99999']);
    expect(port.code).toBe(2);
    expect(port.stderr).toMatch(/--port: must be between 0 and 65535/);
    const ep = await runCli(['serve', '--ep', 'cuda,tpu', '--dry-run']);
    expect(ep.code).toBe(2);
    expect(ep.stderr).toMatch(/--ep: unknown execution provider "tpu"/);
    const model = await runCli(['serve', '--model', './no/such/model', '--port', '0']);
    expect(model.code).toBe(2);
    expect(model.stderr.trim().split('\n').filter((l) => l.startsWith('embedctl: error')).length).toBe(1);
    expect(model.stderr).not.toMatch(/\n\s+at /);
  });
});
