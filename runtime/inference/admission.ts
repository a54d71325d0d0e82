import { performance } from 'node:perf_hooks';
import { QueueFull } from './batcher-types.js';

/**
 * Admission for one batcher: whether a request may join the queue, judged by the wait it can
 * expect (tokens ahead of it and its own over the throughput actually achieved), and when a
 * refused client should come back.
 *
 * Throughput is measured per batch cycle, not per model run: the time from the end of one batch
 * to the end of the next, less the time the event loop sat idle in between (no demand). On the
 * CPU provider the model runs on the event loop's thread, so reading, parsing, tokenising and
 * answering requests (429s included) take turns with the model; a rate from model time alone
 * overestimates what the server delivers by the share of that work, and under a 1,024-client
 * load admitted requests then waited 5-10x their budget. With the model in a worker thread the
 * cycle is the model's time plus whatever the loop does while the worker waits for it. The
 * rate is a time-decayed average (DECAY_MS of busy time), so it follows a machine that gets
 * slower (a noisy neighbour, a longer input mix) within a few batches.
 *
 * Retry-After: every refused client is given its own turn in a line behind the work queued now
 * and behind the clients refused before it. Telling all of them "1 s" brings them back together,
 * to be refused again, and answering that herd of 429s takes the event loop time the admitted
 * requests need. The turn goes out as Retry-After (whole seconds, rounded up) and Retry-After-Ms
 * (the OpenAI SDKs honour it). The line only shapes those answers: admission itself looks at the
 * real queue, so a turn nobody comes back for costs nothing.
 */

/** Decay time constant of the throughput average, ms of busy time. */
const DECAY_MS = 500;
/** The window over which the pace of answered work is measured (ms of wall-clock time). */
const SERVED_WINDOW_MS = 1_000;
/** Longest Retry-After promised (a client told more would better try another replica). */
const MAX_RETRY_MS = 10_000;

export interface AdmissionOptions {
  /** Most inputs admitted and not yet answered. */
  maxQueue: number;
  /** Latency budget in ms (0 = count only). */
  maxQueueMs?: number;
  /** Most inputs in one batch: what a budgeted batcher admits before its first measured batch. */
  maxBatchSize: number;
}

export class Admission {
  /** Decayed sums of tokens served and of the busy time (ms) they took. */
  private tokens = 0;
  private busyMs = 0;
  private lastEnd: number | undefined;
  private idleAtEnd = 0;
  private gapBusyMs = 0;
  /** When work last arrived at an empty queue, and the loop's idle total then. */
  private demandAt: number | undefined;
  private idleAtDemand = 0;
  /** When the last promised turn ends (ms on `now`'s clock). */
  private lineEnd = Number.NEGATIVE_INFINITY;
  /** Batches answered in the last SERVED_WINDOW_MS (end time, tokens): turns are priced at their pace. */
  private served: Array<[number, number]> = [];

  constructor(
    private readonly opts: AdmissionOptions,
    private readonly now: () => number,
    /** Cumulative ms the event loop has sat idle (waiting for I/O). */
    private readonly loopIdleMs: () => number = () => performance.eventLoopUtilization().idle,
  ) {}

  /** Tokens/s delivered (0 before anything is known). */
  get tokensPerSecond(): number {
    return this.busyMs > 0 ? (this.tokens / this.busyMs) * 1000 : 0;
  }

  /** A first estimate (the warm-up run) so the first burst is judged too. */
  seed(tokens: number, ms: number): void {
    if (this.busyMs === 0 && ms > 0 && tokens > 0) {
      this.tokens = tokens;
      this.busyMs = ms;
    }
  }

  /**
   * Called when work arrives at an empty queue: after a pause in demand longer than DECAY_MS, the
   * next batch's cycle starts here, not at the end of the last batch. Without it, the event loop's
   * busy time with no input waiting (serving cache hits, /metrics, another model's requests) was
   * charged to the next batch: after two seconds of cache hits the first miss batch "took" two
   * seconds, the rate fell 100-fold and 16 clients got 429s (scripts/bench/cache.ts).
   */
  demandArrived(at: number): void {
    this.demandAt = at;
    this.idleAtDemand = this.loopIdleMs();
  }

  /** Called as a batch starts: the busy part of the gap since the last one (or since its work arrived, if later) belongs to its cycle. */
  batchStarted(started: number): void {
    if (this.lastEnd === undefined) {
      this.gapBusyMs = 0;
      return;
    }
    // Only after a pause longer than the averaging window: under overload the queue empties for
    // moments between herds of refused clients, and the loop's time answering them is the
    // server's real pace (charging it is what keeps admission honest then).
    const late = this.demandAt !== undefined && this.demandAt - this.lastEnd > DECAY_MS;
    const gap = Math.max(0, started - (late ? this.demandAt! : this.lastEnd));
    const idle = this.loopIdleMs() - (late ? this.idleAtDemand : this.idleAtEnd);
    this.gapBusyMs = Math.min(gap, Math.max(0, gap - idle));
  }

