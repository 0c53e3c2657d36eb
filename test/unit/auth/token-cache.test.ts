import { describe, expect, it } from 'vitest';
import { TokenCache } from '../../../src/auth/token-cache.js';

// The LRUs inside are built on first use (they allocate for `max` entries up front); what the
// cache answers must not depend on when that happens.
describe('TokenCache', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  const claims = { aud: 'ep-id', exp: now / 1000 + 3600, sub: 'alice', jti: 'j1' };

  it('answers misses before anything was stored, then remembers verified tokens and failures', () => {
    const cache = new TokenCache({ max: 10, leewaySeconds: 30 });
    expect(cache.get('t1')).toBeUndefined();
    expect(cache.getFailure('bad')).toBeUndefined();
    expect(cache.size).toBe(0);
    cache.clear();
    const entry = cache.remember('t1', claims, now);
    expect(cache.get('t1')).toBe(entry);
    expect(entry).toMatchObject({ aud: 'ep-id', sub: 'alice', jti: 'j1', expiredAfterMs: claims.exp * 1000 + 30_000 });
    expect(cache.size).toBe(1);
    cache.rememberFailure('bad', 'GW_AUTH_INVALID', false);
    expect(cache.getFailure('bad')).toBe('GW_AUTH_INVALID');
    cache.clear();
    expect(cache.get('t1')).toBeUndefined();
    expect(cache.getFailure('bad')).toBeUndefined();
  });

  it('keeps nothing with max 0 (TOKEN_CACHE_MAX=0), but still returns the entry', () => {
    const cache = new TokenCache({ max: 0, leewaySeconds: 30 });
    expect(cache.remember('t1', claims, now).aud).toBe('ep-id');
    cache.rememberFailure('bad', 'GW_AUTH_INVALID', false);
    expect(cache.get('t1')).toBeUndefined();
    expect(cache.getFailure('bad')).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('bounds the verified tokens by max', () => {
    const cache = new TokenCache({ max: 2, leewaySeconds: 30 });
    for (const t of ['a', 'b', 'c']) cache.remember(t, claims, now);
    expect(cache.size).toBe(2);
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('c')).toBeDefined();
  });
});
