import { describe, expect, it } from 'vitest';
import { collectEndpointStats, mergeEndpointStats } from '../../../src/obs/endpoint-stats.js';
import { Metrics } from '../../../src/obs/metrics.js';

describe('endpoint stats (console charts)', () => {
  it('reads one endpoint\'s counters, histogram and errors from the registry, and the live load', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.requests.labels('web', '2xx').inc(3);
    metrics.requests.labels('web', '5xx').inc(1);
    metrics.requests.labels('other-endpoint', '2xx').inc(50);
    metrics.requestDuration.labels('web', '2xx').observe(0.004);
    metrics.requestDuration.labels('web', '2xx').observe(0.2);
    metrics.requestDuration.labels('web', '5xx').observe(2);
    metrics.endpointErrors.labels('web', 'GW_UPSTREAM_UNAVAILABLE').inc();
    const load = { endpointLoad: (name: string) => (name === 'web' ? { inFlight: 2, routes: [{ id: 'r1', in_flight: 2 }] } : null) };

    const stats = await collectEndpointStats('web', metrics, load, 1234);
    expect(stats.at).toBe(1234);
    expect(stats.requests).toEqual({ '2xx': 3, '5xx': 1 });
    expect(stats.latency.count).toBe(3);
    expect(stats.latency.sum).toBeCloseTo(2.204);
    const at = (le: number) => stats.latency.counts[stats.latency.le.indexOf(le)];
    expect(at(0.005)).toBe(1);
    expect(at(0.25)).toBe(2);
    expect(at(2.5)).toBe(3);
    expect(stats.latency.le).not.toContain(Infinity);
    expect(stats.errors).toEqual({ GW_UPSTREAM_UNAVAILABLE: 1 });
    expect(stats.in_flight).toBe(2);
    expect(stats.routes).toEqual([{ id: 'r1', in_flight: 2 }]);

    const idle = await collectEndpointStats('quiet', metrics, load);
    expect(idle).toMatchObject({ requests: {}, errors: {}, in_flight: 0, routes: [], latency: { count: 0 } });
  });

  it('sums the samples of several processes, route by route', () => {
    const base = { endpoint: 'web', at: 0, errors: {}, in_flight: 0 };
    const merged = mergeEndpointStats(
      [
        { ...base, requests: { '2xx': 2 }, latency: { le: [0.1, 1], counts: [1, 2], sum: 0.5, count: 2 }, errors: { GW_X: 1 }, in_flight: 1, routes: [{ id: 'a', in_flight: 1 }] },
        { ...base, requests: { '2xx': 3, '4xx': 1 }, latency: { le: [0.1, 1], counts: [3, 4], sum: 1, count: 4 }, in_flight: 2, routes: [{ id: 'a', in_flight: 2 }, { id: 'b', in_flight: 0 }] },
      ],
      'web',
      99,
    );
    expect(merged).toEqual({
      endpoint: 'web',
      at: 99,
      requests: { '2xx': 5, '4xx': 1 },
      latency: { le: [0.1, 1], counts: [4, 6], sum: 1.5, count: 6 },
      errors: { GW_X: 1 },
      in_flight: 3,
      routes: [
        { id: 'a', in_flight: 3 },
        { id: 'b', in_flight: 0 },
      ],
    });
  });
});
