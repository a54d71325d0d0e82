// A consistency or overlap report is evidence about self-hosted only if the candidate was the
// self-hosted side. One that compared the hosted API with itself (cosine 1) once passed the gate.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { collectEvidence } from '../src/adapters/evidence.js';
import { DEFAULT_GATES, evaluateGates } from '../src/core/rollout/gates.js';
import { runCli } from './helpers/cli.js';
import { startFakeEmbeddings } from './helpers/fake-embeddings.js';
import { tempProject, writeReports } from './helpers/rollout-fixtures.js';

let cwd: string;
afterEach(() => cwd && rmSync(cwd, { recursive: true, force: true }));

const JINA = 'https://api.jina.ai/v1/embeddings';
const GATEWAY = 'http://10.0.0.5:8080';
const RUNTIME = 'http://10.0.1.7:8080';

interface Side {
  url: string;
  endpoint?: string;
  answeredBy?: string;
  cached?: number;
  model?: string | null;
  deployment?: string;
}
const side = (url: string, answeredBy: string, more: Partial<Side> = {}): Side => ({ url, endpoint: url.endsWith('/embeddings') ? url : `${url}/v1/embeddings`, answeredBy, cached: 0, model: 'jina-embeddings-v3', ...more });

/** The four fixture reports, with verify-consistency and rag-overlap carrying these sides. */
function reportsWith(reference: Side, candidate: Side): string {
  cwd = tempProject();
  const dir = writeReports(cwd, new Date());
  for (const file of ['verify-consistency.json', 'rag-overlap.json']) {
    const doc = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, file), JSON.stringify({ ...doc, cosine: { min: 1, mean: 1 }, overlap: { mean: 1, min: 1 }, reference, candidate }));
  }
  return dir;
}

async function gatesFor(reference: Side, candidate: Side, expected?: { deployment?: string; model?: string }) {
  const dir = reportsWith(reference, candidate);
  const now = new Date();
  const gates = evaluateGates((await collectEvidence({ evidenceDir: dir, now, expected })).evidence, DEFAULT_GATES, now);
  return { consistency: gates.find((g) => g.name === 'consistency')!, overlap: gates.find((g) => g.name === 'overlap')! };
}

describe('rollout gates refuse a comparison that did not reach self-hosted', () => {
  it('rollout check: hosted compared with hosted (both api.jina.ai, answered directly, cosine 1) is inconclusive, exit 3', async () => {
    reportsWith(side(JINA, 'direct'), side(JINA, 'direct'));
    const r = await runCli(['rollout', 'check', '--json'], { cwd });
    expect(r.code).toBe(3);
    const gates = r.json<{ gates: Array<{ name: string; status: string; value: number | null; note?: string }> }>().gates;
    const c = gates.find((g) => g.name === 'consistency')!;
    expect(c).toMatchObject({ status: 'inconclusive', value: null });
    expect(c.note).toMatch(/verify-consistency\.json is not evidence about self-hosted: candidate and reference are the same endpoint \(https:\/\/api\.jina\.ai\/v1\/embeddings\)/);
    expect(c.note).toMatch(/produce it with: embedctl verify-consistency/);
    expect(gates.find((g) => g.name === 'overlap')).toMatchObject({ status: 'inconclusive', value: null });
    const text = await runCli(['rollout', 'check'], { cwd });
    expect(text.stdout).not.toMatch(/consistency\s+1\.0000\s+pass/);
  });

  it('a candidate answered by the hosted side of a gateway, a mix, the cache, or the hosted API itself is inconclusive', async () => {
    const cases: Array<[Side, Side, RegExp]> = [
      [side(JINA, 'direct'), side(GATEWAY, 'hosted'), /answered by the hosted side of the gateway/],
      [side(JINA, 'direct'), side(GATEWAY, 'mixed'), /a mix of hosted and self-hosted/],
      [side(GATEWAY, 'hosted'), side(GATEWAY, 'cache', { cached: 40 }), /answered from the embeddings cache \(40 texts\)/],
      [side(GATEWAY, 'hosted'), side(GATEWAY, 'selfhosted', { cached: 3 }), /answered from the embeddings cache \(3 texts\)/],
      [side(RUNTIME, 'direct'), side('https://api.openai.com/v1/embeddings', 'direct'), /the candidate is the hosted API/],
      [side(GATEWAY, 'selfhosted'), side(GATEWAY, 'selfhosted'), /self-hosted compared with itself/],
      [side(JINA, 'direct'), { url: RUNTIME }, /does not record who answered the candidate/],
    ];
    for (const [ref, cand, why] of cases) {
      const g = await gatesFor(ref, cand);
      expect(g.consistency.status, `${cand.answeredBy}`).toBe('inconclusive');
      expect(g.consistency.note).toMatch(why);
      expect(g.overlap.status).toBe('inconclusive');
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  it('the self-hosted side through the gateway (same URL, backend header says so) or a runtime directly passes', async () => {
    for (const [ref, cand] of [
      [side(GATEWAY, 'hosted', { deployment: 'blue' }), side(GATEWAY, 'selfhosted', { deployment: 'blue' })],
      [side(JINA, 'cache', { cached: 200 }), side(RUNTIME, 'direct')],
    ] as Array<[Side, Side]>) {
      const g = await gatesFor(ref, cand, { deployment: 'blue' });
      expect(g.consistency).toMatchObject({ status: 'pass', value: 1 });
      expect(g.overlap).toMatchObject({ status: 'pass', value: 1 });
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  it('a report about another deployment or model than the one rolled out is inconclusive', async () => {
    const other = await gatesFor(side(GATEWAY, 'hosted', { deployment: 'green' }), side(GATEWAY, 'selfhosted', { deployment: 'green' }), { deployment: 'blue' });
    expect(other.consistency.status).toBe('inconclusive');
    expect(other.consistency.note).toMatch(/it measured deployment "green", and this rollout moves "blue"/);
    rmSync(cwd, { recursive: true, force: true });
    const model = await gatesFor(side(JINA, 'direct'), side(RUNTIME, 'direct', { model: 'bge-small' }), { model: 'jina-embeddings-v3' });
    expect(model.consistency.note).toMatch(/the candidate served model bge-small, and this rollout moves jina-embeddings-v3/);
  });

  it('end to end: verify-consistency of an endpoint against itself writes a report rollout check will not pass', async () => {
    const fake = await startFakeEmbeddings();
    try {
      cwd = tempProject();
      const dir = writeReports(cwd, new Date());
      const out = join(dir, 'verify-consistency.json');
      const v = await runCli(['verify-consistency', '--reference', fake.url, '--candidate', fake.url, '--sample', '5', '--cache', 'off', '--out', out], { cwd, env: {} });
      expect(v.code, v.stderr).toBe(0);
      const r = await runCli(['rollout', 'check', '--json'], { cwd });
      expect(r.code).toBe(3);
      const c = r.json<{ gates: Array<{ name: string; status: string; note?: string }> }>().gates.find((g) => g.name === 'consistency')!;
      expect(c.status).toBe('inconclusive');
      expect(c.note).toMatch(/same endpoint \(http:\/\/127\.0\.0\.1:\d+\/v1\/embeddings\)/);
    } finally {
      await fake.stop();
    }
  });
});
