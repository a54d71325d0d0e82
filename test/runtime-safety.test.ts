import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { sleep } from '../src/context.js';
import { startRuntime } from './helpers/runtime.js';

/**
 * Issue 14, against the real runtime process: latency-aware admission (429s with an honest
 * Retry-After, nothing lost), shutdown under keep-alive load without a single reset, a slow
 * uploader that cannot hold shutdown past the drain timeout, and the request-size guards (inputs
 * cut by characters before tokenising, 413 over --max-request-tokens). Behaviour only: how fast
 * any of it is lives in scripts/bench/admission.ts and isolation.ts.
 */

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One POST over `agent`; a socket error rejects with its code (ECONNRESET, ECONNREFUSED...). */
function post(url: string, body: unknown, agent?: Agent): Promise<Reply> {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(`${url}/v1/embeddings`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}

const errorCode = (err: unknown) => (err as { code?: string }).code ?? (err as Error).message;

describe('latency-aware admission', () => {
  it('under 256 concurrent one-input clients: 429s with Retry-After and Retry-After-Ms, every request answered once, the refused served on retry', async () => {
    // Until its first batch is measured the runtime admits one batch (64 inputs) into a burst,
    // so 256 at once meet 429s whatever the machine's speed.
    const rt = await startRuntime({ model: 'default', args: ['--max-queue-ms', '50'] });
    const agent = new Agent({ keepAlive: true, maxSockets: 512, maxFreeSockets: 512 });
    try {
      const n = 256;
      const replies = await Promise.all(Array.from({ length: n }, (_, c) => post(rt.url, { input: `client ${c} asks about the river` }, agent)));
      const statuses = replies.map((r) => r.status);
      expect(statuses.every((s) => s === 200 || s === 429)).toBe(true);
      const refused = replies.filter((r) => r.status === 429);
      expect(refused.length).toBeGreaterThan(0);
      expect(refused.length).toBeLessThan(n);
      for (const r of refused) {
        expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
        expect(Number.isInteger(Number(r.headers['retry-after']))).toBe(true);
        expect(Number(r.headers['retry-after-ms'])).toBeGreaterThanOrEqual(1);
        // The whole seconds are the milliseconds rounded up, never less.
        expect(Number(r.headers['retry-after']) * 1000).toBeGreaterThanOrEqual(Number(r.headers['retry-after-ms']));
        expect(JSON.parse(r.body)).toMatchObject({ error: { type: 'rate_limit_error', code: 'queue_full' } });
      }
      for (const r of replies.filter((x) => x.status === 200)) expect((JSON.parse(r.body) as { data: Array<{ embedding: number[] }> }).data[0]!.embedding).toHaveLength(100);
      // None lost: the runtime logged exactly one answer per request, with the same statuses
      // (its log arrives over a pipe, so give it a moment).
      const logged = () => rt.events().filter((e) => e.event === 'request' && e.path === '/v1/embeddings');
      for (let i = 0; i < 100 && logged().length < n; i++) await sleep(50);
      expect(logged()).toHaveLength(n);
      expect(logged().filter((e) => e.status === 429)).toHaveLength(refused.length);
      // A refused client that waits the turn it was given (Retry-After-Ms) is served in the end.
      const retried = await Promise.all(
        refused.map(async (first, i) => {
          let r = first;
          for (let round = 0; round < 20 && r.status === 429; round++) {
            await sleep(Number(r.headers['retry-after-ms']));
            r = await post(rt.url, { input: `retry ${i}` }, agent);
          }
          return r.status;
        }),
      );
      const waiting = retried.filter((s) => s !== 200);
      expect(waiting).toEqual([]);
    } finally {
      agent.destroy();
      await rt.stop();
    }
  });
});

describe('shutdown under keep-alive load', () => {
  it('SIGTERM while 32 keep-alive clients loop: no reset, in-flight answered, 503s carry Connection: close, later connects refused, exit 0', async () => {
    const rt = await startRuntime({ model: 'tiny-bert' });
    const agent = new Agent({ keepAlive: true, maxSockets: 64 });
    const tally = { ok: 0, unavailable: 0, closeMissing: 0, refused: 0, resets: [] as string[], other: [] as number[] };
    let stop = false;
    let sent = 0;
    // What each client saw last before an error, for the failure message.
    const last: Array<unknown> = [];
    try {
      const clients = Array.from({ length: 32 }, async (_, c) => {
        while (!stop) {
          sent++;
          try {
            const r = await post(rt.url, { input: [`client ${c} text ${sent}`, 'and a second input'] }, agent);
            last[c] = [r.status, r.headers.connection];
            if (r.status === 200) tally.ok++;
            else if (r.status === 503) {
              tally.unavailable++;
              if (r.headers.connection !== 'close') tally.closeMissing++;
              // As SDKs do (the OpenAI clients retry a 503 after its Retry-After). A client that
              // reconnects in a tight loop instead can land in the accept queue at the instant the
              // listener closes, and the kernel resets it: that race belongs to TCP, not to us.
              await sleep(Number(r.headers['retry-after'] ?? 1) * 1000);
            } else tally.other.push(r.status);
          } catch (err) {
            // Refused connect = the listener is closed: the clean way for a new client to learn it.
            if (errorCode(err) === 'ECONNREFUSED') {
              tally.refused++;
              return;
            }
            tally.resets.push(`${errorCode(err)} after ${JSON.stringify(last[c])}`);
            return;
          }
        }
      });
      const deadline = Date.now() + 20_000;
      while (tally.ok < 100 && Date.now() < deadline) await sleep(10);
      expect(tally.ok).toBeGreaterThanOrEqual(100);
      rt.child.kill('SIGTERM');
      const code = await rt.exited;
      // Every client ends by a refused connect once the process is gone (bounded by the deadline).
      await Promise.race([Promise.all(clients), sleep(15_000)]);
      stop = true;
      expect(code).toBe(0);
      expect(tally.resets).toEqual([]);
      expect(tally.other).toEqual([]);
      expect(tally.closeMissing).toBe(0);
      expect(tally.refused).toBe(32);
      const events = rt.events();
      expect(events.find((e) => e.event === 'draining')).toBeDefined();
      expect(events[events.length - 1]).toMatchObject({ event: 'exit', code: 0 });
    } finally {
      stop = true;
      agent.destroy();
      await rt.stop();
    }
  });

  it('a client trickling its body when SIGTERM comes gets a 503 within the drain timeout; the runtime exits 0', async () => {
    const rt = await startRuntime({ model: 'tiny-bert', args: ['--drain-timeout-ms', '3000'] });
    try {
      const sock = connect(rt.port, '127.0.0.1');
      await new Promise<void>((r) => sock.once('connect', () => r()));
      let answer = '';
      sock.setEncoding('utf8');
      sock.on('data', (d: string) => (answer += d));
      const closed = new Promise<void>((r) => sock.once('close', () => r()));
      sock.on('error', () => {});
      sock.write(`POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"input": ["`);
      const deadline = Date.now() + 20_000;
      while (!rt.events().some((e) => e.event === 'ready')) await sleep(10);
      // A byte every 100 ms: never finishing, never idle long enough to time out on its own.
      const trickle = setInterval(() => sock.writable && sock.write('a'), 100);
      try {
        await sleep(300);
        rt.child.kill('SIGTERM');
        const code = await rt.exited;
        expect(Date.now()).toBeLessThan(deadline);
        // exit 0 = drained before the 3 s drain timeout (a timed-out drain exits 1).
        expect(code).toBe(0);
        await Promise.race([closed, sleep(5_000)]);
        expect(answer).toMatch(/^HTTP\/1\.1 503 /);
        expect(answer.toLowerCase()).toContain('connection: close');
        expect(answer).toContain('shutting_down');
        expect(rt.events().some((e) => e.event === 'drain_timeout')).toBe(false);
      } finally {
        clearInterval(trickle);
        sock.destroy();
      }
    } finally {
      await rt.stop();
    }
  });
});

describe('request size guards', () => {
  it('cuts a 6 MB input by characters before tokenising (same vector as its first maxTokens x 32 characters), refuses it untruncated with 400, and answers 413 over --max-request-tokens', async () => {
    // tiny-bert: max 64 tokens, so the cut is 64 x 32 = 2,048 characters.
    const rt = await startRuntime({ model: 'tiny-bert', args: ['--max-request-tokens', '100', '--max-body-bytes', String(8 * 2 ** 20)] });
    try {
      const words = 'river city alpha beta gamma delta '.repeat(Math.ceil((6 * 2 ** 20) / 34)).slice(0, 6 * 2 ** 20);
      const big = await post(rt.url, { input: words });
      expect(big.status).toBe(200);
      const bigBody = JSON.parse(big.body) as { data: Array<{ embedding: number[] }>; usage: { prompt_tokens: number } };
      const head = await post(rt.url, { input: words.slice(0, 64 * 32) });
      const headBody = JSON.parse(head.body) as { data: Array<{ embedding: number[] }> };
      expect(bigBody.data[0]!.embedding).toEqual(headBody.data[0]!.embedding);
      // Usage still counts the whole input (extrapolated from the part tokenised).
      expect(bigBody.usage.prompt_tokens).toBeGreaterThan(100_000);

      const strict = await post(rt.url, { input: words, truncate: false });
      expect(strict.status).toBe(400);
      expect(JSON.parse(strict.body)).toMatchObject({ error: { code: 'input_too_long', param: 'input', type: 'invalid_request_error' } });

      // Two inputs of 64 tokens each (after truncation) are 128 > 100: the request is refused whole.
      const tooMany = await post(rt.url, { input: [words.slice(0, 4000), words.slice(4000, 8000)] });
      expect(tooMany.status).toBe(413);
      const err = (JSON.parse(tooMany.body) as { error: { code: string; message: string; type: string } }).error;
      expect(err).toMatchObject({ code: 'request_too_large', type: 'invalid_request_error' });
      expect(err.message).toMatch(/--max-request-tokens/);
      // One such input fits, and the runtime still serves after all of the above.
      expect((await post(rt.url, { input: [words.slice(0, 4000)] })).status).toBe(200);
    } finally {
      await rt.stop();
    }
  });
});
