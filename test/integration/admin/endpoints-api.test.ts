import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminCall, startTestGateway, type TestGateway } from '../../support/gateway.js';

describe('admin API: endpoints and routes', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway();
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('needs the admin bearer token on /v1, but not on /healthz and /metrics', async () => {
    const none = await fetch(`${gw.adminUrl}/v1/endpoints`);
    expect(none.status).toBe(401);
    expect(((await none.json()) as any).error.code).toBe('ADM_UNAUTHORIZED');
    expect((await adminCall(gw.adminUrl, 'wrong-token-wrong-token', 'GET', '/v1/endpoints')).status).toBe(401);
    expect((await fetch(`${gw.adminUrl}/healthz`)).status).toBe(200);
    const metrics = await fetch(`${gw.adminUrl}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('modelgate_requests_total');
  });

  it('creates (201), replaces (200, same id, version bump), gets and lists', async () => {
    const created = await gw.admin('PUT', '/v1/endpoints/llm', { routes: [{ url: 'http://127.0.0.1:9001' }] });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'llm', public: false, version: 1 });
    expect(created.body.routes[0]).toMatchObject({ url: 'http://127.0.0.1:9001', weight: 1, status: 'healthy' });
    const replaced = await gw.admin('PUT', '/v1/endpoints/llm', { public: true, routes: [] });
    expect(replaced.status).toBe(200);
    expect(replaced.body.id).toBe(created.body.id);
    expect(replaced.body.version).toBe(2);
    expect((await gw.admin('GET', '/v1/endpoints/llm')).body.public).toBe(true);
    const list = await gw.admin('GET', '/v1/endpoints');
    expect(list.body.endpoints.map((e: any) => e.name)).toContain('llm');
  });

  it('patches only the fields given', async () => {
    await gw.admin('PUT', '/v1/endpoints/p1', { public: false, routes: [{ id: 'x', url: 'http://127.0.0.1:9002' }], timeouts: { first_byte_ms: 1000 } });
    const patched = await gw.admin('PATCH', '/v1/endpoints/p1', { public: true });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ public: true, timeouts: { first_byte_ms: 1000 } });
    expect(patched.body.routes).toHaveLength(1);
  });

  it('replaces routes with compare-and-set on expected_version (409 on mismatch)', async () => {
    const t = (await gw.admin('PUT', '/v1/endpoints/cas', { routes: [] })).body;
    const ok = await gw.admin('PUT', '/v1/endpoints/cas/routes', { routes: [{ id: 'a', url: 'http://127.0.0.1:9003' }], expected_version: t.version });
    expect(ok.status).toBe(200);
    expect(ok.body.version).toBe(t.version + 1);
    const stale = await gw.admin('PUT', '/v1/endpoints/cas/routes', { routes: [], expected_version: t.version });
    expect(stale.status).toBe(409);
    expect(stale.body.error.code).toBe('ADM_CONFLICT');
  });

  it('patches one route and 404s an unknown route or endpoint', async () => {
    await gw.admin('PUT', '/v1/endpoints/pr', { routes: [{ id: 'a', url: 'http://127.0.0.1:9004' }] });
    const p = await gw.admin('PATCH', '/v1/endpoints/pr/routes/a', { weight: 0, status: 'terminating' });
    expect(p.status).toBe(200);
    expect(p.body.routes[0]).toMatchObject({ id: 'a', weight: 0, status: 'terminating' });
    expect((await gw.admin('PATCH', '/v1/endpoints/pr/routes/zz', { weight: 1 })).status).toBe(404);
    expect((await gw.admin('PATCH', '/v1/endpoints/none/routes/a', { weight: 1 })).body.error.code).toBe('ADM_NOT_FOUND');
    expect((await gw.admin('GET', '/v1/endpoints/none')).status).toBe(404);
  });

  it('reads other spellings of the timeouts and fractional weights', async () => {
    const res = await gw.admin('PUT', '/v1/endpoints/spell', {
      routes: [{ id: 'a', url: 'http://127.0.0.1:9005', weight: 0.25 }],
      timeouts: { connect_timeout_ms: 1000, first_byte_timeout_ms: 2000, idle_timeout_ms: 3000 },
    });
    expect(res.status).toBe(201);
    expect(res.body.timeouts).toEqual({ connect_ms: 1000, first_byte_ms: 2000, idle_ms: 3000 });
    expect(res.body.routes[0].weight).toBe(0.25);
  });

  it('deletes with 204, then 404', async () => {
    await gw.admin('PUT', '/v1/endpoints/gone', {});
    expect((await gw.admin('DELETE', '/v1/endpoints/gone')).status).toBe(204);
    expect((await gw.admin('DELETE', '/v1/endpoints/gone')).status).toBe(404);
  });

  it.each([
    ['invalid JSON', '{"public": tru', 'body'],
    ['a JSON array', '[1]', 'body'],
    ['a non-http route URL', { routes: [{ url: 'ftp://x' }] }, 'routes.0.url'],
    ['a relative route URL', { routes: [{ url: 'localhost:8000' }] }, 'routes.0.url'],
    ['an unknown field', { publik: true }, 'body'],
    ['a wrong type', { public: 'yes' }, 'public'],
    ['a negative weight', { routes: [{ url: 'http://x', weight: -1 }] }, 'routes.0.weight'],
    ['an unknown status', { routes: [{ url: 'http://x', status: 'up' }] }, 'routes.0.status'],
    ['duplicate route ids', { routes: [{ id: 'a', url: 'http://x' }, { id: 'a', url: 'http://y' }] }, 'routes.1.id'],
    ['a bad CIDR', { allowed_cidrs: ['10.0.0.0/99'] }, 'allowed_cidrs.0'],
    ['an unknown retry.on_reset', { retry: { on_reset: 'always' } }, 'retry.on_reset'],
    ['a negative retry.replay_body_max_bytes', { retry: { replay_body_max_bytes: -1 } }, 'retry.replay_body_max_bytes'],
    ['an unknown retry field', { retry: { on_reset: 'all', tries: 3 } }, 'retry'],
    ['a relative health_check.path', { health_check: { path: 'health' } }, 'health_check.path'],
    ['a zero health_check.interval_s', { health_check: { interval_s: 0 } }, 'health_check.interval_s'],
    ['a fractional health_check.unhealthy_after', { health_check: { unhealthy_after: 1.5 } }, 'health_check.unhealthy_after'],
    ['a zero health_check.healthy_after', { health_check: { healthy_after: 0 } }, 'health_check.healthy_after'],
  ])('refuses %s with ADM_INVALID naming the field', async (_what, body, field) => {
    const res = await gw.admin('PUT', '/v1/endpoints/bad', body);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('ADM_INVALID');
    expect(res.body.error.details.map((d: any) => d.field)).toContain(field);
  });

  it('keeps retry and health_check with their defaults filled in; PATCH changes or removes them (null)', async () => {
    const put = await gw.admin('PUT', '/v1/endpoints/resilient', { retry: { on_reset: 'all' }, health_check: { path: '/ready' } });
    expect(put.status).toBe(201);
    expect(put.body.retry).toEqual({ on_reset: 'all', replay_body_max_bytes: 1048576 });
    expect(put.body.health_check).toEqual({ path: '/ready', interval_s: 5, timeout_s: 2, unhealthy_after: 3, healthy_after: 2 });
    const patched = await gw.admin('PATCH', '/v1/endpoints/resilient', { retry: { on_reset: 'idempotent', replay_body_max_bytes: 4096 } });
    expect(patched.body.retry).toEqual({ on_reset: 'idempotent', replay_body_max_bytes: 4096 });
    expect(patched.body.health_check.path).toBe('/ready');
    const removed = await gw.admin('PATCH', '/v1/endpoints/resilient', { health_check: null, retry: null });
    expect(removed.status).toBe(200);
    expect(removed.body.health_check).toBeUndefined();
    expect(removed.body.retry).toBeUndefined();
    // An endpoint without them says nothing about them (on_reset none: today's behaviour).
    expect((await gw.admin('GET', '/v1/endpoints/resilient')).body).not.toHaveProperty('retry');
  });

  it('refuses a name that is not a DNS label', async () => {
    const res = await gw.admin('PUT', '/v1/endpoints/Bad_Name', {});
    expect(res.status).toBe(400);
    expect(res.body.error.details[0].field).toBe('name');
  });

  it('refuses a body over the limit with 413', async () => {
    const res = await gw.admin('PUT', '/v1/endpoints/big', JSON.stringify({ routes: [], pad: 'x'.repeat(2 * 1024 * 1024) }));
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('ADM_BODY_TOO_LARGE');
  });
});
