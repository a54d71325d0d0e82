import { Admission } from './admission.js';
import { Closed, QueueFull, type BatchReport, type BatcherOptions, type BatcherStats, type BatchRunner } from './batcher-types.js';
import type { CancelSignal, Encoded } from './types.js';

export { Closed, QueueFull, type BatchReport, type BatcherOptions, type BatcherStats, type BatchRunner };

/**
 * Dynamic batching in front of one model worker, the way text-embeddings-inference does it:
 * inputs from many requests wait in one queue, and the worker takes batches bounded by a token
 * budget (padded length x count) and a size cap, choosing inputs of similar length so little of
 * the budget goes to padding. Every batch is anchored on the request served least recently, so
 * nothing starves and a small request is not stuck behind a big one. Batches run one at a time
 * (onnxruntime uses its own thread pool); the next batch forms while one runs.
 */

interface Job {
  /** Lower = waited longer since last served; the lowest anchors the next batch. */
  ticket: number;
  results: Array<Float32Array | undefined>;
  remaining: number;
  resolve(v: Float32Array[]): void;
  reject(e: unknown): void;
  done: boolean;
}

interface Item {
  job: Job;
  index: number;
  enc: Encoded;
  len: number;
  /** LoRA task id (-1: none); a batch holds one task. */
  task: number;
  arrived: number;
  seq: number;
}

export class Batcher {
  private queue: Item[] = [];
  private queuedTokens = 0;
  private running = 0;
  private runningTokens = 0;
  /** Judges expected waits by the throughput measured over batch cycles; prices Retry-After. */
  private readonly admission: Admission;
  private seq = 0;
  private tick = 0;
  private batches = 0;
  private inputsDone = 0;
  /** Requests answered 429 because they waited in the queue past maxQueueMs (shedLate). */
  private shed = 0;
  /** How long the last batch ran (ms), what a request picked now can expect to add to its wait. */
  private lastBatchMs = 0;
  /** Set by drain(): partial batches run at once instead of waiting for company. */
  private draining = false;
  private closing = false;
  private wake: (() => void) | undefined;
  private idleWaiters: Array<() => void> = [];
  private readonly loop: Promise<void>;
  private stopped = false;

  constructor(
    private readonly model: BatchRunner,
    readonly opts: BatcherOptions,
    private readonly onBatch?: (r: BatchReport) => void,
    private readonly now: () => number = () => performance.now(),
    /** Cumulative ms the event loop sat idle (tests with a fake clock pass one too). */
    loopIdleMs?: () => number,
  ) {
    for (const k of ['maxBatchTokens', 'maxBatchSize', 'maxQueue'] as const) {
      if (!Number.isInteger(opts[k]) || opts[k] < 1) throw new RangeError(`${k} must be a whole number >= 1, got ${opts[k]}`);
    }
    if (!(opts.maxWaitMs >= 0)) throw new RangeError(`maxWaitMs must be >= 0, got ${opts.maxWaitMs}`);
    if (opts.maxPadding !== undefined && !(opts.maxPadding >= 0 && opts.maxPadding <= 1)) {
      throw new RangeError(`maxPadding must be between 0 and 1, got ${opts.maxPadding}`);
    }
    this.admission = new Admission(opts, now, loopIdleMs);
    this.loop = this.work();
  }

  /** Inputs admitted and not yet answered. */
  get pending(): number {
    return this.queue.length + this.running;
  }

  stats(): BatcherStats {
    return {
      queued: this.queue.length,
      queuedTokens: this.queuedTokens,
      running: this.running,
      tokensPerSecond: Math.round(this.admission.tokensPerSecond),
      expectedWaitMs: Math.round(this.expectedWaitMs(0)),
      batches: this.batches,
      inputs: this.inputsDone,
      shed: this.shed,
      draining: this.draining,
    };
  }

