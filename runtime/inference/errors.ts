/**
 * Why the inference layer refused or could not finish a call. It knows nothing of HTTP: each
 * route maps `kind` to its API's status and error shape (runtime/routes/errors.ts).
 */
export type InferenceErrorKind = 'not_ready' | 'shutting_down' | 'overloaded' | 'input_too_long' | 'request_too_large' | 'model_not_found' | 'invalid';

/**
 * An error that is an answer (a refusal under overload, a bad input), not a fault: built without
 * a stack trace. Capturing one cost ~20 us per 429, 5.8 % of the event loop under a 1,024-client
 * overload, when the loop has the least time to spare.
 */
export class AnswerError extends Error {
  constructor(message: string) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
  }
}

export class InferenceError extends AnswerError {
  constructor(
    readonly kind: InferenceErrorKind,
    message: string,
    readonly code: string,
    /** retryAfterMs: the same wait to the millisecond (sent as Retry-After-Ms, which the OpenAI SDKs honour). */
    readonly opts: { param?: string; retryAfterSeconds?: number; retryAfterMs?: number } = {},
  ) {
    super(message);
    this.name = 'InferenceError';
  }
  get param(): string | undefined {
    return this.opts.param;
  }
  get retryAfterSeconds(): number | undefined {
    return this.opts.retryAfterSeconds;
  }
}
