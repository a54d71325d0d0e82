import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A small embeddings server on 127.0.0.1 for the verify/rag tests: OpenAI/Jina shape on
 * /v1/embeddings, TEI on /embed. Vectors come from `vectorOf(text)` (default: a hash-seeded
 * pseudo-random vector, so equal texts give equal vectors). `script` answers the n-th request
 * (0-based) with a canned failure instead, to drive retries.
 */
export interface FakeRequest {
  path: string;
  headers: IncomingMessage['headers'];
  body: Record<string, unknown>;
}

export interface FakeOptions {
  dim?: number;
  model?: string;
  vectorOf?: (text: string) => number[];
  script?: (n: number, req: FakeRequest) => { status: number; headers?: Record<string, string>; body?: string } | undefined;
  /** Answer data[] in reverse order (index still right) to prove the client sorts. */
  reverse?: boolean;
}

export function hashVector(text: string, dim: number): number[] {
  const out: number[] = [];
  let block = 0;
  while (out.length < dim) {
    const h = createHash('sha256').update(`${block++}\0${text}`).digest();
    for (let i = 0; i + 4 <= h.length && out.length < dim; i += 4) out.push(h.readInt32LE(i) / 2 ** 31);
  }
  return out;
}

export async function startFakeEmbeddings(o: FakeOptions = {}) {
  const dim = o.dim ?? 16;
  const requests: FakeRequest[] = [];
  const vectorOf = o.vectorOf ?? ((t: string) => hashVector(t, dim));
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    let raw = '';
    for await (const c of req) raw += c;
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      /* keep {} */
    }
    const r: FakeRequest = { path: req.url ?? '', headers: req.headers, body };
    const n = requests.length;
    requests.push(r);
    const canned = o.script?.(n, r);
    if (canned) {
      res.writeHead(canned.status, { 'content-type': 'application/json', ...canned.headers });
      res.end(canned.body ?? JSON.stringify({ error: { message: `canned ${canned.status}` } }));
      return;
    }
    if (req.url === '/embed') {
      const inputs = (Array.isArray(body.inputs) ? body.inputs : [body.inputs]) as string[];
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(inputs.map(vectorOf)));
      return;
    }
    if (req.url !== '/v1/embeddings') {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'no such route' } }));
      return;
    }
    const input = (Array.isArray(body.input) ? body.input : [body.input]) as string[];
    let data = input.map((t, index) => ({ object: 'embedding', index, embedding: vectorOf(t) }));
    if (o.reverse) data = data.reverse();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        object: 'list',
        data,
        model: o.model ?? (typeof body.model === 'string' ? body.model : 'fake'),
        usage: { prompt_tokens: input.length * 3, total_tokens: input.length * 3 },
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A fetch that sends requests for a hosted API (api.jina.ai, api.openai.com) to a local server. */
export function redirectFetch(localBase: string): typeof fetch {
  return (input, init) => {
    const u = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    if (u.hostname !== 'api.jina.ai' && u.hostname !== 'api.openai.com') return fetch(input, init);
    const local = new URL(localBase);
    u.protocol = local.protocol;
    u.host = local.host;
    return fetch(u, init);
  };
}