  /**
   * Embeds `inputs` and resolves with one vector per input, in input order. Throws QueueFull
   * (synchronously, as a rejected promise) when admitting them would pass maxQueue; a request
   * larger than maxQueue is still admitted into an idle server so it can ever be served.
   */
  submit(inputs: Encoded[], signal?: CancelSignal, receivedAt?: number): Promise<Float32Array[]> {
    if (this.closing) return Promise.reject(new Closed());
    if (inputs.length === 0) return Promise.resolve([]);
    let tokens = 0;
    for (const e of inputs) tokens += Math.max(1, e.ids.length);
    const refused = this.refusal(inputs.length, tokens);
    if (refused) return Promise.reject(refused);
    return new Promise<Float32Array[]>((resolve, reject) => {
      const job: Job = { ticket: this.tick++, results: new Array(inputs.length), remaining: inputs.length, resolve, reject, done: false };
      const now = this.now();
      if (this.queue.length === 0) this.admission.demandArrived(now);
      // The queue timeout counts from when the request was received (reading and tokenising
      // under load are part of its wait), not from when it reached the queue; but at most half
      // the budget of it, so a big request that took long to tokenise still gets a turn instead
      // of being refused every time it is sent.
      const half = (this.opts.maxQueueMs ?? 0) / 2;
      const at = receivedAt !== undefined && receivedAt <= now ? Math.max(receivedAt, now - half) : now;
      inputs.forEach((enc, index) => {
        const len = Math.max(1, enc.ids.length);
        this.queue.push({ job, index, enc, len, task: enc.task ?? -1, arrived: at, seq: this.seq++ });
        this.queuedTokens += len;
      });
      // A client that hung up frees its queued inputs; a batch already running finishes anyway.
      signal?.addEventListener(
        'abort',
        () => {
          if (job.done) return;
          job.done = true;
          this.removeJob(job);
          reject(signal.reason ?? new Error('aborted'));
        },
        { once: true },
      );
      this.wake?.();
    });
  }

  /**
   * The QueueFull that submit() of `count` inputs (`tokens` of them; 0 = not known yet) would
   * meet now, if any: to refuse early, before reading or tokenising.
   */
  refusal(count: number, tokens = 0): QueueFull | undefined {
    return this.admission.refusal(this.pending, this.queuedTokens + this.runningTokens, count, tokens);
  }

  /** Tokens queued and running (plus `extra`) over the measured throughput; 0 before any measure. */
  expectedWaitMs(extra: number): number {
    return this.admission.waitMs(this.queuedTokens + this.runningTokens + extra);
  }

  /** Seeds the throughput estimate (from the warm-up) so the first burst is judged too. */
  seedThroughput(tokens: number, ms: number): void {
    this.admission.seed(tokens, ms);
  }

  /**
   * Resolves once every admitted input has been answered; meanwhile batches run without waiting
   * for company. Still admits (the server decides when to stop taking requests).
   */
  async drain(): Promise<void> {
    this.draining = true;
    this.wake?.();
    if (this.pending > 0) await new Promise<void>((r) => this.idleWaiters.push(r));
  }

  /** Stops admitting, drains, then ends the worker loop. */
  async close(): Promise<void> {
    this.closing = true;
    await this.drain();
    this.stopped = true;
    this.wake?.();
    await this.loop;
  }

  private removeJob(job: Job): void {
    const keep: Item[] = [];
    for (const it of this.queue) {
      if (it.job === job) this.queuedTokens -= it.len;
      else keep.push(it);
    }
    this.queue = keep;
    this.notifyIdle();
  }

  private notifyIdle(): void {
    if (this.pending === 0 && this.idleWaiters.length) {
      const ws = this.idleWaiters;
      this.idleWaiters = [];
      ws.forEach((w) => w());
    }
  }

  private sleepUntilWoken(ms?: number): Promise<void> {
    return new Promise((resolve) => {
      let t: NodeJS.Timeout | undefined;
      this.wake = () => {
        this.wake = undefined;
        if (t) clearTimeout(t);
        resolve();
      };
      if (ms !== undefined) t = setTimeout(() => this.wake?.(), Math.max(0, ms));
    });
  }

  /** Whether the queue already holds a batch that could not grow (by count or budget). */
  private full(): boolean {
    if (this.queue.length >= this.opts.maxBatchSize) return true;
    let maxLen = 0;
    for (const it of this.queue) maxLen = Math.max(maxLen, it.len);
    return maxLen * this.queue.length >= this.opts.maxBatchTokens;
  }

