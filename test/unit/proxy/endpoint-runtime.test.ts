import { describe, expect, it } from 'vitest';
import { Metrics, EndpointLabeler } from '../../../src/obs/metrics.js';
import { EndpointRuntimeCompiler } from '../../../src/proxy/endpoint-runtime.js';
import type { RouteTable } from '../../../src/schema/route-table.js';
import { PoolRegistry } from '../../../src/upstream/pool-registry.js';
import { RouteState } from '../../../src/upstream/route-state.js';

const DEFAULTS = { connectTimeoutMs: 5_000, headersTimeoutMs: 60_000, bodyTimeoutMs: 60_000, maxConcurrentPerEndpoint: 100, holdQueueMax: 10 };

function compiler(): EndpointRuntimeCompiler {
  const pools = new PoolRegistry({ connections: 8, connectTimeoutMs: 5_000, headersTimeoutMs: 60_000, bodyTimeoutMs: 60_000 });
  return new EndpointRuntimeCompiler(pools, DEFAULTS, new Metrics({ defaultMetrics: false }), new EndpointLabeler(10));
}

function table(version: number, routes: RouteTable['routes'], extra: Partial<RouteTable> = {}): RouteTable {
  return { id: 'id-1', name: 'chat', public: true, version, routes, created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-02T00:00:00Z', ...extra };
}

const healthy = (id: string, url = `http://127.0.0.1:1/${id}`) => ({ id, url, weight: 1, status: 'healthy' as const });

describe('EndpointRuntimeCompiler (what a cached endpoint keeps)', () => {
  it('keeps the table without its route list and creation time', () => {
    const rt = compiler().compile(table(3, [healthy('a')], { timeouts: { first_byte_ms: 1234 }, allowed_cidrs: ['10.0.0.0/8'] }), undefined);
    expect(rt.table.routes).toEqual([]);
    expect('created_at' in rt.table).toBe(false);
    expect(rt.table).toMatchObject({ id: 'id-1', name: 'chat', public: true, version: 3, updated_at: '2026-01-02T00:00:00Z', allowed_cidrs: ['10.0.0.0/8'] });
    expect(rt.headersTimeoutMs).toBe(1234);
    expect(rt.routes.map((r) => r.id)).toEqual(['a']);
  });

  it('shares the route array with the candidates when every route takes traffic, and filters otherwise', () => {
    const c = compiler();
    const all = c.compile(table(1, [healthy('a'), healthy('b')]), undefined);
    expect(all.candidates.routes).toBe(all.routes);
    const some = c.compile(table(2, [healthy('a'), { ...healthy('b'), status: 'unhealthy' }, { ...healthy('c'), weight: 0 }]), all);
    expect(some.routes.map((r) => r.id)).toEqual(['a', 'b', 'c']);
    expect(some.candidates.routes.map((r) => r.id)).toEqual(['a']);
    // A health check taking a route out rebuilds the candidates without touching the routes.
    some.routes[0].probeHealthy = false;
    some.refreshCandidates();
    expect(some.candidates.size).toBe(0);
    expect(some.routes).toHaveLength(3);
  });

  it('carries a route over a new version only when id, URL, protocol and connect timeout are the same', () => {
    const c = compiler();
    const v1 = c.compile(table(1, [healthy('a'), healthy('b')]), undefined);
    v1.routes[0].outstanding = 2;
    const v2 = c.compile(table(2, [healthy('a'), healthy('b', 'http://127.0.0.1:2/b')]), v1);
    expect(v2.routes[0]).toBe(v1.routes[0]);
    expect(v2.routes[0].outstanding).toBe(2);
    expect(v2.routes[1]).not.toBe(v1.routes[1]);
    const v3 = c.compile(table(3, [healthy('a')], { timeouts: { connect_ms: 50 } }), v2);
    expect(v3.routes[0]).not.toBe(v2.routes[0]);
    expect(v3.routes[0].key).toBe(RouteState.key(healthy('a'), 50));
    expect(v3.routes[0].key).toBe('a\u0000http://127.0.0.1:1/a\u0000http1\u000050');
  });
});
