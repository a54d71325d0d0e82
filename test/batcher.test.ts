import { describe, expect, it } from 'vitest';
import { Admission } from '../runtime/inference/admission.js';
import { Batcher, Closed, QueueFull, type BatchReport, type BatcherOptions } from '../runtime/inference/batcher.js';
import { Cancellation, type Encoded } from '../runtime/inference/types.js';

/**
 * The batcher's only dependency is "something that embeds a padded batch". This one computes a
 * vector from the ids alone (so any cross-talk between requests shows), records every batch, and
 * can be held shut to let a queue build up.
 */
class RecordingModel {
  batches: number[][] = [];
  lengths: number[][] = [];
  running = 0;
  maxConcurrent = 0;
  failNext = false;
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;

  hold() {
    this.gate = new Promise((r) => (this.openGate = r));
  }
  release() {
    this.openGate?.();
    this.gate = undefined;
  }

  async embed(batch: Encoded[]): Promise<Float32Array[]> {
    this.running++;
    this.maxConcurrent = Math.max(this.maxConcurrent, this.running);
    this.batches.push(batch.map((e) => e.ids[0]!));
    this.lengths.push(batch.map((e) => e.ids.length));
    try {
      if (this.gate) await this.gate;
      await new Promise((r) => setTimeout(r, 1));
      if (this.failNext) {
        this.failNext = false;
        throw new Error('model exploded');
      }
      return batch.map((e) => expected(e));
    } finally {
      this.running--;
    }
  }
}

const expected = (e: Encoded) => Float32Array.from([e.ids[0]!, e.ids.length, e.ids.reduce((a, b) => a + b, 0)]);
const enc = (id: number, len = 3): Encoded => ({ ids: Array.from({ length: len }, (_, i) => id + i), fullLength: len });
const opts = (o: Partial<BatcherOptions> = {}): BatcherOptions => ({ maxBatchTokens: 100_000, maxBatchSize: 64, maxWaitMs: 5, maxQueue: 100_000, ...o });