  private async work(): Promise<void> {
    for (;;) {
      if (this.queue.length === 0) {
        if (this.stopped) return;
        await this.sleepUntilWoken();
        continue;
      }
      if (!this.full() && !this.draining) {
        const oldest = this.queue[0]!.arrived;
        const wait = oldest + this.opts.maxWaitMs - this.now();
        if (wait > 0) {
          // Woken early by every new arrival, so a batch that fills up runs at once.
          await this.sleepUntilWoken(wait);
          continue;
        }
        // Let requests already read in this turn of the event loop join before the batch is cut.
        await new Promise<void>((r) => setImmediate(r));
      }
      this.shedLate();
      if (this.queue.length === 0) continue;
      await this.runBatch(this.takeBatch());
    }
  }

  /**
   * Queue timeout, as Triton's dynamic batcher does with `timeout_action: REJECT`: a request still
   * waiting for its first batch after maxQueueMs is answered 429 (with its turn as Retry-After)
   * instead of being run late. Admission judges the wait a request can expect from the throughput
   * measured so far; when the machine then slows down (another process takes the CPU, a burst of
   * connections, a garbage collection), what was admitted would wait many times its budget, and
   * an answer that late is worth less to the client than an honest refusal it can retry on another
   * replica. A request some of whose inputs already ran is finished, not shed.
   */
  private shedLate(): void {
    const budget = this.opts.maxQueueMs ?? 0;
    // Draining (SIGTERM): what was admitted is finished, as promised, however late.
    if (!(budget > 0) || this.draining || this.queue.length === 0) return;
    // The budget covers the wait and the run that follows it: a request picked now still waits
    // for its batch to run (about as long as the last one), so it is late once its wait leaves
    // less than that of the budget (never less than half the budget for the wait).
    const deadline = this.now() - Math.max(budget / 2, budget - this.lastBatchMs);
    // The late requests, each with what it holds in the queue.
    const late = new Map<Job, { inputs: number; tokens: number }>();
    for (const it of this.queue) {
      if (it.arrived <= deadline && !it.job.done && it.job.remaining === it.job.results.length) late.set(it.job, { inputs: 0, tokens: 0 });
    }
    if (late.size === 0) return;
    // One pass over the queue for all of them (removeJob per job would be one pass each, and a
    // herd of hundreds goes late at once under overload).
    let tokens = 0;
    let inputs = 0;
    const keep: Item[] = [];
    for (const it of this.queue) {
      const r = late.get(it.job);
      if (!r) {
        keep.push(it);
        continue;
      }
      r.inputs++;
      r.tokens += it.len;
      inputs++;
      tokens += it.len;
    }
    this.queue = keep;
    this.shed += late.size;
    // Each is priced as it leaves, with the late ones after it still queued, as one by one.
    for (const [job, r] of late) {
      job.done = true;
      inputs -= r.inputs;
      this.queuedTokens -= r.tokens;
      job.reject(this.admission.late(this.pending + inputs, this.queuedTokens + this.runningTokens, tokens / late.size));
    }
    this.notifyIdle();
  }

