/** Part 3 of the cache benchmark (see cache.ts): what per-caller limits add to a request. */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIT, MemoryLimiter } from '../../runtime/hooks/limits.js';
import { freePort, freshText, median, pct, post, round, settings, startRuntime } from './cache-lib.js';

export async function limiter(extraArgs: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'embedctl-bench-keys-'));
  const keys = join(dir, 'keys.yaml');
  const [LIMITED, FREE] = ['sk-bench-limited-0123456789', 'sk-bench-unlimited-0123456789'];
  writeFileSync(keys, `keys:\n  - {name: limited, key: ${LIMITED}, requestsPerMinute: 100000000, tokensPerMinute: 1000000000}\n  - {name: free, key: ${FREE}}\n`);
  const rt = await startRuntime(['--keys-file', keys, ...extraArgs]);
  try {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const lat = { limited: [] as number[], free: [] as number[] };
    const once = async (which: 'limited' | 'free') => {
      const s = performance.now();
      const status = await post(agent, rt.url, JSON.stringify({ input: freshText() }), { authorization: `Bearer ${which === 'limited' ? LIMITED : FREE}` });
      if (status !== 200) throw new Error(`${which}: status ${status}`);
      return performance.now() - s;
    };
    for (let k = 0; k < 200; k++) await once(k % 2 ? 'limited' : 'free'); // warm-up
    // Pairs (one limited, one free, back to back, order alternating) so both see the same machine.
    // Not the median of paired differences: which of a pair goes second matters more than the
    // limiter on a loaded machine, so those differences are two-humped and their median jumps.
    const rounds: Array<{ p50Limited: number; p50Free: number; overhead: number }> = [];
    for (let r = 0; r < settings.limiterRounds; r++) {
      const l: number[] = [];
      const f: number[] = [];
      const end = performance.now() + settings.durationMs;
      for (let k = 0; performance.now() < end; k++) {
        let a: number;
        let b: number;
        if (k % 2) {
          a = await once('limited');
          b = await once('free');
        } else {
          b = await once('free');
          a = await once('limited');
        }
        l.push(a);
        f.push(b);
      }
      l.sort((x, y) => x - y);
      f.sort((x, y) => x - y);
      lat.limited.push(...l);
      lat.free.push(...f);
      rounds.push({ p50Limited: round(pct(l, 50), 3), p50Free: round(pct(f, 50), 3), overhead: round(pct(l, 50) / pct(f, 50) - 1, 4) });
    }
    agent.destroy();
    return { requestsPerSide: lat.limited.length, p50LimitedMs: median(rounds.map((r) => r.p50Limited)), p50UnlimitedMs: median(rounds.map((r) => r.p50Free)), p50Overhead: median(rounds.map((r) => r.overhead)), rounds };
  } finally {
    await rt.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function withRedis<T>(f: (url: string) => Promise<T>): Promise<T | { skipped: string }> {
  if (spawnSync('redis-server', ['--version']).status !== 0) return { skipped: 'redis-server not on the PATH' };
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const done = new Promise((r) => child.once('exit', r));
  try {
    await new Promise((r) => setTimeout(r, 300));
    return await f(`redis://127.0.0.1:${port}`);
  } finally {
    child.kill('SIGTERM');
    await done;
  }
}

/** The in-memory limiter's own cost per request (admission + token debit), in microseconds: what it can add at most. */
export function limiterCostUs(): number {
  const lim = new MemoryLimiter();
  const spec = { requestsPerMinute: 100_000_000, tokensPerMinute: 1_000_000_000 };
  const n = 200_000;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    lim.takeSync(`caller-${i & 63}`, spec, ADMIT);
    lim.charge(`caller-${i & 63}`, spec, 20);
  }
  return round(((performance.now() - t0) * 1000) / n, 3);
}
