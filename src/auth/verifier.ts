import { decodeJwt, decodeProtectedHeader, jwtVerify, type JWTPayload, type JWTVerifyOptions } from 'jose';
import { SYSTEM_CLOCK, type Clock } from './clock.js';
import type { ExternalKeySource } from './external-keys.js';
import { MODELGATE_ISSUER, PRIORITY_CLAIM, RATE_LIMIT_CLAIM } from './issuer.js';
import { errorCodeOf, fromJose, isKeyFetchFailure, isKeyMismatch, type AuthFailureCode } from './jose-errors.js';

/** `exp` leeway on every check, cached or not (DESIGN: 30 s). */
export const EXP_LEEWAY_SECONDS = 30;

/** The claims kept after a token verified; what the cache stores. */
export interface VerifiedClaims {
  /** The endpoint id the token is for (a one-element `aud` array is unwrapped). */
  aud: string;
  /** Epoch seconds. */
  exp: number;
  sub?: string;
  jti?: string;
  iss?: string;
  iat?: number;
  /** Queue priority 0-9 from `mg_priority` (absent or malformed: the default). */
  priority?: number;
  /** Per-minute limits from `mg_rate_limit` (0 = none). */
  rpm?: number;
  tpm?: number;
}

/** Why a token was refused; the checker turns it into the endpoint's GatewayError. */
export class TokenRejected extends Error {
  constructor(
    readonly code: AuthFailureCode,
    /** Safe for logs: a jose error code or a fixed phrase, never token content. */
    readonly reason: string,
    /** A key set could not be fetched: do not remember this failure for long. */
    readonly transient = false,
  ) {
    super(reason);
    this.name = 'TokenRejected';
  }
}

export interface TokenVerifierOptions {
  /** TOKEN_SECRET: the only key HS256 tokens are checked with. */
  secret: string;
  external?: readonly ExternalKeySource[];
  /** TOKEN_ISSUERS: when non-empty, an external token's `iss` must be one of them. */
  issuers?: readonly string[];
  clock?: Clock;
  leewaySeconds?: number;
}

const HS_ALGORITHMS = ['HS256'];

/**
 * Signature and claim checks, no caching (the access checker caches). HS256 tokens are
 * checked with TOKEN_SECRET only and must say `iss="modelgate"` and carry a `jti`; tokens
 * with an asymmetric `alg` are checked against the external keys only. Anything else
 * (`none`, HS384, an RS token with no external key configured) is GW_AUTH_INVALID. `aud` is
 * not checked here: it must equal the endpoint's current id, which the checker compares on
 * every request.
 */
export class TokenVerifier {
  readonly #secret: Uint8Array;
  readonly #external: readonly ExternalKeySource[];
  readonly #asymmetric: ReadonlySet<string>;
  readonly #clock: Clock;
  readonly #leewaySeconds: number;
  readonly #hsOptions: JWTVerifyOptions;
  readonly #externalOptions: JWTVerifyOptions;

