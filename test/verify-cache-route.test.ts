// The embeddings cache must never answer for the candidate. Through --deployment both sides are
// the same gateway URL and differ only in X-Embedctl-Route; a cache keyed without the route (and
// turned on for both sides by --price-per-million) handed the hosted answers to the candidate:
// min cosine 1, pass, and the self-hosted side never asked. A gateway stand-in on 127.0.0.1 that
// answers differently per route shows which side really answered.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';
import { hashVector } from './helpers/fake-embeddings.js';

const OPERATOR = 'op-test-key';

interface Gateway {
  url: string;
  /** Texts embedded per route. */
  texts: Record<'hosted' | 'self-hosted', number>;
  server: Server;
}

/**
 * The split is at 0 %: callers get hosted. An operator key with X-Embedctl-Route picks a side,
 * and X-Embedctl-Backend says who answered, as the real nginx gateway does. `vectorOf` gives
 * each route its own vectors.
 */
async function startGateway(vectorOf: (route: 'hosted' | 'self-hosted', text: string) => number[]): Promise<Gateway> {
  const texts = { hosted: 0, 'self-hosted': 0 };
  const server = createServer(async (req, res) => {
    let raw = '';
    for await (const c of req) raw += c;
    const asked = req.headers['x-embedctl-route'];
    const operator = req.headers.authorization === `Bearer ${OPERATOR}`;
    const route = operator && asked === 'self-hosted' ? 'self-hosted' : 'hosted';
    const body = JSON.parse(raw) as { input: string | string[] };
    const input = Array.isArray(body.input) ? body.input : [body.input];
    texts[route] += input.length;
    res.writeHead(200, { 'content-type': 'application/json', 'x-embedctl-backend': route === 'hosted' ? 'hosted' : 'selfhosted' });
    res.end(JSON.stringify({ data: input.map((t, index) => ({ index, embedding: vectorOf(route, t) })), model: 'm', usage: { total_tokens: input.length * 3 } }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, texts, server };
}

/** Self-hosted drifts well below --min-cosine 0.999 but stays the same model (median cosine > 0.5). */
function drifted(route: 'hosted' | 'self-hosted', text: string): number[] {
  const v = hashVector(text, 16);
  if (route === 'hosted') return v;
  const noise = hashVector(`noise ${text}`, 16);
  return v.map((x, i) => x + 0.3 * noise[i]!);
}

/** Passage i along axis i (self-hosted: axis i+1), queries identical: overlap@1 is 0 on self-hosted. */
function rotated(route: 'hosted' | 'self-hosted', text: string): number[] {
  const [kind, n] = text.split(' ') as [string, string];
  const v = hashVector(text, 8).map((x) => 0.01 * x);
  v[(Number(n) + (route === 'self-hosted' && kind === 'passage' ? 1 : 0)) % 8] = 1;
  return v;
}

let root: string;
let cwd: string;
let gw: Gateway;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'embedctl-cache-route-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A project whose local stack is the stand-in gateway, with its own cache dir. */
function project(gatewayUrl: string): { cwd: string; env: Record<string, string> } {
  cwd = mkdtempSync(join(root, 'p-'));
  mkdirSync(join(cwd, '.embedctl'), { recursive: true });
  writeFileSync(join(cwd, '.embedctl', 'local.json'), JSON.stringify({ url: gatewayUrl }));
  return { cwd, env: { EMBEDCTL_OPERATOR_KEY: OPERATOR, EMBEDCTL_CACHE_DIR: join(cwd, 'cache') } };
}

interface SideDoc {
  answeredBy: string;
  cached: number;
  deployment?: string;
}

describe('verify-consistency --deployment with the cache on', () => {
  let p: ReturnType<typeof project>;
  beforeEach(async () => {
    gw = await startGateway(drifted);
    p = project(gw.url);
    return () => new Promise<void>((r) => (gw.server.closeAllConnections(), gw.server.close(() => r())));
  });

  it('--price-per-million: the candidate is asked through its own route, and a drifting self-hosted side fails (exit 3)', async () => {
    const args = ['verify-consistency', '--deployment', 'local', '--sample', '8', '--price-per-million', '0.02', '--yes', '--json'];
    const first = await runCli(args, p);
    expect(first.code, first.stderr).toBe(3);
    const doc = first.json<{ candidate: SideDoc; reference: SideDoc; cosine: { min: number }; verdict: string }>();
    expect(doc.candidate).toMatchObject({ answeredBy: 'selfhosted', cached: 0, deployment: 'local' });
    expect(doc.reference).toMatchObject({ answeredBy: 'hosted', cached: 0 });
    expect(doc.cosine.min).toBeLessThan(0.999);
    expect(gw.texts['self-hosted']).toBe(8);
    expect(first.stdout).not.toMatch(/answered by cache/);

    // A second run: the paid reference comes from the cache, the candidate is asked again.
    const second = await runCli(args, p);
    expect(second.code, second.stderr).toBe(3);
    const again = second.json<{ candidate: SideDoc; reference: SideDoc }>();
    expect(again.reference).toMatchObject({ cached: 8, answeredBy: 'cache' });
    expect(again.candidate).toMatchObject({ answeredBy: 'selfhosted', cached: 0 });
    expect(gw.texts).toEqual({ hosted: 8, 'self-hosted': 16 });
  });

  it('--cache all does not cache the candidate either', async () => {
    const args = ['verify-consistency', '--deployment', 'local', '--sample', '5', '--cache', 'all', '--json'];
    expect((await runCli(args, p)).code).toBe(3);
    const r = await runCli(args, p);
    expect(r.code, r.stderr).toBe(3);
    expect(r.json<{ candidate: SideDoc }>().candidate).toMatchObject({ answeredBy: 'selfhosted', cached: 0 });
    expect(gw.texts).toEqual({ hosted: 5, 'self-hosted': 10 });
  });

  it('a reference cached through one route is not served for the same URL with another route', async () => {
    // Reference pinned to self-hosted by hand, then to hosted: the second must ask the gateway.
    const base = ['verify-consistency', '--reference', gw.url, '--reference-header', `Authorization: Bearer ${OPERATOR}`, '--candidate', gw.url,
      '--candidate-header', `Authorization: Bearer ${OPERATOR}`, '--candidate-header', 'X-Embedctl-Route: self-hosted', '--sample', '4', '--cache', 'all', '--json'];
    const pinnedSelf = await runCli([...base, '--reference-header', 'X-Embedctl-Route: self-hosted'], p);
    expect(pinnedSelf.code, pinnedSelf.stderr).toBe(0);
    const pinnedHosted = await runCli([...base, '--reference-header', 'X-Embedctl-Route: hosted'], p);
    const doc = pinnedHosted.json<{ reference: SideDoc }>();
    expect(doc.reference).toMatchObject({ cached: 0, answeredBy: 'hosted' });
    expect(pinnedHosted.code).toBe(3);
  });
});

describe('rag-overlap --deployment with the cache on', () => {
  it('--price-per-million: the candidate is asked through its own route and its overlap is measured (exit 3)', async () => {
    gw = await startGateway(rotated);
    try {
      const p = project(gw.url);
      const corpus = join(p.cwd, 'corpus.jsonl');
      const queries = join(p.cwd, 'queries.jsonl');
      writeFileSync(corpus, Array.from({ length: 8 }, (_, i) => JSON.stringify({ id: `p${i}`, text: `passage ${i}` })).join('\n'));
      writeFileSync(queries, Array.from({ length: 4 }, (_, q) => JSON.stringify({ id: `q${q}`, text: `query ${q}` })).join('\n'));
      const args = ['rag-overlap', '--deployment', 'local', '--corpus', corpus, '--queries', queries, '--k', '1', '--price-per-million', '0.02', '--yes', '--json'];
      for (const run of [1, 2]) {
        const r = await runCli(args, p);
        expect(r.code, r.stderr).toBe(3);
        const doc = r.json<{ candidate: SideDoc; reference: SideDoc; overlap: { mean: number } }>();
        expect(doc.candidate).toMatchObject({ answeredBy: 'selfhosted', cached: 0, deployment: 'local' });
        expect(doc.overlap.mean).toBe(0);
        expect(gw.texts['self-hosted']).toBe(12 * run);
      }
      expect(gw.texts.hosted).toBe(12);
    } finally {
      gw.server.closeAllConnections();
      gw.server.close();
    }
  });
});
