import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cosine } from './helpers/reference-math.js';

/**
 * Issue 16, "verify-consistency --reference <ollama-shaped endpoint> works", end to end through the
 * real binary: two `embedctl serve` processes, the reference asked on its Ollama route
 * (/api/embed), the candidate on the OpenAI route of the other; the report's per-text cosines are
 * checked against vectors fetched directly, and each runtime's request counters show which route
 * answered.
 */

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = join(root, 'bin', 'embedctl.js');
const TEXTS = ['the river runs through the old city', 'coffee at the market in the morning', 'a quick note about winter', 'music and film on the network', 'the bank is closed today', 'students read a book'];

/** Every serve process started, so afterAll ends them even when a start failed half-way. */
const started: ChildProcess[] = [];

interface Serve {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** `embedctl serve --port 0 --json`: the URL comes in the JSON document on stdout once the models are ready. */
async function serve(models: string[]): Promise<Serve> {
  const child = spawn(process.execPath, [bin, 'serve', ...models.flatMap((m) => ['--model', m]), '--host', '127.0.0.1', '--port', '0', '--json'], {
    cwd: root,
    env: { ...process.env, CI: 'true' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push(child);
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const exited = new Promise<void>((r) => child.once('exit', () => (process.off('exit', killOnExit), r())));
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const url = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`embedctl serve gave no URL within 30 s:\n${err}`)), 30_000);
    // printJson writes one (indented) document: read lines until they parse.
    let doc = '';
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      doc += `${line}\n`;
      try {
        const url = (JSON.parse(doc) as { url: string }).url;
        clearTimeout(t);
        lines.close();
        resolve(url);
      } catch {
        /* not complete yet */
      }
    });
    void exited.then(() => reject(new Error(`embedctl serve exited:\n${err}`)));
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const k = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(k);
  };
  return { url, child, stop };
}

function embedctl(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { cwd: root, env: { ...process.env, CI: 'true', ...env }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Sum of embedctl_requests_total{route=...} over every status, from the runtime's /metrics. */
async function requests(url: string, route: string): Promise<number> {
  const text = await fetch(`${url}/metrics`).then((r) => r.text());
  let n = 0;
  for (const m of text.matchAll(/^embedctl_requests_total\{([^}]*)\} (\S+)/gm)) if (m[1]!.includes(`route="${route}"`)) n += Number(m[2]);
  return n;
}

let dir: string;
let reference: Serve;
let candidate: Serve;
const env = () => ({ EMBEDCTL_CACHE_DIR: join(dir, 'cache') });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'embedctl-verify-ollama-'));
  writeFileSync(join(dir, 'texts.txt'), `${TEXTS.join('\n')}\n`);
  [reference, candidate] = await Promise.all([serve(['tiny-bert']), serve(['tiny-bert', 'tiny-bert-cls'])]);
}, 60_000);
afterAll(async () => {
  await Promise.all([reference?.stop(), candidate?.stop()]);
  for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const sides = (candidateModel: string) => [
  'verify-consistency',
  '--reference', `${reference.url}/api/embed`,
  '--reference-model', 'tiny-bert',
  '--candidate', `${candidate.url}/v1/embeddings`,
  '--candidate-shape', 'openai',
  '--candidate-model', candidateModel,
  '--texts', join(dir, 'texts.txt'),
  '--batch-size', '4',
  '--json',
];

describe('embedctl verify-consistency with an Ollama-shaped reference (real binary, real runtimes)', () => {
  it('same model on both sides: pass, exit 0, the reference answered on /api/embed only', async () => {
    const before = { ollama: await requests(reference.url, '/api/embed'), openai: await requests(reference.url, '/v1/embeddings') };
    const r = await embedctl(sides('tiny-bert'), env());
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as Record<string, any>;
    expect(j.schema).toBe('embedctl.verify-consistency/v1');
    expect(j.reference).toMatchObject({ endpoint: `${reference.url}/api/embed`, model: 'tiny-bert' });
    expect(j.candidate).toMatchObject({ endpoint: `${candidate.url}/v1/embeddings`, model: 'tiny-bert' });
    expect(j.count).toBe(TEXTS.length);
    expect(j.dimensions).toBe(32);
    expect(j.cosine.min).toBeGreaterThanOrEqual(0.99999);
    expect(j.verdict).toBe('pass');
    // 6 texts in batches of 4: two Ollama calls on the reference, none on its OpenAI route.
    expect((await requests(reference.url, '/api/embed')) - before.ollama).toBe(2);
    expect((await requests(reference.url, '/v1/embeddings')) - before.openai).toBe(0);
    expect(await requests(candidate.url, '/v1/embeddings')).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it('a different pooling on the candidate: per-text cosines as computed directly, verdict fail, exit 3', async () => {
    const r = await embedctl(sides('tiny-bert-cls'), env());
    expect(r.code, r.stderr).toBe(3);
    const j = JSON.parse(r.stdout) as Record<string, any>;
    expect(j.verdict).toBe('fail');
    expect(r.stderr).toMatch(/below --min-cosine 0.999/);
    // Independently: the reference's Ollama vectors and the candidate's CLS vectors, fetched here.
    const ref = (await fetch(`${reference.url}/api/embed`, { method: 'POST', body: JSON.stringify({ model: 'tiny-bert', input: TEXTS }) }).then((x) => x.json())) as { embeddings: number[][] };
    const cand = (await fetch(`${candidate.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tiny-bert-cls', input: TEXTS }) }).then((x) => x.json())) as {
      data: Array<{ embedding: number[] }>;
    };
    const direct = TEXTS.map((_, i) => cosine(ref.embeddings[i]!, cand.data[i]!.embedding));
    expect(j.worst).toHaveLength(TEXTS.length);
    for (const w of j.worst as Array<{ index: number; text: string; cosine: number }>) {
      expect(w.text).toBe(TEXTS[w.index]);
      expect(w.cosine).toBeCloseTo(direct[w.index]!, 6);
    }
    expect(j.cosine.min).toBeCloseTo(Math.min(...direct), 6);
    expect(j.belowMin).toBe(direct.filter((c) => c < 0.999).length);
    expect(Math.min(...direct)).toBeLessThan(0.99);
  }, 60_000);
});