  constructor(opts: TokenVerifierOptions) {
    this.#secret = new TextEncoder().encode(opts.secret);
    this.#external = opts.external ?? [];
    this.#asymmetric = new Set(this.#external.flatMap((s) => s.algorithms));
    this.#clock = opts.clock ?? SYSTEM_CLOCK;
    const leeway = opts.leewaySeconds ?? EXP_LEEWAY_SECONDS;
    this.#leewaySeconds = leeway;
    this.#hsOptions = {
      algorithms: HS_ALGORITHMS,
      issuer: MODELGATE_ISSUER,
      clockTolerance: leeway,
      requiredClaims: ['exp', 'aud', 'jti'],
    };
    this.#externalOptions = {
      clockTolerance: leeway,
      requiredClaims: ['exp', 'aud'],
      ...(opts.issuers && opts.issuers.length > 0 ? { issuer: [...opts.issuers] } : {}),
    };
  }

  /** True when external issuers are configured. */
  get hasExternalKeys(): boolean {
    return this.#external.length > 0;
  }

  /** Verifies signature, algorithm, `iss`, `exp` (with leeway) and `nbf`; throws TokenRejected. */
  async verify(token: string): Promise<VerifiedClaims> {
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw new TokenRejected('GW_AUTH_INVALID', 'malformed token header');
    }
    const currentDate = new Date(this.#clock.now());
    if (alg === 'HS256') {
      try {
        const { payload } = await jwtVerify(token, this.#secret, { ...this.#hsOptions, currentDate });
        return normalizeClaims(payload, true, currentDate.getTime() / 1000 + this.#leewaySeconds);
      } catch (err) {
        throw rejection(err);
      }
    }
    if (typeof alg !== 'string' || !this.#asymmetric.has(alg)) {
      throw new TokenRejected('GW_AUTH_INVALID', `algorithm not accepted: ${typeof alg === 'string' ? alg.slice(0, 16) : 'missing'}`);
    }
    let last: unknown;
    for (const source of this.#external) {
      if (!source.algorithms.includes(alg)) continue;
      try {
        const options = { ...this.#externalOptions, algorithms: source.algorithms as string[], currentDate };
        const { payload } =
          typeof source.key === 'function' ? await jwtVerify(token, source.key, options) : await jwtVerify(token, source.key, options);
        return normalizeClaims(payload, false, currentDate.getTime() / 1000 + this.#leewaySeconds);
      } catch (err) {
        if (err instanceof TokenRejected || !isKeyMismatch(err)) throw rejection(err);
        // This key did not sign it (or cannot be fetched): try the next source.
        if (last === undefined || !isKeyFetchFailure(last)) last = err;
      }
    }
    throw rejection(last);
  }
}

function rejection(err: unknown): TokenRejected {
  if (err instanceof TokenRejected) return err;
  return new TokenRejected(fromJose(err), errorCodeOf(err), isKeyFetchFailure(err));
}

/**
 * Claim shapes jose leaves to us. A token is for exactly one endpoint (DESIGN): `aud` is one
 * string, or an array of exactly one (RFC 7519 allows both spellings); an array naming several
 * endpoints is refused outright, not matched against this endpoint. `iat` later than now plus
 * the leeway is refused too: jose checks it only with maxTokenAge, and a token "issued" in the
 * future comes from a broken or hostile issuer clock.
 */
function normalizeClaims(payload: JWTPayload, requireJti: boolean, latestIat: number): VerifiedClaims {
  const { exp, sub, jti, iss, iat } = payload;
  let aud: unknown = payload.aud;
  if (Array.isArray(aud)) {
    if (aud.length !== 1) throw new TokenRejected('GW_AUTH_INVALID', aud.length === 0 ? 'aud claim is empty' : 'aud claim names more than one endpoint');
    aud = aud[0];
  }
  if (typeof aud !== 'string' || aud.length === 0) throw new TokenRejected('GW_AUTH_INVALID', 'aud claim is not a string');
  if (iat !== undefined && (typeof iat !== 'number' || iat > latestIat)) throw new TokenRejected('GW_AUTH_INVALID', 'iat claim is in the future');
  if (typeof exp !== 'number') throw new TokenRejected('GW_AUTH_INVALID', 'exp claim is not a number');
  if (sub !== undefined && typeof sub !== 'string') throw new TokenRejected('GW_AUTH_INVALID', 'sub claim is not a string');
  if (jti !== undefined && (typeof jti !== 'string' || jti.length === 0)) throw new TokenRejected('GW_AUTH_INVALID', 'jti claim is not a string');
  if (requireJti && jti === undefined) throw new TokenRejected('GW_AUTH_INVALID', 'jti claim missing');
  const claims: VerifiedClaims = { aud, exp };
  if (sub !== undefined) claims.sub = sub;
  if (jti !== undefined) claims.jti = jti;
  if (iss !== undefined) claims.iss = iss;
  if (typeof iat === 'number') claims.iat = iat;
  readTrafficClaims(payload, claims);
  return claims;
}

function positiveInt(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : undefined;
}

/**
 * Traffic-control claims are advisory to verification: a malformed one is ignored (the token
 * still authenticates) rather than refusing a caller over a limit it cannot fix.
 */
function readTrafficClaims(payload: JWTPayload, claims: VerifiedClaims): void {
  const priority = payload[PRIORITY_CLAIM];
  if (typeof priority === 'number' && Number.isInteger(priority) && priority >= 0 && priority <= 9) claims.priority = priority;
  const limit = payload[RATE_LIMIT_CLAIM];
  if (limit !== null && typeof limit === 'object' && !Array.isArray(limit)) {
    const l = limit as Record<string, unknown>;
    const rpm = positiveInt(l.requests_per_minute);
    const tpm = positiveInt(l.tokens_per_minute);
    if (rpm !== undefined) claims.rpm = rpm;
    if (tpm !== undefined) claims.tpm = tpm;
  }
}

/** Header and claims of a token without verifying it (CLI display only); null when not a JWT. */
export function decodeUnverified(token: string): { header: Record<string, unknown>; claims: Record<string, unknown> } | null {
  try {
    return { header: decodeProtectedHeader(token) as Record<string, unknown>, claims: decodeJwt(token) as Record<string, unknown> };
  } catch {
    return null;
  }
}