describe('Batcher', () => {
  it('merges concurrent requests into one batch and answers each with its own vectors, in order', async () => {
    const model = new RecordingModel();
    const reports: BatchReport[] = [];
    const b = new Batcher(model, opts({ maxWaitMs: 20 }), (r) => reports.push(r));
    const reqs = Array.from({ length: 10 }, (_, r) => [enc(r * 1000), enc(r * 1000 + 500, 7)]);
    const out = await Promise.all(reqs.map((inputs) => b.submit(inputs)));
    out.forEach((vectors, r) => {
      expect(vectors).toHaveLength(2);
      vectors.forEach((v, i) => expect(Array.from(v)).toEqual(Array.from(expected(reqs[r]![i]!))));
    });
    expect(model.batches).toHaveLength(1);
    expect(reports[0]).toMatchObject({ size: 20, requests: 10, tokens: 100, paddedTokens: 140 });
    await b.close();
  });

  it('runs a lone request after maxWaitMs without waiting for company', async () => {
    const model = new RecordingModel();
    const b = new Batcher(model, opts({ maxWaitMs: 5 }));
    const t0 = performance.now();
    const [v] = await b.submit([enc(42)]);
    expect(Array.from(v!)).toEqual([42, 3, 42 + 43 + 44]);
    expect(performance.now() - t0).toBeLessThan(1000);
    await b.close();
  });

  it('splits a 2048-input request into batches within size and token budget and reassembles it in order', async () => {
    const model = new RecordingModel();
    const reports: BatchReport[] = [];
    const b = new Batcher(model, opts({ maxBatchSize: 64, maxBatchTokens: 1000 }), (r) => reports.push(r));
    const inputs = Array.from({ length: 2048 }, (_, i) => enc(i * 10, 1 + (i % 37)));
    const out = await b.submit(inputs);
    expect(out).toHaveLength(2048);
    out.forEach((v, i) => expect(Array.from(v)).toEqual(Array.from(expected(inputs[i]!))));
    expect(reports.length).toBeGreaterThanOrEqual(2048 / 64);
    for (const r of reports) {
      expect(r.size).toBeLessThanOrEqual(64);
      expect(r.paddedTokens).toBeLessThanOrEqual(1000);
    }
    expect(reports.reduce((a, r) => a + r.size, 0)).toBe(2048);
    await b.close();
  });

  it('groups inputs of similar length so less of the budget goes to padding than first-come order', async () => {
    const model = new RecordingModel();
    const reports: BatchReport[] = [];
    const b = new Batcher(model, opts({ maxBatchSize: 16, maxWaitMs: 1 }), (r) => reports.push(r));
    model.hold();
    const first = b.submit([enc(1)]);
    await new Promise((r) => setTimeout(r, 20)); // the worker is now busy with `first`
    // Short and long inputs interleaved, as they arrive from different clients.
    const lens = Array.from({ length: 64 }, (_, i) => (i % 2 === 0 ? 4 : 120));
    const pending = lens.map((len, i) => b.submit([enc(10_000 + i * 200, len)]));
    model.release();
    await Promise.all([first, ...pending]);
    const later = reports.slice(1);
    const padded = later.reduce((a, r) => a + r.paddedTokens, 0);
    // First-come batches of 16 would each hold a 120-token input: 4 x 16 x 120 padded tokens.
    expect(padded).toBeLessThan(4 * 16 * 120 * 0.75);
    for (const l of model.lengths.slice(1)) expect(new Set(l).size).toBe(1);
    await b.close();
  });

  it('with maxPadding, splits a queue that would fit in one batch by length instead of padding short inputs', async () => {
    const run = async (maxPadding?: number) => {
      const model = new RecordingModel();
      const reports: BatchReport[] = [];
      const b = new Batcher(model, opts({ maxWaitMs: 1, maxPadding }), (r) => reports.push(r));
      model.hold();
      const first = b.submit([enc(1)]);
      await new Promise((r) => setTimeout(r, 20));
      // 8 short and 8 long inputs: all 16 fit the size and token budget together.
      const pending = Array.from({ length: 16 }, (_, i) => b.submit([enc(10_000 + i * 200, i % 2 ? 100 : 5)]));
      model.release();
      await Promise.all([first, ...pending]);
      await b.close();
      return { batches: model.lengths.slice(1), reports: reports.slice(1) };
    };
    const unlimited = await run();
    expect(unlimited.batches).toHaveLength(1);
    expect(unlimited.reports[0]!.paddedTokens).toBe(16 * 100);
    const capped = await run(0.3);
    expect(capped.batches).toHaveLength(2);
    for (const [i, r] of capped.reports.entries()) {
      expect(1 - r.tokens / r.paddedTokens, `batch ${i}`).toBeLessThanOrEqual(0.3);
      expect(new Set(capped.batches[i]).size).toBe(1);
    }
    expect(capped.reports.reduce((a, r) => a + r.paddedTokens, 0)).toBe(8 * 5 + 8 * 100);
  });

  it('runs an input longer than the whole token budget in a batch of its own instead of stalling', async () => {
    const model = new RecordingModel();
    const reports: BatchReport[] = [];
    const b = new Batcher(model, opts({ maxBatchTokens: 10 }), (r) => reports.push(r));
    const out = await b.submit([enc(1, 50), enc(2, 60), enc(3, 2), enc(4, 2)]);
    expect(out.map((v) => v[0])).toEqual([1, 2, 3, 4]);
    expect(reports.filter((r) => r.paddedTokens > 10).every((r) => r.size === 1)).toBe(true);
    await b.close();
  });

  it('serves a small request queued behind a 2048-input one in the next batch, not after it', async () => {
    const model = new RecordingModel();
    const b = new Batcher(model, opts({ maxBatchSize: 64 }));
    model.hold();
    const bulk = b.submit(Array.from({ length: 2048 }, (_, i) => enc(i, 5)));
    const order: string[] = [];
    void bulk.then(() => order.push('bulk'));
    await new Promise((r) => setTimeout(r, 20)); // first bulk batch is running
    const query = b.submit([enc(900_000, 5)]).then((v) => {
      order.push('query');
      return v;
    });
    model.release();
    expect(Array.from((await query)[0]!)).toEqual(Array.from(expected(enc(900_000, 5))));
    await bulk;
    expect(order).toEqual(['query', 'bulk']);
    // In the second or third batch, not the 33rd.
    const at = model.batches.findIndex((ids) => ids.includes(900_000));
    expect(at).toBeGreaterThan(0);
    expect(at).toBeLessThanOrEqual(2);
    await b.close();
  });

  it('never runs two batches at once', async () => {
    const model = new RecordingModel();
    const b = new Batcher(model, opts({ maxBatchSize: 4, maxWaitMs: 0 }));
    await Promise.all(Array.from({ length: 40 }, (_, i) => b.submit([enc(i), enc(i + 100)])));
    expect(model.maxConcurrent).toBe(1);
    expect(model.batches.length).toBeGreaterThanOrEqual(20);
    await b.close();
  });

  it('refuses with QueueFull (and a Retry-After) when admitting would pass maxQueue, and admits again once drained', async () => {
    const model = new RecordingModel();
    const b = new Batcher(model, opts({ maxQueue: 100, maxBatchSize: 8 }));
    model.hold();
    // Larger than maxQueue, but into an idle batcher: admitted, or it could never be served.
    const big = b.submit(Array.from({ length: 150 }, (_, i) => enc(i)));
    const refused = b.submit([enc(7)]);
    await expect(refused).rejects.toBeInstanceOf(QueueFull);
    const err = (await refused.catch((e: unknown) => e)) as QueueFull;
    expect(err.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(err.pending).toBe(150);
    expect(b.pending).toBe(150);
    model.release();
    await big;
    expect(b.pending).toBe(0);
    await expect(b.submit([enc(7)])).resolves.toHaveLength(1);
    await b.close();
  });

  it.each([
    ['an AbortSignal', () => new AbortController()],
    ["the runtime's Cancellation", () => new Cancellation()],
  ] as const)('drops the queued inputs of a request whose client went away, without touching others (%s)', async (_kind, make) => {
    const model = new RecordingModel();
    const b = new Batcher(model, opts({ maxBatchSize: 2 }));
    model.hold();
    const busy = b.submit([enc(1)]);
    await new Promise((r) => setTimeout(r, 20));
    const ac = make();
    const gone = b.submit(Array.from({ length: 50 }, (_, i) => enc(5000 + i)), 'signal' in ac ? ac.signal : ac);
    const stays = b.submit([enc(9000)]);
    ac.abort(new Error('client closed'));
    // A second abort is a no-op: the request was already rejected once.
    ac.abort(new Error('again'));
    await expect(gone).rejects.toThrow('client closed');
    expect(b.stats().queued).toBe(1);
    model.release();
    await busy;
    expect(Array.from((await stays)[0]!)).toEqual(Array.from(expected(enc(9000))));
    expect(model.batches.flat().some((id) => id >= 5000 && id < 5050)).toBe(false);
    await b.close();
  });

  it('fails only the requests in a batch the model failed on, and keeps serving', async () => {
    const model = new RecordingModel();
    const b = new Batcher(model, opts());
    model.failNext = true;
    await expect(b.submit([enc(1)])).rejects.toThrow('model exploded');
    expect(b.pending).toBe(0);
    await expect(b.submit([enc(2)])).resolves.toHaveLength(1);
    await b.close();
  });

  it('drain() answers everything admitted; close() then refuses new work', async () => {
    const model = new RecordingModel();
    const b = new Batcher(model, opts({ maxWaitMs: 1000, maxBatchSize: 1000 }));
    const t0 = performance.now();
    const work = Promise.all(Array.from({ length: 5 }, (_, i) => b.submit([enc(i)])));
    await b.drain();
    // Draining runs the partial batch at once instead of waiting out maxWaitMs.
    expect(performance.now() - t0).toBeLessThan(900);
    expect(await work).toHaveLength(5);
    await b.close();
    await expect(b.submit([enc(1)])).rejects.toBeInstanceOf(Closed);
  });

  it('rejects nonsensical limits up front', () => {
    expect(() => new Batcher(new RecordingModel(), opts({ maxBatchSize: 0 }))).toThrow(/maxBatchSize/);
    expect(() => new Batcher(new RecordingModel(), opts({ maxQueue: 1.5 }))).toThrow(/maxQueue/);
    expect(() => new Batcher(new RecordingModel(), opts({ maxPadding: 1.5 }))).toThrow(/maxPadding/);
  });
});

describe('Batcher: LoRA tasks', () => {
  const taskEnc = (id: number, task: number, len = 3): Encoded => ({ ...enc(id, len), task });
  class TaskModel extends RecordingModel {
    tasks: Array<Array<number | undefined>> = [];
    override embed(batch: Encoded[]): Promise<Float32Array[]> {
      this.tasks.push(batch.map((e) => e.task));
      return super.embed(batch);
    }
  }

  it('never mixes tasks in a batch, answers every request, and alternates fairly between tasks', async () => {
    const model = new TaskModel();
    const b = new Batcher(model, opts({ maxWaitMs: 0 }));
    model.hold();
    const first = b.submit([taskEnc(1, 0)]);
    // 16 requests queue up behind the held batch, alternating tasks 0 and 1.
    const reqs = Array.from({ length: 16 }, (_, i) => [taskEnc(100 + i * 10, i % 2), taskEnc(101 + i * 10, i % 2, 5)]);
    const pending = reqs.map((inputs) => b.submit(inputs));
    model.release();
    await first;
    const out = await Promise.all(pending);
    out.forEach((vectors, r) => vectors.forEach((v, i) => expect(Array.from(v)).toEqual(Array.from(expected(reqs[r]![i]!)))));
    for (const t of model.tasks) expect(new Set(t).size).toBe(1);
    // One batch per task (the first request may share the first): grouping costs one extra
    // batch per task, not one per request.
    expect(model.tasks.length).toBeLessThanOrEqual(3);
    expect(model.tasks.slice(-2).map((t) => t[0]).sort()).toEqual([0, 1]);
    await b.close();
  });
});

describe('Batcher: latency-aware admission (maxQueueMs)', () => {
  it('refuses by expected wait (queued tokens / measured throughput) with a Retry-After from the excess, and always admits into an idle batcher', async () => {
    const model = new RecordingModel();
    const now = 0;
    const b = new Batcher(model, opts({ maxQueueMs: 100, maxBatchSize: 1000, maxWaitMs: 0 }), undefined, () => now);
    // 1,000 tokens/s: 100 ms of budget is 100 tokens.
    b.seedThroughput(1000, 1000);
    model.hold();
    const big = b.submit(Array.from({ length: 100 }, (_, i) => enc(i, 5))); // 500 tokens, idle: admitted
    await new Promise((r) => setImmediate(r));
    expect(b.stats().expectedWaitMs).toBe(500);
    const refused = (await b.submit([enc(1, 5)]).catch((e: unknown) => e)) as QueueFull;
    expect(refused).toBeInstanceOf(QueueFull);
    expect(refused.expectedWaitMs).toBe(505);
    // 505 ms expected against a 100 ms budget: back in about 0.4 s, rounded up to whole seconds.
    expect(refused.retryAfterSeconds).toBe(1);
    expect(refused.message).toMatch(/expected wait 505 ms/);
    model.release();
    await big;
    await expect(b.submit([enc(1, 5)])).resolves.toHaveLength(1);
    await b.close();
  });

  it('queue timeout: a request still queued after maxQueueMs is refused (429 with a turn), one already running is finished, later ones run', async () => {
    const model = new RecordingModel();
    let now = 0;
    const b = new Batcher(model, opts({ maxQueueMs: 100, maxBatchTokens: 6, maxWaitMs: 0 }), undefined, () => now);
    // Fast enough by the estimate that everything below is admitted.
    b.seedThroughput(1_000_000, 1000);
    model.hold();
    const running = b.submit([enc(1), enc(2)]); // takes the model (a full batch: 2 x 3 tokens)
    await new Promise((r) => setImmediate(r));
    const early = b.submit([enc(10)]);
    const late = b.submit([enc(20)]);
    const earlyOutcome = early.then(() => 'answered', (e: unknown) => e);
    const lateOutcome = late.then(() => 'answered', (e: unknown) => e);
    // The machine stalls: 150 ms pass while the first batch runs; both queued requests are late.
    now = 150;
    const fresh = b.submit([enc(30)]); // arrives at 150: within its budget when the model frees
    model.release();
    await expect(running).resolves.toHaveLength(2);
    const [e, l] = await Promise.all([earlyOutcome, lateOutcome]);
    for (const out of [e, l]) {
      expect(out).toBeInstanceOf(QueueFull);
      expect((out as QueueFull).retryAfterMs).toBeGreaterThanOrEqual(1);
    }
    await expect(fresh).resolves.toHaveLength(1);
    // The late ones never reached the model; the fresh one did.
    expect(model.batches.flat()).toEqual([1, 2, 30]);
    expect(b.stats().shed).toBe(2);
    await b.close();
  });

  it('queue timeout counts the time before the queue (reading, tokenising), but at most half the budget of it', async () => {
    const model = new RecordingModel();
    let now = 1000;
    const b = new Batcher(model, opts({ maxQueueMs: 100, maxBatchTokens: 6, maxWaitMs: 0 }), undefined, () => now);
    b.seedThroughput(1_000_000, 1000);
    model.hold();
    const running = b.submit([enc(1), enc(2)]);
    await new Promise((r) => setImmediate(r));
    // Received 40 ms ago: 60 ms of queue left. Received 10 s ago (a long tokenisation): 50 ms left.
    const recent = b.submit([enc(10)], undefined, now - 40).then(() => 'answered', (e: unknown) => e);
    const old = b.submit([enc(20)], undefined, now - 10_000).then(() => 'answered', (e: unknown) => e);
    // The first batch runs 10 ms, so a request may wait 90 ms (the budget less that run): recent
    // has 40 + 10 of it used, old (capped at half the budget) 50 + 10.
    now += 10;
    model.release();
    await running;
    expect(await recent).toBe('answered');
    expect(await old).toBe('answered');
    model.hold();
    const again = b.submit([enc(3), enc(4)]);
    await new Promise((r) => setImmediate(r));
    const late = b.submit([enc(30)], undefined, now - 40).then(() => 'answered', (e: unknown) => e);
    // This batch runs 35 ms (a request may now wait 65): 40 before the queue + 35 in it is over,
    // where 35 in the queue alone would not be.
    now += 35;
    model.release();
    await again;
    expect(await late).toBeInstanceOf(QueueFull);
    await b.close();
  });

  it('queue timeout never sheds a request some of whose inputs already ran', async () => {
    const model = new RecordingModel();
    let now = 0;
    const b = new Batcher(model, opts({ maxQueueMs: 100, maxBatchTokens: 6, maxWaitMs: 0 }), undefined, () => now);
    b.seedThroughput(1_000_000, 1000);
    model.hold();
    const big = b.submit([enc(1), enc(2), enc(3), enc(4)]); // two batches of 2 x 3 tokens
    await new Promise((r) => setImmediate(r));
    now = 500;
    model.release();
    await expect(big).resolves.toHaveLength(4);
    expect(b.stats().shed).toBe(0);
    await b.close();
  });

  it('counts only inputs when maxQueueMs is 0', async () => {
    const model = new RecordingModel();
    const b = new Batcher(model, opts({ maxQueueMs: 0 }));
    b.seedThroughput(1, 1000);
    model.hold();
    const big = b.submit(Array.from({ length: 50 }, (_, i) => enc(i, 5)));
    const next = b.submit([enc(1)]);
    model.release();
    await Promise.all([big, next]);
    await b.close();
  });
});

describe('Admission (runtime/inference/admission.ts)', () => {
  const make = (o: Partial<{ maxQueue: number; maxQueueMs: number; maxBatchSize: number }> = {}) => {
    const clock = { now: 0, idle: 0 };
    const a = new Admission({ maxQueue: 100_000, maxQueueMs: 100, maxBatchSize: 64, ...o }, () => clock.now, () => clock.idle);
    return { a, clock };
  };

  it('measures throughput per batch cycle: busy time between batches counts, idle time does not', () => {
    const { a, clock } = make();
    a.batchStarted(0);
    clock.now = 10;
    a.batchDone(1000, 10, 10); // 1,000 tokens in 10 ms
    expect(Math.round(a.tokensPerSecond)).toBe(100_000);
    // 90 ms between batches, all of it busy (parsing, answering): the next 1,000 tokens took 100 ms.
    clock.now = 100;
    a.batchStarted(100);
    clock.now = 110;
    a.batchDone(1000, 10, 110);
    const busy = a.tokensPerSecond;
    expect(busy).toBeLessThan(30_000);
    // The same gap spent idle (no demand) does not lower the rate.
    const { a: b, clock: c2 } = make();
    b.batchStarted(0);
    c2.now = 10;
    b.batchDone(1000, 10, 10);
    c2.now = 100;
    c2.idle = 90;
    b.batchStarted(100);
    c2.now = 110;
    b.batchDone(1000, 10, 110);
    expect(Math.round(b.tokensPerSecond)).toBe(100_000);
  });

  it('busy time before any work arrived (cache hits, other routes) is not charged to the next batch', () => {
    const { a, clock } = make();
    a.batchStarted(0);
    clock.now = 10;
    a.batchDone(1000, 10, 10);
    // Two seconds of a busy loop with nothing queued, then work arrives and runs 5 ms later.
    clock.now = 2010;
    a.demandArrived(2010);
    clock.now = 2015;
    a.batchStarted(2015);
    clock.now = 2025;
    a.batchDone(1000, 10, 2025);
    // The cycle is 5 ms busy waiting + 10 ms running, not 2,015 ms: ~66,667 tokens/s, not ~500.
    expect(a.tokensPerSecond).toBeGreaterThan(60_000);
    // A short pause (work arriving 90 ms after the last batch, the loop busy throughout, as when it
    // answers a herd of refused clients) is still the server's pace and is charged.
    const { a: b, clock: c } = make();
    b.batchStarted(0);
    c.now = 10;
    b.batchDone(1000, 10, 10);
    c.now = 100;
    b.demandArrived(100);
    b.batchStarted(100);
    c.now = 110;
    b.batchDone(1000, 10, 110);
    expect(b.tokensPerSecond).toBeLessThan(30_000);
  });

  it('admits into an idle batcher, one batch before the first measure, then by expected wait', () => {
    const { a, clock } = make({ maxBatchSize: 4 });
    a.seed(1000, 1000); // 1,000 tokens/s: 100 ms of budget is 100 tokens
    expect(a.refusal(0, 0, 500, 5000)).toBeUndefined();
    expect(a.refusal(3, 30, 1, 10)).toBeUndefined();
    // Slow start: a fifth input before any batch has been measured waits its turn.
    expect(a.refusal(4, 40, 1, 10)).toBeInstanceOf(QueueFull);
    a.batchStarted(0);
    clock.now = 100;
    a.batchDone(100, 100, 100);
    expect(a.refusal(4, 40, 1, 10)).toBeUndefined();
    const full = a.refusal(20, 200, 1, 10)!;
    expect(full).toBeInstanceOf(QueueFull);
    expect(full.expectedWaitMs).toBeCloseTo(210, 0);
  });

  it('gives each refused client its own turn: Retry-After grows with the clients refused before it', () => {
    const { a, clock } = make();
    a.seed(1000, 1000);
    a.batchStarted(0);
    clock.now = 100;
    a.batchDone(100, 100, 100); // 1,000 tokens/s served
    const turns = Array.from({ length: 5 }, () => a.refusal(50, 500, 1, 10)!.retryAfterMs);
    // Ready once the 500 tokens ahead plus its own 10 would take half the budget (0.46 s), then
    // each turn 10 ms (10 tokens at the pace served) after the one before.
    expect(turns.map(Math.round)).toEqual([460, 470, 480, 490, 500]);
    const seconds = a.refusal(50, 500, 1, 10)!.retryAfterSeconds;
    expect(seconds).toBe(1);
    // Turns are bounded: a client is never told to wait more than 10 s.
    for (let i = 0; i < 2000; i++) a.refusal(50, 500, 1, 10);
    expect(a.refusal(50, 500, 1, 10)!.retryAfterMs).toBeLessThanOrEqual(10_000);
  });
});
