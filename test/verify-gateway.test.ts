// Evidence from the right side (issue 13.1): through a gateway at 0 % the "candidate" is hosted;
// the operator route reaches the self-hosted side whatever the split.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalRuntime } from '../src/adapters/local-stack.js';
import { runCli } from './helpers/cli.js';
import { embed, nginxOrSkip, startEvidenceStack, tempDir } from './helpers/gateway.js';

const { skip } = nginxOrSkip();
const tmp = tempDir('embedctl-verify-gateway-');

interface Side {
  answeredBy: string;
  backends: Record<string, number>;
  via: string;
}

describe.skipIf(skip)('evidence through a local gateway (real runtimes + real nginx)', () => {
  let stack: Awaited<ReturnType<typeof startEvidenceStack>> | undefined;
  let hosted: LocalRuntime;
  let cwd: string;
  let gateway: string;

  beforeAll(async () => {
    // The hosted stand-in serves the same model: a correct self-hosted side passes the gate.
    stack = await startEvidenceStack(tmp.dir);
    ({ hosted, cwd, gateway } = stack);
  }, 180_000);

  afterAll(async () => {
    await stack?.stop();
    tmp.cleanup();
  });

  it('at 0 %, --candidate <gateway> exits non-zero: the candidate answered from hosted', async () => {
    const r = await runCli(['verify-consistency', '--reference', hosted.url, '--candidate', gateway, '--sample', '8'], { cwd, env: {} });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--candidate: the candidate answered from hosted \(X-Embedctl-Backend: hosted 1 of 1 answers\)/);
    expect(r.stderr).toMatch(/--deployment/);
    expect(r.stdout).not.toMatch(/verdict: pass/);
  });

  it('--deployment local: the operator route gives self-hosted evidence at 0 %, and the report says who answered', async () => {
    const out = join(cwd, 'verify.json');
    const r = await runCli(['verify-consistency', '--deployment', 'local', '--sample', '8', '--json', '--out', out], { cwd, env: {} });
    expect(r.code, r.stderr).toBe(0);
    const doc = r.json<{ candidate: Side; reference: Side; verdict: string }>();
    expect(doc.verdict).toBe('pass');
    expect(doc.candidate).toMatchObject({ answeredBy: 'selfhosted', backends: { selfhosted: 1 } });
    expect(doc.candidate.via).toMatch(/X-Embedctl-Route: self-hosted \(operator key\)/);
    expect(doc.reference).toMatchObject({ answeredBy: 'hosted', backends: { hosted: 1 } });
    // The split itself is untouched: ordinary callers still go to hosted at 0 %.
    expect((await embed(gateway)).backend).toBe('hosted');
  });

  it('rag-overlap --deployment local compares the two sides through the gateway too', async () => {
    const r = await runCli(['rag-overlap', '--deployment', 'local', '--json'], { cwd, env: {} });
    expect(r.code, r.stderr).toBe(0);
    const doc = r.json<{ candidate: Side; reference: Side }>();
    expect(doc.candidate.answeredBy).toBe('selfhosted');
    expect(doc.reference.answeredBy).toBe('hosted');
  });
});
