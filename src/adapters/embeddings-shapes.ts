import { UsageError } from '../errors.js';
import { HOSTED_MODELS } from '../core/cost/prices.js';
import type { EmbeddingsClient, Shape } from './embeddings-client.js';

/**
 * What the embeddings client needs to know about endpoints, apart from sending: which URL and
 * body shape a user's URL means, header and Retry-After parsing, vector decoding, and the cost
 * estimate the guard asks about before paying a hosted API.
 */

export const JINA_HOST = 'api.jina.ai';
export const OPENAI_HOST = 'api.openai.com';
export const DEFAULT_MODELS: Partial<Record<Shape, string>> = {
  jina: 'jina-embeddings-v3',
  openai: 'text-embedding-3-small',
};

export interface ResolvedEndpoint {
  endpoint: string;
  shape: Shape;
  host: string;
}

/** Turns what the user typed into the URL we POST to and the body shape it speaks. */
export function resolveEndpoint(url: string, shape: Shape | 'auto' = 'auto', flag = '--url'): ResolvedEndpoint {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`not a URL: ${JSON.stringify(url)}`, { field: flag, hint: 'e.g. http://127.0.0.1:8080 or https://api.jina.ai/v1/embeddings' });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new UsageError(`only http and https endpoints are supported, got ${u.protocol}`, { field: flag });
  }
  const path = u.pathname.replace(/\/+$/, '');
  let resolved: Shape;
  if (shape !== 'auto') resolved = shape;
  else if (u.hostname === JINA_HOST) resolved = 'jina';
  else if (u.hostname === OPENAI_HOST) resolved = 'openai';
  else if (path.endsWith('/api/embed')) resolved = 'ollama';
  else if (path.endsWith('/embed')) resolved = 'tei';
  // Anything else speaks the OpenAI shape; embedctl's runtime also reads task/dimensions from it.
  else resolved = 'embedctl';
  if (resolved === 'tei') {
    if (!path.endsWith('/embed')) u.pathname = `${path}/embed`;
  } else if (resolved === 'ollama') {
    if (!path.endsWith('/api/embed')) u.pathname = `${path}/api/embed`;
  } else if (!path.endsWith('/embeddings')) {
    u.pathname = path.endsWith('/v1') ? `${path}/embeddings` : `${path}/v1/embeddings`;
  }
  return { endpoint: u.toString(), shape: resolved, host: u.hostname };
}

export function isPaidHost(url: string): boolean {
  try {
    const h = new URL(url).hostname;
    return h === JINA_HOST || h === OPENAI_HOST;
  } catch {
    return false;
  }
}

/** `--header "Name: value"` flags into a record; bad ones name the flag. */
export function parseHeaders(list: string[] | undefined, flag = '--header'): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of list ?? []) {
    const i = raw.indexOf(':');
    const name = i > 0 ? raw.slice(0, i).trim() : '';
    if (!name || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
      throw new UsageError(`expected "Name: value", got ${JSON.stringify(raw)}`, { field: flag, hint: 'e.g. --header "Authorization: Bearer $TOKEN"' });
    }
    out[name] = raw.slice(i + 1).trim();
  }
  return out;
}

/** Seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - now);
}

export class RetryableError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export function serverMessage(text: string): string {
  let msg = text;
  try {
    const j = JSON.parse(text) as Record<string, unknown>;
    const e = j.error;
    if (typeof e === 'string') msg = e;
    else if (e && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string') msg = (e as { message: string }).message;
    else if (typeof j.detail === 'string') msg = j.detail;
    else if (Array.isArray(j.detail)) msg = JSON.stringify(j.detail);
    else if (typeof j.message === 'string') msg = j.message;
  } catch {
    /* not JSON: the raw text it is */
  }
  msg = msg.replace(/\s+/g, ' ').trim();
  return msg.length > 300 ? `${msg.slice(0, 300)}…` : msg || '(empty body)';
}

export function decodeVector(v: unknown): Float32Array | undefined {
  if (Array.isArray(v)) {
    const out = new Float32Array(v.length);
    for (let i = 0; i < v.length; i++) out[i] = typeof v[i] === 'number' ? v[i] : NaN;
    return out;
  }
  if (typeof v === 'string') {
    // encoding_format=base64: little-endian float32, what OpenAI and Jina return when asked.
    const buf = Buffer.from(v, 'base64');
    if (buf.length % 4 !== 0) return undefined;
    const out = new Float32Array(buf.length / 4);
    for (let i = 0; i < out.length; i++) out[i] = buf.readFloatLE(i * 4);
    return out;
  }
  return undefined;
}

/** ~4 characters a token for English; dense scripts (CJK) run closer to 1 a token. */
export function estimateTokens(texts: string[]): number {
  let n = 0;
  for (const t of texts) {
    let cjk = 0;
    for (const ch of t) if (/[\u3000-\u9fff\uac00-\ud7af\uf900-\ufaff]/.test(ch)) cjk++;
    n += Math.ceil((t.length - cjk) / 4) + cjk + 1;
  }
  return n;
}

/**
 * List prices in USD per million tokens from the one price table cost-report uses
 * (src/core/cost/prices.ts): a guard against surprises, not a bill. Override with --price-per-million.
 */
export const LIST_PRICE_PER_MILLION: Record<string, number> = Object.fromEntries(HOSTED_MODELS.map((m) => [m.model, m.pricePerMillion]));

export interface CostEstimate {
  endpoint: string;
  tokens: number;
  usd: number;
  pricePerMillion: number;
}

/** Undefined for a free endpoint (self-hosted, no price given): nothing to guard. */
export function estimateCost(
  client: Pick<EmbeddingsClient, 'endpoint' | 'model' | 'paid'>,
  texts: string[],
  pricePerMillion?: number,
): CostEstimate | undefined {
  if (!client.paid && pricePerMillion === undefined) return undefined;
  const price = pricePerMillion ?? LIST_PRICE_PER_MILLION[client.model ?? ''] ?? 0.13;
  const tokens = estimateTokens(texts);
  return { endpoint: client.endpoint, tokens, usd: (tokens / 1e6) * price, pricePerMillion: price };
}
