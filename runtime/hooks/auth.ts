import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { ApiError } from '../routes/errors.js';
import type { AuthHook, Principal } from './index.js';

/** The one place a static API key (--api-key / EMBEDCTL_API_KEY) is checked. */

const digest = (s: string) => createHash('sha256').update(s).digest();

export const ANONYMOUS: Principal = { id: 'anonymous' };

/** "Authorization: Bearer <key>" -> key, else undefined. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
  return m ? m[1]!.trim() : undefined;
}

export const unauthorized = () =>
  new ApiError(401, 'missing or wrong API key; send "Authorization: Bearer <key>"', null, 'invalid_api_key', 'invalid_request_error');

/** No key configured: everyone is the anonymous principal. With a key: it must match. */
export function staticKeyAuth(apiKey: string | undefined): AuthHook {
  if (!apiKey) return { authenticate: () => ANONYMOUS };
  const want = digest(apiKey);
  return {
    authenticate(req) {
      const got = bearerToken(req);
      // Compare digests: equal lengths, and the time taken says nothing about the key.
      if (got === undefined || !timingSafeEqual(digest(got), want)) throw unauthorized();
      return { id: 'api-key', scopes: ['embed', 'admin'] };
    },
  };
}
