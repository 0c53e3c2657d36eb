import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { SYSTEM_CLOCK, type Clock } from './clock.js';

/** The `iss` of every token this gateway issues. */
export const MODELGATE_ISSUER = 'modelgate';

export interface IssueRequest {
  /** Endpoint id: the token's `aud`. */
  endpointId: string;
  sub: string;
  /** Epoch seconds. */
  exp: number;
  /** Queue priority 0-9 (claim `mg_priority`); absent = default 5. */
  priority?: number;
  /** Per-token limits (claim `mg_rate_limit`), so the data plane reads them from the verified token. */
  rateLimit?: { requests_per_minute?: number; tokens_per_minute?: number };
}

/** Private claims for traffic control (docs/traffic-control.md). */
export const PRIORITY_CLAIM = 'mg_priority';
export const RATE_LIMIT_CLAIM = 'mg_rate_limit';

export interface IssuedToken {
  token: string;
  jti: string;
  sub: string;
  /** Epoch seconds. */
  iat: number;
  exp: number;
}

/** Signs HS256 JWTs with TOKEN_SECRET: `iss="modelgate"`, `aud`, `sub`, random `jti`, `iat`, `exp`. */
export class TokenIssuer {
  readonly #key: Uint8Array;
  readonly #clock: Clock;

  constructor(secret: string, clock: Clock = SYSTEM_CLOCK) {
    if (secret.length < 32) throw new Error('token secret must be at least 32 characters');
    this.#key = new TextEncoder().encode(secret);
    this.#clock = clock;
  }

  async issue(req: IssueRequest): Promise<IssuedToken> {
    const jti = randomUUID();
    const iat = Math.floor(this.#clock.now() / 1000);
    const claims: Record<string, unknown> = {};
    if (req.priority !== undefined) claims[PRIORITY_CLAIM] = req.priority;
    if (req.rateLimit !== undefined && (req.rateLimit.requests_per_minute !== undefined || req.rateLimit.tokens_per_minute !== undefined)) {
      claims[RATE_LIMIT_CLAIM] = req.rateLimit;
    }
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setIssuer(MODELGATE_ISSUER)
      .setAudience(req.endpointId)
      .setSubject(req.sub)
      .setJti(jti)
      .setIssuedAt(iat)
      .setExpirationTime(req.exp)
      .sign(this.#key);
    return { token, jti, sub: req.sub, iat, exp: req.exp };
  }
}
