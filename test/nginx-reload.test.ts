import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, describe, expect, it } from 'vitest';
import { reloadNginx } from '../src/adapters/nginx.js';
import { nginxOrSkip, startGateway, startStandin, tempDir, stopAfterEach } from './helpers/gateway.js';

const { skip } = nginxOrSkip();
const tmp = tempDir('embedctl-nginx-reload-');
afterAll(() => tmp.cleanup());
const running = stopAfterEach();

describe.skipIf(skip)('nginx reloads under keep-alive load', () => {
  it('10 reloads under keep-alive load: every request nginx took answered 200, and a client that retries connection errors (the OpenAI SDK as shipped) sees 0 failures', { timeout: 90_000 }, async () => {
    const self = await startStandin('self', { delayMs: 1 });
    running.push(self);
    const hosted = await startStandin('hosted');
    running.push(hosted);
    const opts = { selfHosted: [`127.0.0.1:${self.port}`], hostedUrl: `${hosted.url}/v1/embeddings`, selfHostedPercent: 50, workerProcesses: 2 as const };
    const gw = await startGateway(tmp.dir, opts);
    running.push(gw);
    const stop = new AbortController();
    const failures: string[] = [];
    const closedUnder: string[] = [];
    let sent = 0;
    const sdk = new OpenAI({ baseURL: `${gw.nginx.url}/v1`, apiKey: 'unused', timeout: 10_000 });
    // Half the clients are the OpenAI SDK (keep-alive, retries connection errors twice); half are
    // bare keep-alive fetch, which shows what a client without retries meets.
    const client = async (c: number) => {
      while (!stop.signal.aborted) {
        sent++;
        if (c % 2 === 0) {
          try {
            const r = await sdk.embeddings.create({ model: 'default', input: `reload ${c}`, encoding_format: 'float' }, { headers: { 'x-tenant-id': `t${c}-${sent % 50}` } });
            if (r.data.length !== 1) failures.push('bad answer');
          } catch (err) {
            failures.push(`sdk: ${(err as Error).message}`);
          }
          continue;
        }
        try {
          const res = await fetch(`${gw.nginx.url}/v1/embeddings`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-tenant-id': `t${c}-${sent % 50}` },
            body: JSON.stringify({ input: 'reload' }),
          });
          await res.arrayBuffer();
          if (res.status !== 200) failures.push(`fetch: HTTP ${res.status}`);
        } catch (err) {
          // A keep-alive connection the old worker closed just as the request went out: HTTP/1.1
          // cannot rule this race out; nginx never saw the request.
          const cause = (err as { cause?: { code?: string; message?: string } }).cause;
          closedUnder.push(`${cause?.code ?? 'no code'}: ${cause?.message ?? (err as Error).message}`);
        }
      }
    };
    const clients = Array.from({ length: 8 }, (_, c) => client(c));
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, 250));
      gw.write({ ...opts, selfHostedPercent: i % 2 ? 50 : 60 });
      await reloadNginx({ confPath: gw.confPath, prefix: gw.prefix });
    }
    await new Promise((r) => setTimeout(r, 250));
    stop.abort();
    await Promise.all(clients);
    expect(sent).toBeGreaterThan(200);
    expect(failures).toEqual([]);
    // Only one kind of client-side error is possible at all: the idle connection closed under it,
    // seen as a FIN (undici's 'other side closed') or, when the request bytes had already reached
    // the closing worker, as a reset (ECONNRESET / EPIPE). Anything else (a refused connection, a
    // timeout, an HTTP error) fails here.
    expect(closedUnder.filter((m) => !/^(UND_ERR_SOCKET: other side closed|ECONNRESET: |EPIPE: )/.test(m))).toEqual([]);
    // Upstream side: no request nginx accepted failed or fell back (keep-alive to the runtime is
    // closed by nginx first: its upstream keepalive_timeout is below the runtime's).
    const log = readFileSync(join(gw.prefix, 'access.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { status: number; upstream_status: string });
    expect(log.length).toBeGreaterThan(200);
    expect(log.filter((e) => e.status !== 200 || !/^200$/.test(e.upstream_status))).toEqual([]);
    console.log(`reload test: ${sent} requests, ${closedUnder.length} keep-alive connections closed under a bare fetch (${JSON.stringify(Object.fromEntries([...new Set(closedUnder)].map((k) => [k, closedUnder.filter((m) => m === k).length])))}), 0 failures through the SDK`);
  });
});
