/**
 * The service metrics of a deployment, as the runtime publishes them (runtime/hooks/emf.ts writes
 * CloudWatch Embedded Metric Format lines that the instance's CloudWatch agent ships) and as
 * everything else reads them: provision's alarms, cost-report --actual, rollout --cloudwatch.
 * One list, so a rename cannot leave a reader alarming on a metric nobody publishes.
 *
 * Namespace `Embedctl`, one dimension `Deployment=<provision --name>` (EMBEDCTL_DEPLOYMENT on
 * the runtime). Only the embeddings routes count: health checks and scrapes would dilute rates.
 */

export const SERVICE_NAMESPACE = 'Embedctl';
export const DEPLOYMENT_DIMENSION = 'Deployment';
export const DEFAULT_DEPLOYMENT = 'main';

export const SERVICE_METRICS = {
  /** Embedding requests answered, any status (Count; Sum per period). */
  requests: 'Requests',
  /**
   * Requests answered 5xx (Count). The same rule as rollout's /metrics and access-log evidence:
   * a 5xx is the server failing, and it is what the gateway falls back to hosted on.
   */
  errors: 'Errors',
  /**
   * Requests refused 429 because the queue was full (Count). Kept apart from Errors: load shedding
   * is a capacity signal (add replicas), not a broken server, and clients are told to retry.
   */
  throttled: 'Throttled',
  /** Inputs (texts) embedded (Count): the unit of the hosted bill per request. */
  embeddings: 'Embeddings',
  /** Input tokens embedded (Count): the unit of the hosted bill per token. */
  tokens: 'Tokens',
  /**
   * One runtime's latency percentiles over one report interval (Milliseconds), from its
   * request-duration histogram. Percentiles do not add up across runtimes or minutes, so readers
   * take the Maximum: the worst runtime's p95 in the period.
   */
  latencyP50: 'RequestLatencyP50',
  latencyP95: 'RequestLatencyP95',
} as const;

/** How to aggregate RequestLatencyP95 in a period (see SERVICE_METRICS.latencyP95). */
export const LATENCY_P95_STAT = 'Maximum';

/** Deployment names as provision accepts them, and what a dimension value may safely hold. */
export const DEPLOYMENT_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
