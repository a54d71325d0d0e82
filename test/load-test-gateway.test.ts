// load-test through a gateway (issue 13.1): --deployment loads the self-hosted side with the
// operator route whatever the split; an answer from hosted is an error, never a pass, and the
// report says who answered. Real runtimes, real nginx (up --local), autocannon.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalRuntime } from '../src/adapters/local-stack.js';
import { runCli } from './helpers/cli.js';
import { embed, nginxOrSkip, startEvidenceStack, tempDir } from './helpers/gateway.js';

const { skip } = nginxOrSkip();
const tmp = tempDir('embedctl-load-gateway-');
const LOAD = ['--engine', 'autocannon', '--stages', '2s:2', '--batch', '2', '--p95', '5000', '--max-requests', '400'];

async function requestsServed(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  // Embedding routes only: scrapes and health checks count themselves too.
  return [...text.matchAll(/^embedctl_requests_total\{[^}]*route="[^"]*embed[^"]*"[^}]*\}\s+(\d+)/gm)].reduce((a, m) => a + Number(m[1]), 0);
}

describe.skipIf(skip)('load-test through a local gateway (real runtimes + real nginx)', () => {
  let stack: Awaited<ReturnType<typeof startEvidenceStack>> | undefined;
  let hosted: LocalRuntime;
  let cwd: string;
  let gateway: string;
  let selfHostedUrl: string;

  beforeAll(async () => {
    stack = await startEvidenceStack(tmp.dir);
    ({ hosted, cwd, gateway } = stack);
    selfHostedUrl = stack.runtimes[0]!.url;
  }, 180_000);

  afterAll(async () => {
    await stack?.stop();
    tmp.cleanup();
  });

  it('at 0 %, --target <gateway> is refused before any load (the gateway says its share on /health): hosted sees no request, no report is written', { timeout: 60_000 }, async () => {
    const out = join(cwd, 'hosted-load.json');
    const hostedBefore = await requestsServed(hosted.url);
    const r = await runCli(['load-test', '--target', gateway, ...LOAD, '--out', out], { cwd, env: {} });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/error: --target: http:\/\/127\.0\.0\.1:\d+ is an embedctl gateway sending 0 % of requests to self-hosted: a load through it would land 100 % on the hosted API \(and its bill\); nothing was sent/);
    expect(r.stderr).toMatch(/--deployment/);
    expect(existsSync(out)).toBe(false);
    expect(await requestsServed(hosted.url)).toBe(hostedBefore);
  });

  it('--deployment local loads the self-hosted side at 0 % and records who answered', { timeout: 60_000 }, async () => {
    const out = join(cwd, 'load.json');
    const hostedBefore = await requestsServed(hosted.url);
    const selfBefore = await requestsServed(selfHostedUrl);
    const r = await runCli(['load-test', '--deployment', 'local', ...LOAD, '--json', '--out', out], { cwd, env: {} });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/preflight: 5 of 5 answers from selfhosted via deployment local: .* X-Embedctl-Route: self-hosted \(operator key\)/);
    const doc = r.json<{ requests: number; answeredBy: string; backends: Record<string, number>; via: string; target: string }>();
    expect(doc.answeredBy).toBe('selfhosted');
    expect(doc.backends.hosted ?? 0).toBe(0);
    expect(doc.backends.selfhosted).toBeGreaterThan(0);
    expect(doc.backends.selfhosted).toBe(doc.requests);
    expect(doc.via).toMatch(/^deployment local: http:\/\/127\.0\.0\.1:\d+ with X-Embedctl-Route: self-hosted/);
    expect(doc.target.startsWith(gateway)).toBe(true);
    // The file rollout reads says the same, and the load landed on the runtime, not on hosted.
    expect(JSON.parse(readFileSync(out, 'utf8'))).toMatchObject({ schema: 'embedctl.load-test/v1', answeredBy: 'selfhosted' });
    expect(await requestsServed(hosted.url)).toBe(hostedBefore);
    expect((await requestsServed(selfHostedUrl)) - selfBefore).toBeGreaterThanOrEqual(doc.requests);
    // The split is untouched: ordinary callers still reach hosted.
    expect((await embed(gateway)).backend).toBe('hosted');
  });

  it('a wrong operator key stops at the preflight, before any load; --target with --deployment is refused', { timeout: 60_000 }, async () => {
    const hostedBefore = await requestsServed(hosted.url);
    const r = await runCli(['load-test', '--deployment', 'local', ...LOAD], { cwd, env: { EMBEDCTL_OPERATOR_KEY: 'not-the-operator-key' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/error: --deployment: /);
    expect(r.stderr).not.toMatch(/load-test: autocannon/);
    expect((await requestsServed(hosted.url)) - hostedBefore).toBeLessThanOrEqual(5);
    const both = await runCli(['load-test', '--deployment', 'local', '--target', gateway], { cwd, env: {} });
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/^embedctl: error: --deployment: choose one: --target .* or --deployment/m);
  });
});
