import { describe, expect, it } from 'vitest';
import { DEFAULT_TTL_SECONDS, parseDurationSeconds, resolveExpiry } from '../../../src/auth/expiry.js';
import { GatewayError } from '../../../src/errors/gateway-error.js';

const NOW_MS = Date.UTC(2030, 0, 1, 0, 0, 0);
const NOW = NOW_MS / 1000;
const MAX = 366 * 86_400;
const opts = { nowMs: NOW_MS, maxLifetimeSeconds: MAX };

function fieldError(fn: () => unknown): { field: string; message: string }[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).code).toBe('ADM_INVALID');
    return (err as GatewayError).details ?? [];
  }
  throw new Error('expected ADM_INVALID');
}

describe('parseDurationSeconds', () => {
  it.each([
    ['30m', 1800],
    ['1h', 3600],
    ['7d', 7 * 86_400],
    ['1mo', 30 * 86_400],
    ['2w', 14 * 86_400],
    ['1y', 365 * 86_400],
    ['90', 90],
    ['45s', 45],
    [' 1H ', 3600],
    [600, 600],
  ])('%s → %i seconds', (input, seconds) => {
    expect(parseDurationSeconds(input)).toBe(seconds);
  });

  it.each(['', 'abc', '1x', '-5', '1.5h', '0', 'h', '1 hour', '10000000000000'])('rejects %j', (input) => {
    expect(fieldError(() => parseDurationSeconds(input))[0].field).toBe('duration');
  });

  it.each([0, -1, 1.5, Number.NaN])('rejects number %d', (input) => {
    expect(fieldError(() => parseDurationSeconds(input))[0].field).toBe('duration');
  });
});

describe('resolveExpiry', () => {
  it('defaults to 30 days, capped by the maximum lifetime', () => {
    expect(resolveExpiry({}, opts)).toBe(NOW + DEFAULT_TTL_SECONDS);
    expect(resolveExpiry({}, { nowMs: NOW_MS, maxLifetimeSeconds: 3600 })).toBe(NOW + 3600);
  });

  it('accepts each of the four forms', () => {
    expect(resolveExpiry({ expires_at: '2030-01-02T00:00:00Z' }, opts)).toBe(NOW + 86_400);
    expect(resolveExpiry({ expires_at: '2030-01-01T10:00:00.500+09:00' }, opts)).toBe(NOW + 3600);
    expect(resolveExpiry({ ttl_seconds: 60 }, opts)).toBe(NOW + 60);
    expect(resolveExpiry({ duration: '1h' }, opts)).toBe(NOW + 3600);
    expect(resolveExpiry({ duration: 120 }, opts)).toBe(NOW + 120);
    expect(resolveExpiry({ duration: '1mo' }, opts)).toBe(NOW + 30 * 86_400);
    expect(resolveExpiry({ valid_until: NOW + 500 }, opts)).toBe(NOW + 500);
    expect(resolveExpiry({ valid_until: String(NOW + 500) }, opts)).toBe(NOW + 500);
  });

  it('refuses more than one form, naming each', () => {
    const details = fieldError(() => resolveExpiry({ ttl_seconds: 60, duration: '1h' }, opts));
    expect(details.map((d) => d.field)).toEqual(['ttl_seconds', 'duration']);
  });

  it.each([
    [{ expires_at: '2029-12-31T23:59:59Z' }, 'expires_at'],
    [{ expires_at: '2030-01-01T00:00:00Z' }, 'expires_at'],
    [{ valid_until: NOW - 1 }, 'valid_until'],
  ])('refuses a past expiry %j', (input, field) => {
    const [detail] = fieldError(() => resolveExpiry(input, opts));
    expect(detail).toEqual({ field, message: 'is in the past' });
  });

  it.each([
    [{ expires_at: '2031-06-01T00:00:00Z' }, 'expires_at'],
    [{ ttl_seconds: MAX + 1 }, 'ttl_seconds'],
    [{ duration: '2y' }, 'duration'],
    [{ valid_until: NOW + MAX + 1 }, 'valid_until'],
  ])('refuses an expiry beyond the maximum %j', (input, field) => {
    const [detail] = fieldError(() => resolveExpiry(input, opts));
    expect(detail.field).toBe(field);
    expect(detail.message).toContain('TOKEN_MAX_LIFETIME_SECONDS');
  });

  it('accepts exactly the maximum', () => {
    expect(resolveExpiry({ ttl_seconds: MAX }, opts)).toBe(NOW + MAX);
  });

  it.each([
    [{ expires_at: 'tomorrow' }, 'expires_at'],
    [{ expires_at: '2030-02-30T00:00:00Z' }, 'expires_at'],
    [{ expires_at: '2030-01-02' }, 'expires_at'],
    [{ valid_until: 'soon' }, 'valid_until'],
    [{ valid_until: 1.5 }, 'valid_until'],
    [{ ttl_seconds: 0 }, 'ttl_seconds'],
  ])('refuses a malformed value %j', (input, field) => {
    expect(fieldError(() => resolveExpiry(input as never, opts))[0].field).toBe(field);
  });
});
