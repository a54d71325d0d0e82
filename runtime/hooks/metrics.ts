import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { BatchReport, BatcherStats } from '../inference/batcher.js';

/**
 * The runtime's Prometheus metrics, in a registry of its own: several servers can live in one
 * process (tests, `embedctl serve` next to other code) without sharing or clashing counters.
 */

/** Routes we label by name; anything else is "other" so label cardinality stays bounded. */
export const EMBEDDING_ROUTES = ['/v1/embeddings', '/embeddings', '/embed', '/api/embed', '/api/embeddings'] as const;
export const ROUTES = [...EMBEDDING_ROUTES, '/embed_all', '/tokenize', '/info', '/api/tags', '/health', '/ready', '/metrics', '/v1/models', '/models'] as const;

export function routeLabel(path: string): string {
  return (ROUTES as readonly string[]).includes(path) ? path : 'other';
}

/**
 * Several batchers' stats as one (the runtime's queue gauges): counts and throughput add up; the
 * expected wait is the longest, what the worst-off request arriving now would wait.
 */
export function sumStats(all: Array<BatcherStats | undefined>): BatcherStats | undefined {
  let sum: BatcherStats | undefined;
  for (const s of all) {
    if (!s) continue;
    if (!sum) {
      sum = { ...s };
      continue;
    }
    sum.queued += s.queued;
    sum.queuedTokens += s.queuedTokens;
    sum.running += s.running;
    sum.tokensPerSecond += s.tokensPerSecond;
    sum.expectedWaitMs = Math.max(sum.expectedWaitMs, s.expectedWaitMs);
    sum.batches += s.batches;
    sum.inputs += s.inputs;
    sum.shed += s.shed;
    sum.draining ||= s.draining;
  }
  return sum;
}

export class RuntimeMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'route' | 'status'>;
  readonly duration: Histogram<'route'>;
  readonly batchSize: Histogram;
  readonly batchPaddedTokens: Histogram;
  readonly batchSeconds: Histogram;
  readonly tokens: Counter;
  readonly inputs: Counter;
  readonly inFlight: Gauge;
  readonly rejected: Counter<'reason'>;
  private readonly modelInfo: Gauge<'model' | 'provider'>;

  constructor(stats: () => BatcherStats | undefined, opts: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'embedctl_requests_total',
      help: 'HTTP requests answered, by route and status code',
      labelNames: ['route', 'status'],
      registers,
    });
    this.duration = new Histogram({
      name: 'embedctl_request_duration_seconds',
      help: 'Time from request received to response sent',
      labelNames: ['route'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.batchSize = new Histogram({
      name: 'embedctl_batch_size',
      help: 'Inputs per model batch',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
      registers,
    });
    this.batchPaddedTokens = new Histogram({
      name: 'embedctl_batch_padded_tokens',
      help: 'Padded tokens (longest input x count) per model batch',
      buckets: [64, 256, 1024, 4096, 8192, 16384, 32768, 65536],
      registers,
    });
    this.batchSeconds = new Histogram({
      name: 'embedctl_batch_duration_seconds',
      help: 'Model time per batch',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.tokens = new Counter({ name: 'embedctl_tokens_total', help: 'Input tokens embedded (before truncation)', registers });
    this.inputs = new Counter({ name: 'embedctl_inputs_total', help: 'Inputs (texts) embedded', registers });
    this.inFlight = new Gauge({
      name: 'embedctl_requests_in_flight',
      help: 'Embedding requests received and not yet answered',
      registers,
    });
    this.rejected = new Counter({
      name: 'embedctl_rejected_total',
      help: 'Embedding requests refused before reaching the model, by reason',
      labelNames: ['reason'],
      registers,
    });
    new Counter({
      name: 'embedctl_queue_timeouts_total',
      help: 'Requests answered 429 after waiting past --max-queue-ms for their first batch (queue timeout; also counted in embedctl_rejected_total), all models',
      registers,
      collect() {
        // The batcher keeps the count; a counter's value can only be set by reset + inc.
        this.reset();
        this.inc(stats()?.shed ?? 0);
      },
    });
    new Gauge({
      name: 'embedctl_queue_depth',
      help: 'Inputs waiting for a batch, all models',
      registers,
      collect() {
        this.set(stats()?.queued ?? 0);
      },
    });
    new Gauge({
      name: 'embedctl_queue_tokens',
      help: 'Tokens waiting for a batch, all models',
      registers,
      collect() {
        this.set(stats()?.queuedTokens ?? 0);
      },
    });
    new Gauge({
      name: 'embedctl_throughput_tokens_per_second',
      help: "Tokens/s the server delivers under its current load (batch cycles, HTTP work included), summed over models; admission divides by each model's own",
      registers,
      collect() {
        this.set(stats()?.tokensPerSecond ?? 0);
      },
    });
    new Gauge({
      name: 'embedctl_expected_wait_seconds',
      help: 'What a request arriving now would wait (queued and running tokens / throughput), the longest of any model; over --max-queue-ms -> 429',
      registers,
      collect() {
        this.set((stats()?.expectedWaitMs ?? 0) / 1000);
      },
    });
    this.modelInfo = new Gauge({
      name: 'embedctl_model_info',
      help: 'The model served and the execution provider in use (value 1)',
      labelNames: ['model', 'provider'],
      registers,
    });
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'embedctl_' });
  }

  setModel(model: string, provider: string): void {
    this.modelInfo.set({ model, provider }, 1);
  }

  observeBatch(r: BatchReport): void {
    this.batchSize.observe(r.size);
    this.batchPaddedTokens.observe(r.paddedTokens);
    this.batchSeconds.observe(r.ms / 1000);
  }
}
