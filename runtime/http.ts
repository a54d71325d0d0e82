import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError } from './routes/errors.js';

/** HTTP plumbing the routes share: bounded body reading and one way to answer. */

/** A string body is sent as is (JSON already written, or Prometheus text with its own content-type). */
export function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export const tooLarge = (limit: number) =>
  new ApiError(413, `the request body is over the limit of ${limit} bytes; send fewer or shorter inputs per request`, null, 'request_too_large');

/** The body, refused with a 413 ApiError as soon as it (or its declared length) passes `limit`. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > limit) return reject(tooLarge(limit));
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (c: Buffer) => {
      if (failed) return;
      size += c.length;
      if (size > limit) {
        failed = true;
        chunks.length = 0;
        reject(tooLarge(limit));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => !failed && resolve(Buffer.concat(chunks)));
    req.on('error', (e) => !failed && reject(e));
    // The client hung up mid-body: nothing will come; end the wait (nobody is left to answer).
    req.on('close', () => !failed && !req.complete && reject(new Error('client closed the connection')));
  });
}

export async function readJson(req: IncomingMessage, limit: number, example: string): Promise<unknown> {
  const raw = await readBody(req, limit);
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new ApiError(400, `the request body is not valid JSON (${(err as Error).message}); send ${example}`, null, 'invalid_json');
  }
}

/**
 * After an early error (413), read and drop what the client is still sending, keeping the
 * connection: closing on unread data resets it, and clients that reuse it fail (EPIPE) instead of
 * seeing the answer. Bounded in bytes and time, so a client cannot keep the socket busy.
 */
export function discardBody(req: IncomingMessage, maxBytes: number): void {
  let dropped = 0;
  const cap = setTimeout(() => req.destroy(), 10_000).unref();
  req.on('data', (c: Buffer) => {
    dropped += c.length;
    if (dropped > maxBytes) req.destroy();
  });
  req.once('close', () => clearTimeout(cap));
  req.resume();
}

export const methodNotAllowed = (path: string, method: string | undefined, allow: string[]) =>
  new ApiError(405, `${path} takes ${allow.join(' or ')}, not ${method}`, null, 'method_not_allowed', 'invalid_request_error', { allow: allow.join(', ') });
