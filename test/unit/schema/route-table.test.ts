import { describe, expect, it } from 'vitest';
import { parseStoredRouteTable } from '../../../src/schema/route-table.js';

const base = { id: '0ef86133-b564-4cc3-9c89-393914fd939e', name: 'chat', public: false, version: 3, routes: [{ id: 'r1', url: 'http://10.0.0.1:8000' }] };

describe('parseStoredRouteTable', () => {
  it('accepts a table as JSON text and fills route defaults', () => {
    const r = parseStoredRouteTable(JSON.stringify(base));
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.table.routes[0]).toEqual({ id: 'r1', url: 'http://10.0.0.1:8000', weight: 1, status: 'healthy' });
  });

  it('drops unknown keys so a newer control plane does not break an older gateway', () => {
    const r = parseStoredRouteTable({ ...base, future_field: 1 });
    expect(r.ok && !('future_field' in r.table)).toBe(true);
  });

  it('reads retry and health_check written by another control plane, filling defaults', () => {
    const r = parseStoredRouteTable({ ...base, retry: { on_reset: 'idempotent' }, health_check: { interval_s: 0.5 } });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.table.retry).toEqual({ on_reset: 'idempotent', replay_body_max_bytes: 1048576 });
    expect(r.table.health_check).toEqual({ path: '/health', interval_s: 0.5, timeout_s: 2, unhealthy_after: 3, healthy_after: 2 });
    const plain = parseStoredRouteTable(base);
    expect(plain.ok && plain.table.retry === undefined && plain.table.health_check === undefined).toBe(true);
  });

  it.each([
    ['not JSON', '{nope', 'not JSON'],
    ['an unknown retry.on_reset', { ...base, retry: { on_reset: 'yes' } }, 'retry.on_reset'],
    ['a health_check path without a leading slash', { ...base, health_check: { path: 'health' } }, 'health_check.path'],
    ['a bad name', { ...base, name: 'Bad_Name' }, 'name'],
    ['a non-http route URL', { ...base, routes: [{ id: 'r', url: 'ftp://x' }] }, 'routes.0.url'],
    ['a relative route URL', { ...base, routes: [{ id: 'r', url: '/x' }] }, 'routes.0.url'],
    ['credentials in a route URL', { ...base, routes: [{ id: 'r', url: 'http://u:p@x' }] }, 'routes.0.url'],
    ['a negative weight', { ...base, routes: [{ id: 'r', url: 'http://x', weight: -1 }] }, 'routes.0.weight'],
    ['an unknown status', { ...base, routes: [{ id: 'r', url: 'http://x', status: 'up' }] }, 'routes.0.status'],
    ['a missing version', { ...base, version: undefined }, 'version'],
    ['an empty id', { ...base, id: '' }, 'id'],
    ['duplicate route ids', { ...base, routes: [{ id: 'r', url: 'http://a' }, { id: 'r', url: 'http://b' }] }, 'duplicate'],
  ])('rejects %s, naming the problem', (_what, input, needle) => {
    const r = parseStoredRouteTable(input);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain(needle);
  });
});
