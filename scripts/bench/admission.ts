/**
 * Issue 14 latency-aware admission: 1,024 one-input clients in closed loops against one runtime
 * with --max-queue-ms B. Refused clients wait the Retry-After they are given (as a well-behaved
 * client does). Target: some 429s, and p99 of accepted requests within 2 x B. The same load
 * with --max-queue-ms 0 (count-only admission, as before) is the baseline.
 *   node dist/scripts/bench/admission.js [--model default] [--budget-ms 250] [--clients 1024] [--duration-ms 8000]
 */
import { parseArgs } from 'node:util';
import { closedLoop, pct, post, r2, startRuntime, writeResult } from './runtime-lib.js';

const { values: f } = parseArgs({ options: { model: { type: 'string', default: 'default' }, 'budget-ms': { type: 'string', default: '250' }, clients: { type: 'string', default: '1024' }, 'duration-ms': { type: 'string', default: '8000' } } });
const BUDGET = Number(f['budget-ms']);
const CLIENTS = Number(f.clients);
const DURATION = Number(f['duration-ms']);

async function run(budget: number) {
  const rt = await startRuntime(['--model', f.model!, '--max-queue-ms', String(budget)]);
  const ok: number[] = [];
  const refusedMs: number[] = [];
  const retryAfter: number[] = [];
  let errors = 0;
  try {
    const t0 = performance.now();
    await closedLoop(CLIENTS, DURATION, async (c) => {
      const r = await post(rt.url, '/v1/embeddings', { input: [`client ${c} asks about the river and the city ${ok.length % 97}`] }).catch(() => undefined);
      if (!r) return void errors++;
      if (r.status === 200) ok.push(r.ms);
      else if (r.status === 429) {
        refusedMs.push(r.ms);
        retryAfter.push(r.retryAfter ?? 0);
        await new Promise((res) => setTimeout(res, (r.retryAfter ?? 1) * 1000));
      } else errors++;
    });
    const secs = (performance.now() - t0) / 1000;
    return { maxQueueMs: budget, accepted: ok.length, refused: refusedMs.length, errors, acceptedPerSec: r2(ok.length / secs), acceptedMs: { p50: r2(pct(ok, 50)), p99: r2(pct(ok, 99)) }, refusedMs: { p50: r2(pct(refusedMs, 50)), p99: r2(pct(refusedMs, 99)) }, retryAfterSeconds: { min: Math.min(...retryAfter), max: Math.max(...retryAfter) } };
  } finally {
    await rt.stop();
  }
}

const baseline = await run(0);
const budgeted = await run(BUDGET);
const p99OverBudget = r2(budgeted.acceptedMs.p99 / BUDGET);
const meets = budgeted.refused > 0 && p99OverBudget <= 2;
process.stdout.write(`count-only: ${baseline.refused} refused, accepted p99 ${baseline.acceptedMs.p99} ms, ${baseline.acceptedPerSec}/s\n`);
process.stdout.write(`--max-queue-ms ${BUDGET}: ${budgeted.refused} refused (p50 ${budgeted.refusedMs.p50} ms), accepted p99 ${budgeted.acceptedMs.p99} ms = ${p99OverBudget} x budget, ${budgeted.acceptedPerSec}/s -> ${meets ? 'meets' : 'misses'} the target\n`);
const out = writeResult('admission', { settings: { model: f.model, clients: CLIENTS, durationMs: DURATION, budgetMs: BUDGET }, target: '429s given and accepted p99 <= 2 x --max-queue-ms', baseline, budgeted, p99OverBudget, meets });
process.stdout.write(`wrote ${out}\n`);