  /**
   * Picks the next batch around an anchor: the first waiting input of the request served least
   * recently (at first, the oldest request). Then the inputs nearest the anchor in length join,
   * one neighbour at a time (the closer in length first) while count and padded tokens fit.
   * Anchoring by request rather than by input means a one-text query queued behind a 2,048-text
   * indexing job rides in the next batch instead of waiting for the whole job; with one input
   * per request it is plain oldest-first.
   */
  private takeBatch(): Item[] {
    const { maxBatchSize, maxBatchTokens } = this.opts;
    const maxPadding = this.opts.maxPadding ?? 1;
    const fits = (count: number, maxLen: number, sumLen: number) =>
      count <= maxBatchSize && count * maxLen <= maxBatchTokens && count * maxLen - sumLen <= maxPadding * count * maxLen;
    const queue = this.queue;
    let anchor = queue[0]!;
    let anchorAt = 0;
    let mixed = false;
    for (let i = 1; i < queue.length; i++) {
      if (queue[i]!.task !== anchor.task) mixed = true;
      if (queue[i]!.job.ticket < anchor.job.ticket) {
        anchor = queue[i]!;
        anchorAt = i;
      }
    }
    // A batch runs under one LoRA task: only the anchor's task competes for it; the others keep
    // their places (and their tickets, so the next batch is theirs when they have waited longest).
    const all = mixed ? queue.filter((it) => it.task === anchor.task) : queue;
    if (mixed) anchorAt = all.indexOf(anchor);
    let maxLenAll = 0;
    let sumAll = 0;
    for (const it of all) {
      maxLenAll = Math.max(maxLenAll, it.len);
      sumAll += it.len;
    }
    let chosen: Item[];
    if (fits(all.length, maxLenAll, sumAll)) {
      chosen = all;
      this.queue = mixed ? queue.filter((it) => it.task !== anchor.task) : [];
    } else {
      // Only the oldest inputs (and the anchor) compete for a place, which bounds both the sort
      // and how long a long input can be passed over for shorter ones.
      const window = all.slice(0, maxBatchSize * 8);
      if (anchorAt >= window.length) window.push(anchor);
      const sorted = window.sort((a, b) => a.len - b.len || a.seq - b.seq);
      const h = sorted.indexOf(anchor);
      let lo = h;
      let hi = h;
      let maxLen = sorted[h]!.len;
      let sumLen = maxLen;
      for (;;) {
        const down = lo > 0 ? sorted[lo - 1]! : undefined;
        const up = hi < sorted.length - 1 ? sorted[hi + 1]! : undefined;
        const minLen = sorted[lo]!.len;
        const count = hi - lo + 2;
        // Growing downwards never raises the padded length; upwards may.
        const canDown = down !== undefined && fits(count, maxLen, sumLen + down.len);
        const canUp = up !== undefined && fits(count, Math.max(maxLen, up.len), sumLen + up.len);
        if (!canDown && !canUp) break;
        const pickDown = canDown && (!canUp || minLen - down.len <= up!.len - maxLen);
        if (pickDown) {
          lo--;
          sumLen += down.len;
        } else {
          hi++;
          maxLen = Math.max(maxLen, up!.len);
          sumLen += up!.len;
        }
      }
      chosen = sorted.slice(lo, hi + 1);
      const picked = new Set(chosen);
      this.queue = queue.filter((it) => !picked.has(it));
    }
    for (const it of chosen) {
      this.queuedTokens -= it.len;
      it.job.ticket = this.tick;
    }
    this.tick++;
    return chosen;
  }

  private async runBatch(batch: Item[]): Promise<void> {
    // Inputs of requests cancelled while queued were removed; these belong to live requests.
    this.running = batch.length;
    let batchTokens = 0;
    for (const it of batch) batchTokens += it.len;
    this.runningTokens = batchTokens;
    const started = this.now();
    this.admission.batchStarted(started);
    let vectors: Float32Array[] | undefined;
    let error: unknown;
    try {
      vectors = await this.model.embed(batch.map((it) => it.enc));
      if (vectors.length !== batch.length) throw new Error(`model returned ${vectors.length} vectors for ${batch.length} inputs`);
    } catch (err) {
      error = err;
    }
    const ms = this.now() - started;
    this.lastBatchMs = ms;
    const jobs = new Set<Job>();
    batch.forEach((it, i) => {
      jobs.add(it.job);
      const job = it.job;
      if (job.done) return;
      if (error !== undefined) {
        job.done = true;
        this.removeJob(job);
        job.reject(error);
        return;
      }
      job.results[it.index] = vectors![i];
      if (--job.remaining === 0) {
        job.done = true;
        job.resolve(job.results as Float32Array[]);
      }
    });
    this.running = 0;
    this.runningTokens = 0;
    this.batches++;
    this.inputsDone += batch.length;
    // A failed batch says nothing about throughput (it may have failed at once).
    this.admission.batchDone(error === undefined ? batchTokens : 0, ms, this.now());
    let maxLen = 0;
    for (const it of batch) maxLen = Math.max(maxLen, it.len);
    this.onBatch?.({ size: batch.length, tokens: batchTokens, paddedTokens: maxLen * batch.length, requests: jobs.size, ms });
    this.notifyIdle();
  }
}
