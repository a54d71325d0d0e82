import { AnswerError, InferenceError } from '../inference/errors.js';

/** An error answered as OpenAI does: `{error:{message,type,param,code}}`. */
export class ApiError extends AnswerError {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type: string = status === 401
      ? 'authentication_error'
      : status === 429
        ? 'rate_limit_error'
        : status >= 500
          ? 'server_error'
          : 'invalid_request_error',
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  body() {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** Maps what the inference layer refused to the HTTP status every route shape starts from. */
const STATUS: Record<InferenceError['kind'], number> = {
  not_ready: 503,
  shutting_down: 503,
  overloaded: 429,
  input_too_long: 400,
  request_too_large: 413,
  model_not_found: 404,
  invalid: 400,
};

/** An inference-layer refusal as an OpenAI-shaped ApiError (routes of other shapes re-shape it). */
export function apiErrorOf(err: InferenceError): ApiError {
  const headers: Record<string, string> = err.retryAfterSeconds !== undefined ? { 'retry-after': String(err.retryAfterSeconds) } : {};
  if (err.opts.retryAfterMs !== undefined) headers['retry-after-ms'] = String(Math.ceil(err.opts.retryAfterMs));
  return new ApiError(STATUS[err.kind], err.message, err.param ?? null, err.code, undefined, headers);
}
