import { GatewayError, type FieldError } from '../errors/gateway-error.js';

/**
 * Expiry of a token being issued. The caller gives at most one of four forms:
 * `expires_at` (RFC 3339), `ttl_seconds`, the seed system's `duration` ("30m", "1h", "7d",
 * "1mo", or seconds) or `valid_until` (epoch seconds). None given: DEFAULT_TTL_SECONDS, capped
 * by the maximum lifetime. Past expiry or beyond the maximum is ADM_INVALID naming the field.
 */

export interface ExpiryInput {
  expires_at?: string;
  ttl_seconds?: number;
  duration?: string | number;
  valid_until?: number | string;
}

export const EXPIRY_FIELDS = ['expires_at', 'ttl_seconds', 'duration', 'valid_until'] as const;
export type ExpiryField = (typeof EXPIRY_FIELDS)[number];

/** 30 days, capped by TOKEN_MAX_LIFETIME_SECONDS. */
export const DEFAULT_TTL_SECONDS = 30 * 24 * 3600;

const UNIT_SECONDS: Record<string, number> = {
  s: 1,
  sec: 1,
  m: 60,
  min: 60,
  h: 3600,
  d: 86_400,
  w: 7 * 86_400,
  mo: 30 * 86_400,
  y: 365 * 86_400,
};

const DURATION_RE = /^(\d{1,12})\s*([a-z]{0,3})$/;
const RFC3339_RE = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:[Zz]|[+-](\d{2}):(\d{2}))$/;
const INTEGER_RE = /^\d{1,15}$/;

function invalid(field: string, message: string): GatewayError {
  return new GatewayError('ADM_INVALID', { details: [{ field, message }] });
}

/** Parses a `duration` value into seconds; throws ADM_INVALID naming `field`. */
export function parseDurationSeconds(value: string | number, field = 'duration'): number {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value <= 0) throw invalid(field, 'must be a positive whole number of seconds');
    return value;
  }
  const match = DURATION_RE.exec(value.trim().toLowerCase());
  const unit = match ? UNIT_SECONDS[match[2] === '' ? 's' : match[2]] : undefined;
  if (!match || unit === undefined) {
    throw invalid(field, 'must be seconds or a number with a unit s, m, h, d, w, mo or y (e.g. "30m", "1h", "7d", "1mo")');
  }
  const seconds = Number(match[1]) * unit;
  if (seconds <= 0) throw invalid(field, 'must be positive');
  return seconds;
}

function parseEpochSeconds(value: number | string, field: string): number {
  const n = typeof value === 'number' ? value : INTEGER_RE.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n <= 0) throw invalid(field, 'must be epoch seconds (a positive whole number)');
  return n;
}

function parseRfc3339(value: string, field: string): number {
  const m = RFC3339_RE.exec(value);
  let ms = NaN;
  if (m) {
    const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
    const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
    const offsetOk = m[7] === undefined || (Number(m[7]) <= 23 && Number(m[8]) <= 59);
    // Date.parse rolls 2030-02-30 over to March; a date that does not exist is refused instead.
    if (month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth && hour <= 23 && minute <= 59 && second <= 60 && offsetOk) {
      ms = Date.parse(value.replace(' ', 'T'));
    }
  }
  if (!Number.isFinite(ms)) throw invalid(field, 'must be an RFC 3339 date-time, e.g. 2030-01-31T12:00:00Z');
  return Math.floor(ms / 1000);
}

export interface ExpiryOptions {
  /** Epoch milliseconds. */
  nowMs: number;
  maxLifetimeSeconds: number;
  defaultTtlSeconds?: number;
}

/** Returns `exp` (epoch seconds) for a token issued now; throws ADM_INVALID naming the field. */
export function resolveExpiry(input: ExpiryInput, opts: ExpiryOptions): number {
  const given = EXPIRY_FIELDS.filter((f) => input[f] !== undefined);
  if (given.length > 1) {
    const details: FieldError[] = given.map((field) => ({
      field,
      message: `give only one of ${EXPIRY_FIELDS.join(', ')} (got ${given.join(', ')})`,
    }));
    throw new GatewayError('ADM_INVALID', { details });
  }
  const nowSec = Math.floor(opts.nowMs / 1000);
  if (given.length === 0) {
    return nowSec + Math.min(opts.defaultTtlSeconds ?? DEFAULT_TTL_SECONDS, opts.maxLifetimeSeconds);
  }
  const field = given[0];
  let exp: number;
  switch (field) {
    case 'expires_at':
      exp = parseRfc3339(input.expires_at as string, field);
      break;
    case 'ttl_seconds':
      exp = nowSec + parseDurationSeconds(input.ttl_seconds as number, field);
      break;
    case 'duration':
      exp = nowSec + parseDurationSeconds(input.duration as string | number, field);
      break;
    case 'valid_until':
      exp = parseEpochSeconds(input.valid_until as number | string, field);
      break;
  }
  if (exp <= nowSec) throw invalid(field, 'is in the past');
  if (exp - nowSec > opts.maxLifetimeSeconds) {
    throw invalid(field, `is beyond the maximum token lifetime of ${opts.maxLifetimeSeconds} seconds (TOKEN_MAX_LIFETIME_SECONDS)`);
  }
  return exp;
}
