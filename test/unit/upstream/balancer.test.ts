import type { LazyPool } from '../../../src/upstream/pool-registry.js';
import { describe, expect, it } from 'vitest';
import { Candidates, P2C_BALANCER, ROUND_ROBIN_BALANCER } from '../../../src/upstream/balancer.js';
import { RouteState } from '../../../src/upstream/route-state.js';

const NO_POOL = null as unknown as LazyPool; // the balancer never touches the pool

function route(id: string, weight = 1): RouteState {
  return new RouteState({ id, url: `http://127.0.0.1:1/${id}`, weight, status: 'healthy' }, NO_POOL);
}

function tally(pick: () => RouteState | null, n: number): Record<string, number> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const r = pick();
    const key = r === null ? 'null' : r.id;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

describe('weighted round-robin', () => {
  it('follows the weights exactly and interleaves smoothly', () => {
    const c = new Candidates([route('a', 3), route('b', 1), route('c', 2)]);
    const seq = Array.from({ length: 60 }, () => ROUND_ROBIN_BALANCER.pick(c, 0, null, null)!.id);
    expect(tally(() => ROUND_ROBIN_BALANCER.pick(c, 0, null, null), 60)).toEqual({ a: 30, b: 10, c: 20 });
    // Smooth: the heaviest route never gets more than 2 in a row with 3:1:2 weights.
    expect(seq.join('')).not.toContain('aaa');
  });

  it('skips routes already tried and ejected routes; panics to ejected ones when nothing else is left', () => {
    const a = route('a');
    const b = route('b');
    const c = new Candidates([a, b]);
    expect(tally(() => ROUND_ROBIN_BALANCER.pick(c, 0, a, null), 10)).toEqual({ b: 10 });
    expect(ROUND_ROBIN_BALANCER.pick(c, 0, a, b)).toBeNull();
    b.ejectedUntil = 1000;
    expect(tally(() => ROUND_ROBIN_BALANCER.pick(c, 500, null, null), 10)).toEqual({ a: 10 });
    a.ejectedUntil = 1000;
    expect(tally(() => ROUND_ROBIN_BALANCER.pick(c, 500, null, null), 10)).toEqual({ a: 5, b: 5 });
    // Ejection is over at 1000.
    a.ejectedUntil = 0;
    expect(tally(() => ROUND_ROBIN_BALANCER.pick(c, 1000, null, null), 10)).toEqual({ a: 5, b: 5 });
  });

  it('returns null for an empty candidate set', () => {
    expect(ROUND_ROBIN_BALANCER.pick(new Candidates([]), 0, null, null)).toBeNull();
  });
});

describe('weighted power of two choices', () => {
  it('with equal load, spreads by weight', () => {
    const c = new Candidates([route('a', 1), route('b', 3)]);
    const counts = tally(() => P2C_BALANCER.pick(c, 0, null, null), 20_000);
    // Both draws are weighted; ties keep the first: P(a) = 1/16 + 2·(1/4·3/4)·½ ... ≈ 0.25 within noise.
    expect(counts.a / 20_000).toBeGreaterThan(0.2);
    expect(counts.a / 20_000).toBeLessThan(0.3);
  });

  it('prefers the route with fewer outstanding requests per unit of weight', () => {
    const a = route('a', 1);
    const b = route('b', 1);
    const c = new Candidates([a, b]);
    a.outstanding = 10;
    b.outstanding = 2;
    const counts = tally(() => P2C_BALANCER.pick(c, 0, null, null), 1000);
    // When both draws differ the lighter always wins; only a double draw of `a` picks it.
    expect(counts.b).toBeGreaterThan(600);
    const heavy = route('h', 10);
    const light = route('l', 1);
    heavy.outstanding = 5; // 0.5 per unit of weight
    light.outstanding = 1; // 1 per unit of weight
    const c2 = new Candidates([heavy, light]);
    expect(tally(() => P2C_BALANCER.pick(c2, 0, null, null), 1000).l ?? 0).toBeLessThan(100);
  });

  it('never returns a skipped route; ejected routes only when every other one is unusable', () => {
    const a = route('a');
    const b = route('b');
    const d = route('d');
    const c = new Candidates([a, b, d]);
    expect(tally(() => P2C_BALANCER.pick(c, 0, a, b), 50)).toEqual({ d: 50 });
    expect(P2C_BALANCER.pick(new Candidates([a]), 0, a, null)).toBeNull();
    expect(P2C_BALANCER.pick(new Candidates([]), 0, null, null)).toBeNull();
    d.ejectedUntil = 100;
    expect(tally(() => P2C_BALANCER.pick(c, 50, null, null), 200).d).toBeUndefined();
    a.ejectedUntil = 100;
    b.ejectedUntil = 100;
    // Everyone ejected: panic mode still sends traffic.
    const panic = tally(() => P2C_BALANCER.pick(c, 50, null, null), 300);
    expect(panic.null).toBeUndefined();
    expect(Object.keys(panic).sort()).toEqual(['a', 'b', 'd']);
    // A single ejected route still gets traffic.
    expect(P2C_BALANCER.pick(new Candidates([a]), 50, null, null)).toBe(a);
  });
});
