import { describe, expect, it } from 'vitest';
import { gcraLocal, gcraSettleLocal, type LimiterSpec } from '../../../src/traffic/gcra.js';
import { rateLimitPolicy, rateLimitState } from '../../../src/traffic/traffic-control.js';

const spec = (limit: number, cost = 1): LimiterSpec => ({ key: 'k', name: 'token-requests', limit, windowMs: 60_000, cost });

describe('GCRA', () => {
  it('allows a burst of the limit, then one more per interval', () => {
    const tats = new Map<string, number>();
    const now = 1_000_000;
    const results = Array.from({ length: 5 }, () => gcraLocal(tats, [spec(3)], now).allowed);
    expect(results).toEqual([true, true, true, false, false]);
    const refused = gcraLocal(tats, [spec(3)], now);
    expect(refused.states[0].waitMs).toBeCloseTo(20_000, 3);
    expect(gcraLocal(tats, [spec(3)], now + 20_000).allowed).toBe(true);
  });

  it('charges nothing when one of several limiters refuses', () => {
    const tats = new Map<string, number>();
    const a = { ...spec(10), key: 'a' };
    const b = { ...spec(1), key: 'b' };
    expect(gcraLocal(tats, [a, b], 0).allowed).toBe(true);
    expect(gcraLocal(tats, [a, b], 0).allowed).toBe(false);
    expect(tats.get('a')).toBe(6000);
  });

  it('settles a reservation both ways', () => {
    const tats = new Map<string, number>();
    const tpm = { ...spec(600, 100), key: 't' };
    gcraLocal(tats, [tpm], 0);
    gcraSettleLocal(tats, 't', tpm, -100, 0);
    expect(tats.has('t')).toBe(false);
    gcraSettleLocal(tats, 't', tpm, 700, 0);
    expect(gcraLocal(tats, [{ ...tpm, cost: 0 }], 0).allowed).toBe(false);
  });

  it('writes the IETF fields with exact remaining counts, even for huge limits', () => {
    const tats = new Map<string, number>();
    const big = spec(100_000_000);
    const d = gcraLocal(tats, [big], 5);
    expect([rateLimitPolicy([big]), rateLimitState([big], d)]).toEqual(['"token-requests";q=100000000;w=60', '"token-requests";r=99999999;t=1']);
  });
});

describe('RecentMap (local limiter states)', () => {
  it('keeps what is used, forgets what stayed idle for a generation, and stays bounded', async () => {
    const { RecentMap } = await import('../../../src/traffic/rate-limiter.js');
    const m = new RecentMap(4);
    m.set('a', 1);
    m.set('b', 2);
    m.set('c', 3); // turnover: a, b are the old generation
    expect(m.get('a')).toBe(1); // used: back to the young one
    m.set('d', 4); // turnover: c, a old; b forgotten
    m.set('e', 5);
    expect(m.get('b')).toBeUndefined();
    expect(m.get('c')).toBe(3);
    expect(m.size).toBeLessThanOrEqual(4);
    m.delete('c');
    expect(m.get('c')).toBeUndefined();
    for (let i = 0; i < 100; i++) m.set(`k${i}`, i);
    expect(m.size).toBeLessThanOrEqual(4);
  });
});
