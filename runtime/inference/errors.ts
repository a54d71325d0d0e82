/**
 * Why the inference layer refused or could not finish a call. It knows nothing of HTTP: each
 * route maps `kind` to its API's status and error shape (runtime/routes/errors.ts).
 */
export type InferenceErrorKind = 'not_ready' | 'shutting_down' | 'overloaded' | 'input_too_long' | 'request_too_large' | 'model_not_found' | 'invalid';

export class InferenceError extends Error {
  constructor(
    readonly kind: InferenceErrorKind,
    message: string,
    readonly code: string,
    /** retryAfterMs: the same wait to the millisecond (sent as Retry-After-Ms, which the OpenAI SDKs honour). */
    readonly opts: { param?: string; retryAfterSeconds?: number; retryAfterMs?: number } = {},
  ) {
    // An expected refusal (overload, bad input), not a fault: no stack trace.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
    this.name = 'InferenceError';
  }
  get param(): string | undefined {
    return this.opts.param;
  }
  get retryAfterSeconds(): number | undefined {
    return this.opts.retryAfterSeconds;
  }
}