  /** Called as a batch of `tokens` ends, `ms` after it started. */
  batchDone(tokens: number, ms: number, ended: number): void {
    const cycle = ms + this.gapBusyMs;
    if (cycle > 0 && tokens > 0) {
      const keep = Math.exp(-cycle / DECAY_MS);
      this.tokens = this.tokens * keep + tokens;
      this.busyMs = this.busyMs * keep + cycle;
    }
    this.lastEnd = ended;
    this.idleAtEnd = this.loopIdleMs();
    if (tokens > 0) this.served.push([ended, tokens]);
    while (this.served.length > 0 && this.served[0]![0] < ended - SERVED_WINDOW_MS) this.served.shift();
  }

  /** How long `tokens` (queued, running and the newcomer's own) take at the measured rate; 0 before any measure. */
  waitMs(tokens: number): number {
    const rate = this.tokensPerSecond;
    return rate > 0 ? (tokens / rate) * 1000 : 0;
  }

  /**
   * The QueueFull a request of `count` inputs and `own` tokens (0 = not known yet) meets with
   * `pending` inputs and `ahead` tokens in the batcher, if any. An idle batcher always admits, so
   * a request bigger than any limit can still be served.
   */
  refusal(pending: number, ahead: number, count: number, own: number): QueueFull | undefined {
    if (pending === 0) return undefined;
    const wait = this.waitMs(ahead + own);
    const budget = this.opts.maxQueueMs ?? 0;
    // A request of unknown size is priced as the average input queued now.
    const size = own > 0 ? own : (count * ahead) / pending;
    if (pending + count > this.opts.maxQueue) return new QueueFull(this.turn(wait, size, 0), pending);
    if (budget > 0 && wait > budget) return new QueueFull(this.turn(wait, size, budget), pending, wait);
    // Slow start: until one batch has run under real traffic the rate is the warm-up's (the model
    // alone, no HTTP), which overestimated the first burst of 1,024 clients 10x; one batch's worth
    // is admitted, the rest come back once the first cycle has measured the truth.
    if (budget > 0 && this.lastEnd === undefined && pending + count > this.opts.maxBatchSize) return new QueueFull(this.turn(wait, size, budget), pending, wait);
    return undefined;
  }

  /**
   * The QueueFull for a request that waited past the budget in the queue (the batcher's queue
   * timeout): its turn is priced like a refusal at the door, behind the work still queued.
   */
  late(pending: number, ahead: number, tokens: number): QueueFull {
    const wait = this.waitMs(ahead);
    return new QueueFull(this.turn(wait, tokens, this.opts.maxQueueMs ?? 0), pending, wait);
  }

  /** Tokens/s answered over the last window of wall-clock time (0 before any). */
  private servedPerSecond(now: number): number {
    let sum = 0;
    let first = Number.POSITIVE_INFINITY;
    for (const [at, tokens] of this.served) {
      if (at < now - SERVED_WINDOW_MS) continue;
      sum += tokens;
      first = Math.min(first, at);
    }
    return sum > 0 ? (sum / Math.max(now - first, 100)) * 1000 : 0;
  }

  /**
   * The refused client's turn, ms from now: once the work ahead of it (`wait`) has shrunk to half
   * the budget, and after every turn promised before. A turn lasts as long as the client's own
   * `tokens` take at the server's pace (its measured capacity, which counts the event loop's
   * busy time between batches, or the pace answered over the last second if higher), so refused
   * clients come back no faster than admitted ones leave: when answering 429s slows the server
   * down, turns lengthen and the herd thins instead of returning together to be refused again.
   */
  private turn(wait: number, tokens: number, budget: number): number {
    const now = this.now();
    // The larger of the two: the pace answered over the last second alone spirals down (an
    // underfed server answers slowly, so turns lengthen, so it is fed less: accepted throughput
    // fell to 740/s of ~2,600 in the 1,024-client bench); the measured capacity keeps it fed.
    const pace = Math.max(this.servedPerSecond(now), this.tokensPerSecond);
    // Before any measure, a second is the honest guess.
    const ready = this.tokensPerSecond > 0 ? now + Math.max(0, wait - budget / 2) : now + 1000;
    const start = Math.min(Math.max(this.lineEnd, ready), now + MAX_RETRY_MS);
    this.lineEnd = start + (pace > 0 ? (tokens / pace) * 1000 : 0);
    return Math.max(1, start - now);
  }
}
