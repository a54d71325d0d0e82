import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { createEmbeddingsClient, resolveEndpoint } from '../src/adapters/embeddings-client.js';

// A small Ollama-shaped server: POST /api/embed {model, input[]} -> {model, embeddings[][], prompt_eval_count}.
const seen: Array<Record<string, unknown>> = [];
const server = createServer((req, res) => {
  let raw = '';
  req.on('data', (c: Buffer) => (raw += c.toString()));
  req.on('end', () => {
    const body = JSON.parse(raw) as { model: string; input: string[] };
    seen.push({ path: req.url, ...body });
    if (req.url !== '/api/embed') {
      res.writeHead(404).end('{"error":"not found"}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ model: body.model, embeddings: body.input.map((t) => [t.length, 1, 0]), prompt_eval_count: body.input.length * 2 }));
  });
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('embeddings client: the Ollama shape', () => {
  it('recognises /api/embed, sends {model, input}, reads embeddings in order', async () => {
    expect(resolveEndpoint(`${base}/api/embed`)).toMatchObject({ shape: 'ollama', endpoint: `${base}/api/embed` });
    expect(resolveEndpoint(base, 'ollama').endpoint).toBe(`${base}/api/embed`);
    const client = createEmbeddingsClient({ url: `${base}/api/embed`, model: 'nomic-embed-text', batchSize: 2 });
    const r = await client.embed(['a', 'bbb', 'cc']);
    expect(r.vectors.map((v) => Array.from(v))).toEqual([[1, 1, 0], [3, 1, 0], [2, 1, 0]]);
    expect(r.model).toBe('nomic-embed-text');
    expect(r.usage.tokens).toBe(6);
    expect(r.backends).toEqual({ none: 2 });
    expect(seen[0]).toMatchObject({ path: '/api/embed', model: 'nomic-embed-text', input: ['a', 'bbb'], truncate: true });
  });
});
