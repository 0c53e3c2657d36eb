/**
 * The one error type of modelgate. Every failure the gateway or the admin API reports to a
 * caller is a GatewayError with a code from this closed set; `toHttp` turns it into a
 * response once, at the edge.
 */
export const STATUS_BY_CODE = {
  GW_ENDPOINT_NOT_FOUND: 404,
  GW_AUTH_MISSING: 401,
  GW_AUTH_INVALID: 401,
  GW_AUTH_EXPIRED: 401,
  GW_AUTH_REVOKED: 401,
  GW_AUTH_FORBIDDEN: 403,
  GW_NO_HEALTHY_ROUTE: 503,
  GW_OVERLOADED: 503,
  GW_UPSTREAM_UNAVAILABLE: 502,
  GW_UPSTREAM_TIMEOUT: 504,
  GW_BODY_TOO_LARGE: 413,
  GW_BAD_REQUEST: 400,
  GW_RATE_LIMITED: 429,
  // Additions to the design's table (see docs/errors.md): a method the gateway never proxies,
  // an oversized header block, and a bug inside the gateway.
  GW_METHOD_NOT_ALLOWED: 405,
  GW_HEADERS_TOO_LARGE: 431,
  // A request that already passed through modelgate too many times (a route leading back to a
  // gateway): RFC 8297's 508 Loop Detected.
  GW_LOOP_DETECTED: 508,
  GW_INTERNAL: 500,
  ADM_UNAUTHORIZED: 401,
  ADM_NOT_FOUND: 404,
  ADM_INVALID: 400,
  ADM_CONFLICT: 409,
  ADM_BODY_TOO_LARGE: 413,
  // A Host the admin listener does not answer to (DNS rebinding defence, RFC 9110 §15.5.20).
  ADM_MISDIRECTED: 421,
  // The store (Redis) cannot be reached: retry later; nothing was written.
  ADM_STORE_UNAVAILABLE: 503,
  ADM_INTERNAL: 500,
} as const;

export type GatewayErrorCode = keyof typeof STATUS_BY_CODE;

/** Fixed, safe messages: never echo a token, claim value or upstream URL. */
export const DEFAULT_MESSAGE: Record<GatewayErrorCode, string> = {
  GW_ENDPOINT_NOT_FOUND: 'no such endpoint',
  GW_AUTH_MISSING: 'this endpoint needs a token: Authorization: BackendAI <token>',
  GW_AUTH_INVALID: 'token is malformed or its signature does not verify',
  GW_AUTH_EXPIRED: 'token expired',
  GW_AUTH_REVOKED: 'token was revoked',
  GW_AUTH_FORBIDDEN: 'token is not valid for this endpoint',
  GW_NO_HEALTHY_ROUTE: 'no healthy replica became available in time',
  GW_OVERLOADED: 'gateway is at capacity, retry later',
  GW_UPSTREAM_UNAVAILABLE: 'upstream replica refused or reset the connection',
  GW_UPSTREAM_TIMEOUT: 'upstream replica did not answer in time',
  GW_BODY_TOO_LARGE: 'request body is over the limit',
  GW_BAD_REQUEST: 'request cannot be parsed or forwarded',
  GW_RATE_LIMITED: 'rate limit reached, retry later',
  GW_METHOD_NOT_ALLOWED: 'method is not proxied',
  GW_HEADERS_TOO_LARGE: 'request header block is over the limit',
  GW_LOOP_DETECTED: 'request passed through this gateway too many times (a route leads back to it)',
  GW_INTERNAL: 'internal gateway error',
  ADM_UNAUTHORIZED: 'admin API needs Authorization: Bearer <ADMIN_TOKEN>',
  ADM_NOT_FOUND: 'not found',
  ADM_INVALID: 'invalid request',
  ADM_CONFLICT: 'conflict',
  ADM_BODY_TOO_LARGE: 'request body is over the limit',
  ADM_MISDIRECTED: 'this admin listener does not answer to that Host (see ADMIN_ALLOWED_HOSTS)',
  ADM_STORE_UNAVAILABLE: 'the store is unreachable; nothing was changed, retry later',
  ADM_INTERNAL: 'internal error',
};

export interface FieldError {
  /** Dotted path of the offending field (`routes.0.url`), or `body` for the whole body. */
  field: string;
  message: string;
}

export interface GatewayErrorOptions {
  message?: string;
  cause?: unknown;
  /** Safe detail for logs only, never sent to the client. */
  detail?: string;
  /** Per-field problems, sent to the client (ADM_INVALID). */
  details?: FieldError[];
  retryAfterSeconds?: number;
  /** Endpoint name for the WWW-Authenticate realm of a 401. */
  realm?: string;
  /** RFC 6750 error attribute for the challenge (`invalid_token`). */
  challengeError?: string;
  challengeDescription?: string;
  /** Extra response headers (the IETF RateLimit fields of a 429). */
  headers?: Record<string, string>;
  /** The client connection must close after this error: its framing can no longer be trusted. */
  closeConnection?: boolean;
}

export class GatewayError extends Error {
  readonly code: GatewayErrorCode;
  readonly status: number;
  readonly detail?: string;
  readonly details?: FieldError[];
  readonly retryAfterSeconds?: number;
  readonly realm?: string;
  readonly challengeError?: string;
  readonly challengeDescription?: string;
  readonly headers?: Record<string, string>;
  readonly closeConnection: boolean;

  constructor(code: GatewayErrorCode, opts: GatewayErrorOptions = {}) {
    super(opts.message ?? DEFAULT_MESSAGE[code], opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.status = STATUS_BY_CODE[code];
    this.detail = opts.detail;
    this.details = opts.details;
    this.retryAfterSeconds = opts.retryAfterSeconds;
    this.realm = opts.realm;
    this.challengeError = opts.challengeError;
    this.challengeDescription = opts.challengeDescription;
    this.headers = opts.headers;
    this.closeConnection = opts.closeConnection === true || code === 'GW_HEADERS_TOO_LARGE';
  }
}

export function isGatewayError(err: unknown): err is GatewayError {
  return err instanceof GatewayError;
}
