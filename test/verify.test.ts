import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';
import { hashVector, redirectFetch, startFakeEmbeddings } from './helpers/fake-embeddings.js';
import { cosine } from '../src/core/vectors.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'embedctl-verify-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (stops.length) await stops.pop()!();
});
async function fake(o: Parameters<typeof startFakeEmbeddings>[0] = {}) {
  const s = await startFakeEmbeddings(o);
  stops.push(s.stop);
  return s;
}
const env = () => ({ EMBEDCTL_CACHE_DIR: join(dir, 'cache') });

/** A candidate that drifts: texts containing "e" get noise of a size set by their length. */
function drifting(text: string): number[] {
  const v = hashVector(text, 16);
  if (!text.includes('e')) return v;
  const noise = hashVector(`noise ${text}`, 16);
  const eps = 0.03 * (text.length % 7);
  return v.map((x, i) => x + eps * noise[i]!);
}

describe('verify-consistency', () => {
  it('identical endpoints: cosine 1 on the built-in sample, exit 0, the schema and fields rollout reads', async () => {
    const a = await fake();
    const b = await fake();
    const r = await runCli(['verify-consistency', '--reference', a.url, '--candidate', b.url, '--json'], { env: env() });
    expect(r.code, r.stderr).toBe(0);
    const j = r.json<Record<string, any>>();
    expect(j.schema).toBe('embedctl.verify-consistency/v1');
    expect(j.count).toBeGreaterThanOrEqual(200);
    expect(j.dimensions).toBe(16);
    expect(j.cosine.min).toBeCloseTo(1, 6);
    expect(j.verdict).toBe('pass');
    expect(j.thresholds).toEqual({ minCosine: 0.999, warnCosine: 0.99 });
    expect(j.worst).toHaveLength(10);
    expect(typeof j.generatedAt).toBe('string');
    // Progress goes to stderr, never stdout.
    expect(r.stderr).toMatch(/candidate: \d+\/\d+ \(100%\)/);
  });

  it('reports drift exactly as computed directly, names the worst text and exits 3', async () => {
    const texts = Array.from({ length: 30 }, (_, i) => `sentence ${i} ${'abcdefg'.slice(0, i % 7)}${i % 3 ? 'e' : ''}`);
    const file = join(dir, 'texts.txt');
    writeFileSync(file, texts.join('\n') + '\n');
    const a = await fake();
    const b = await fake({ vectorOf: drifting });
    const out = join(dir, 'report.json');
    const r = await runCli(['verify-consistency', '--reference', a.url, '--candidate', b.url, '--texts', file, '--json', '--out', out], { env: env() });
    const direct = texts.map((t) => cosine(Float32Array.from(hashVector(t, 16)), Float32Array.from(drifting(t))));
    const min = Math.min(...direct);
    const mean = direct.reduce((x, y) => x + y, 0) / direct.length;
    const j = r.json<Record<string, any>>();
    expect(j.cosine.min).toBeCloseTo(min, 9);
    expect(j.cosine.mean).toBeCloseTo(mean, 9);
    expect(j.belowMin).toBe(direct.filter((c) => c < 0.999).length);
    expect(j.belowWarn).toBe(direct.filter((c) => c < 0.99).length);
    const worstIdx = direct.indexOf(min);
    expect(j.worst[0]).toMatchObject({ index: worstIdx, text: texts[worstIdx] });
    expect(min).toBeLessThan(0.999);
    expect(r.code).toBe(3);
    expect(j.verdict).toBe(min < 0.99 ? 'fail' : 'warn');
    expect(r.stderr).toMatch(new RegExp(`below --min-cosine 0.999 .*worst: #${worstIdx}`));
    // --out holds the same document, schema included.
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual(j);
  });

  it('table output shows both thresholds and the verdict', async () => {
    const a = await fake();
    const r = await runCli(['verify-consistency', '--reference', a.url, '--candidate', a.url, '--sample', '20', '--min-cosine', '0.9999', '--warn-cosine', '0.995'], { env: env() });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/gate --min-cosine 0.9999: 0 text\(s\) below/);
    expect(r.stdout).toMatch(/rollback trigger --warn-cosine 0.995: 0 text\(s\) below/);
    expect(r.stdout).toMatch(/20 texts, 16 dimensions/);
    expect(r.stdout).toMatch(/verdict: pass/);
  });

  it('--sample/--seed picks the same texts every time', async () => {
    const a = await fake();
    const run = (seed: string) => runCli(['verify-consistency', '--reference', a.url, '--candidate', a.url, '--sample', '15', '--seed', seed, '--json'], { env: env() });
    const ids = async (seed: string) => (await run(seed)).json<{ worst: Array<{ id: string }> }>().worst.map((w) => w.id).sort();
    expect(await ids('5')).toEqual(await ids('5'));
    expect(await ids('5')).not.toEqual(await ids('6'));
  });

  it('different dimensions: a clear error, not a cosine', async () => {
    const a = await fake({ dim: 16 });
    const b = await fake({ dim: 8 });
    const r = await runCli(['verify-consistency', '--reference', a.url, '--candidate', b.url, '--sample', '5'], { env: env() });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/reference answers 16-dimensional vectors .* candidate 8-dimensional/);
    expect(r.stderr).toMatch(/re-index/);
  });

  it('a NaN from the candidate names the endpoint and the text index', async () => {
    const texts = ['one', 'two', 'three'];
    const file = join(dir, 'nan.jsonl');
    writeFileSync(file, texts.map((t, i) => JSON.stringify({ id: `t${i}`, text: t })).join('\n'));
    const a = await fake({ dim: 2, vectorOf: () => [1, 0] });
    const b = await fake({ dim: 2, vectorOf: (t) => (t === 'three' ? [Number.NaN, 1] : [1, 0]) });
    const r = await runCli(['verify-consistency', '--reference', a.url, '--candidate', b.url, '--texts', file], { env: env() });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${b.url}/v1/embeddings: text #2: NaN at dimension 0`);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('bad input: one line naming the flag, exit 2', async () => {
    const a = await fake();
    const cases: Array<[string[], RegExp]> = [
      [['--min-cosine', 'high'], /--min-cosine: expected a number/],
      [['--min-cosine', '0.9', '--warn-cosine', '0.95'], /--warn-cosine: 0.95 is above --min-cosine 0.9/],
      [['--texts', join(dir, 'missing.txt')], /--texts: cannot read .*ENOENT/],
      [['--sample', '0'], /--sample: must be >= 1/],
      [['--header', 'nocolon'], /--header: expected "Name: value"/],
      [['--cache', 'sometimes'], /--cache: expected one of paid, all, off/],
    ];
    for (const [extra, re] of cases) {
      const r = await runCli(['verify-consistency', '--reference', a.url, '--candidate', a.url, ...extra], { env: env() });
      expect(r.code, extra.join(' ')).toBe(2);
      expect(r.stderr, extra.join(' ')).toMatch(re);
    }
    const bad = await runCli(['verify-consistency', '--reference', 'not a url', '--candidate', a.url], { env: env() });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--reference: not a URL/);
    expect(a.requests).toHaveLength(0);
  });

  it('cost guard: above --max-cost without a terminal needs --yes and sends nothing; --yes goes ahead', async () => {
    const a = await fake();
    const args = ['verify-consistency', '--reference', a.url, '--candidate', a.url, '--sample', '10', '--price-per-million', '1000000'];
    const r = await runCli(args, { env: env() });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--yes: estimated cost \$[\d,.]+ .* is over --max-cost \$1\.00/);
    expect(a.requests).toHaveLength(0);
    const ok = await runCli([...args, '--yes', '--cache', 'off'], { env: env() });
    expect(ok.code, ok.stderr).toBe(0);
    expect(a.requests.length).toBeGreaterThan(0);
  });

  it('on a terminal the cost guard asks, and a "no" stops before any request', async () => {
    const a = await fake();
    const asked: string[] = [];
    const r = await runCli(['verify-consistency', '--reference', a.url, '--candidate', a.url, '--sample', '3', '--price-per-million', '1e9'], {
      env: env(),
      isTTY: true,
      adapters: { confirm: async (q: { message: string }) => (asked.push(q.message), false) },
    });
    expect(asked[0]).toMatch(/Spend about \$/);
    expect(r.code).toBe(2);
    expect(a.requests).toHaveLength(0);
  });

  it('a hosted reference (Jina) is cached by default: the second run sends it nothing', async () => {
    const jina = await fake();
    const local = await fake();
    const args = ['verify-consistency', '--reference', 'https://api.jina.ai/v1/embeddings', '--candidate', local.url, '--sample', '12', '--task', 'text-matching', '--json'];
    const o = { env: { ...env(), JINA_API_KEY: 'jina_test' }, adapters: { fetch: redirectFetch(jina.url) } };
    const first = await runCli(args, o);
    expect(first.code, first.stderr).toBe(0);
    const sent = jina.requests.length;
    expect(sent).toBeGreaterThan(0);
    expect(jina.requests[0]!.headers.authorization).toBe('Bearer jina_test');
    expect(jina.requests[0]!.body).toMatchObject({ model: 'jina-embeddings-v3', task: 'text-matching', late_chunking: false });
    expect(first.stderr).toMatch(/estimated cost \$0\.00 \(api\.jina\.ai: ~[\d,]+ tokens/);
    const second = await runCli(args, o);
    expect(second.code).toBe(0);
    expect(jina.requests.length).toBe(sent);
    expect(second.json<{ reference: { cached: number } }>().reference.cached).toBe(12);
    // The self-hosted side is asked again: a redeploy behind the same URL must not hide behind a cache.
    expect(local.requests.length).toBe(2);
  });
});
