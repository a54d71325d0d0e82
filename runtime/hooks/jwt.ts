import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';

/**
 * JWT bearer tokens for multi-user setups, verified with `jose`: HS256 with a shared secret
 * (--jwt-secret), or RS256/ES256 against the identity provider's JWKS (--jwt-jwks-url, fetched and
 * cached by jose, refreshed when an unknown key id shows up). Issuer, audience and expiry are
 * checked; the caller's name comes from one claim (default "sub") and its scopes from "scope"
 * (space-separated, OAuth style) or "scopes" (an array).
 */

export interface JwtOptions {
  secret?: string;
  jwksUrl?: string;
  issuer?: string;
  audience?: string;
  /** Claim holding the caller's name (default "sub"). */
  nameClaim?: string;
}

/** A token we refuse; `reason` is safe to show the client (it names no secret). */
export class JwtRejected extends Error {
  constructor(
    readonly reason: string,
    readonly code: string,
  ) {
    super(reason);
    this.name = 'JwtRejected';
  }
}

export interface JwtIdentity {
  name: string;
  scopes: string[];
}

/** Three base64url segments, the first a JSON header ("eyJ" is base64 of '{"'). */
export const looksLikeJwt = (token: string) => /^eyJ[\w-]*\.[\w-]+\.[\w-]*$/.test(token);

export class JwtVerifier {
  private readonly key: Uint8Array | JWTVerifyGetKey;
  private readonly algorithms: string[];
  private readonly nameClaim: string;

  constructor(private readonly opts: JwtOptions) {
    if (!!opts.secret === !!opts.jwksUrl) throw new Error('JWT needs exactly one of --jwt-secret (HS256) or --jwt-jwks-url (RS256/ES256)');
    if (opts.secret) {
      // HS256 with a short secret is brute-forceable offline from any one token.
      if (Buffer.byteLength(opts.secret) < 32) throw new Error('--jwt-secret: use at least 32 bytes (openssl rand -hex 32)');
      this.key = new TextEncoder().encode(opts.secret);
      this.algorithms = ['HS256'];
    } else {
      this.key = createRemoteJWKSet(new URL(opts.jwksUrl!), { timeoutDuration: 3000, cooldownDuration: 30_000 });
      this.algorithms = ['RS256', 'ES256'];
    }
    this.nameClaim = opts.nameClaim ?? 'sub';
  }

  async verify(token: string): Promise<JwtIdentity> {
    let payload: JWTPayload;
    try {
      const o = { algorithms: this.algorithms, issuer: this.opts.issuer, audience: this.opts.audience, requiredClaims: ['exp'] };
      // Two calls only because jose overloads jwtVerify on a key versus a key-getter.
      ({ payload } = this.key instanceof Uint8Array ? await jwtVerify(token, this.key, o) : await jwtVerify(token, this.key, o));
    } catch (err) {
      throw rejection(err);
    }
    const name = payload[this.nameClaim];
    if (typeof name !== 'string' || !/^[\x21-\x7e]{1,128}$/.test(name)) {
      throw new JwtRejected(`the token has no usable "${this.nameClaim}" claim (a name of 1-128 printable characters) to name the caller`, 'jwt_missing_name');
    }
    return { name, scopes: scopesOf(payload) };
  }
}

function scopesOf(p: JWTPayload): string[] {
  if (typeof p.scope === 'string') return p.scope.split(/\s+/).filter(Boolean);
  if (Array.isArray(p.scopes)) return p.scopes.filter((s): s is string => typeof s === 'string');
  return ['embed'];
}

/** jose's errors as one reason a client can act on. */
function rejection(err: unknown): JwtRejected {
  if (err instanceof errors.JWTExpired) return new JwtRejected('the token has expired ("exp" is in the past); get a new one', 'jwt_expired');
  if (err instanceof errors.JWSSignatureVerificationFailed) return new JwtRejected('the token signature does not verify against the configured key', 'jwt_bad_signature');
  if (err instanceof errors.JWTClaimValidationFailed) return new JwtRejected(`the token's "${err.claim}" claim is ${err.reason === 'missing' ? 'missing' : 'not accepted'} (${err.message})`, 'jwt_claim_rejected');
  if (err instanceof errors.JOSEAlgNotAllowed) return new JwtRejected(`the token's algorithm is not accepted here (${err.message})`, 'jwt_bad_algorithm');
  if (err instanceof errors.JWKSNoMatchingKey) return new JwtRejected('no key in the JWKS matches the token ("kid" unknown)', 'jwt_unknown_key');
  if (err instanceof errors.JWKSTimeout || (err instanceof Error && /fetch|ECONNREFUSED|JWKS/i.test(err.message) && !(err instanceof errors.JWTInvalid)))
    return new JwtRejected('the JWKS could not be fetched to check the token; retry later', 'jwt_jwks_unavailable');
  return new JwtRejected(`the token is not a valid JWT (${err instanceof Error ? err.message : String(err)})`, 'jwt_invalid');
}
