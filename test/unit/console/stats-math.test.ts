import { describe, expect, it } from 'vitest';
import { derive, quantile } from '../../../console/src/stats-math.js';
import type { EndpointStats } from '../../../src/obs/endpoint-stats.js';

const LE = [0.01, 0.1, 1];

function sample(at: number, ok: number, counts: number[], extra: Partial<EndpointStats> = {}): EndpointStats {
  return { endpoint: 'e', at, requests: { '2xx': ok }, latency: { le: LE, counts, sum: 0, count: ok }, errors: {}, in_flight: 0, routes: [], ...extra };
}

describe('console chart math', () => {
  it('interpolates a quantile inside its bucket, like histogram_quantile', () => {
    // 10 requests ≤ 10 ms, 10 more ≤ 100 ms.
    expect(quantile(0.5, LE, [10, 20, 20], 20)).toBeCloseTo(0.01);
    expect(quantile(0.75, LE, [10, 20, 20], 20)).toBeCloseTo(0.055);
    expect(quantile(0.99, LE, [0, 0, 5], 5)).toBeCloseTo(0.1 + 0.9 * 0.99);
    expect(quantile(0.5, LE, [0, 0, 0], 0)).toBeNaN();
  });

  it('derives rates and the latency of the requests between two samples only', () => {
    const a = sample(1_000, 100, [100, 100, 100]); // 100 fast requests before
    const b = sample(3_000, 120, [100, 100, 120], { errors: { GW_UPSTREAM_TIMEOUT: 4 }, routes: [{ id: 'r1', in_flight: 3 }] });
    const p = derive(a, b);
    expect(p.rps).toBeCloseTo(10); // 20 requests in 2 s
    expect(p.p50).toBeGreaterThan(0.1); // the 20 new ones were all slow
    expect(p.errors.GW_UPSTREAM_TIMEOUT).toBeCloseTo(2);
    expect(p.inFlight).toEqual({ r1: 3 });
  });

  it('reads a counter reset (gateway restart) as no traffic, not a negative rate', () => {
    const p = derive(sample(1_000, 500, [500, 500, 500]), sample(2_000, 3, [3, 3, 3]));
    expect(p.rps).toBe(0);
  });
});
