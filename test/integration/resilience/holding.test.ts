import { Agent } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { startUpstream, type TestUpstream } from '../../support/upstream.js';
import { call, errorCode, metric } from './support.js';
import { eventually } from '../../support/eventually.js';

const HOLD_TIMEOUT_MS = 1500;

/**
 * No usable route: requests wait in a bounded per-endpoint queue and go out as soon as a
 * route-table event brings a route. The periodic resync is set far beyond the test, so only
 * the event can wake them.
 */
describe('holding while no route is usable', () => {
  let gw: TestGateway;
  let up: TestUpstream;

  beforeAll(async () => {
    gw = await startTestGateway({ HOLD_TIMEOUT_MS: String(HOLD_TIMEOUT_MS), HOLD_QUEUE_MAX: '3', RESYNC_INTERVAL_MS: '600000' });
    up = await startUpstream((req, res, body) => res.end(`up:${req.method}:${body.toString()}`));
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });

  const held = () => metric(gw.adminUrl, 'modelgate_held_requests');

  it('held requests go out as soon as a route appears (event, not polling), bodies intact', async () => {
    await gw.admin('PUT', '/v1/endpoints/h1', { public: true, routes: [] });
    const pending = [
      call(gw.port, { host: 'h1.localhost' }),
      call(gw.port, { host: 'h1.localhost', method: 'POST', body: 'held body' }),
    ];
    await eventually(async () => (await held()) === 2);
    const t0 = Date.now();
    await gw.admin('PUT', '/v1/endpoints/h1/routes', { routes: [{ id: 'a', url: up.url }] });
    const [r1, r2] = await Promise.all(pending);
    expect(Date.now() - t0).toBeLessThan(1000); // resync is 10 min away: only the event can have woken them
    expect(r1.status).toBe(200);
    expect(r2.status).toBe(200);
    expect(r2.body).toBe('up:POST:held body');
    expect(await held()).toBe(0);
  });

  it('an unhealthy-only endpoint holds until a route is marked healthy', async () => {
    await gw.admin('PUT', '/v1/endpoints/h2', { public: true, routes: [{ id: 'a', url: up.url, status: 'provisioning' }] });
    const pending = call(gw.port, { host: 'h2.localhost' });
    await eventually(async () => (await held()) === 1);
    const patched = await gw.admin('PATCH', '/v1/endpoints/h2/routes/a', { status: 'unhealthy' });
    // Once this instance serves the new version, the request has seen it and still waits.
    const served = () => metric(gw.adminUrl, 'modelgate_route_table_version', { endpoint: 'h2' });
    await eventually(async () => (await served()) === patched.body.version);
    expect(await held()).toBe(1);
    await gw.admin('PATCH', '/v1/endpoints/h2/routes/a', { status: 'healthy' });
    expect((await pending).status).toBe(200);
  });

  it('wait ends → 503 GW_NO_HEALTHY_ROUTE with Retry-After', async () => {
    await gw.admin('PUT', '/v1/endpoints/h3', { public: true, routes: [] });
    const t0 = Date.now();
    const r = await call(gw.port, { host: 'h3.localhost' });
    const took = Date.now() - t0;
    expect(r.status).toBe(503);
    expect(errorCode(r)).toBe('GW_NO_HEALTHY_ROUTE');
    expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(took).toBeGreaterThanOrEqual(HOLD_TIMEOUT_MS - 50);
    expect(took).toBeLessThan(HOLD_TIMEOUT_MS + 1000);
    expect(await held()).toBe(0);
  });

  it('queue full (HOLD_QUEUE_MAX per endpoint) → immediate 503 GW_OVERLOADED with Retry-After', async () => {
    await gw.admin('PUT', '/v1/endpoints/h4', { public: true, routes: [] });
    await gw.admin('PUT', '/v1/endpoints/h5', { public: true, routes: [] });
    const waiting = [0, 1, 2].map(() => call(gw.port, { host: 'h4.localhost' }));
    await eventually(async () => (await held()) === 3);
    const t0 = Date.now();
    const over = await call(gw.port, { host: 'h4.localhost' });
    expect(Date.now() - t0).toBeLessThan(500);
    expect(over.status).toBe(503);
    expect(errorCode(over)).toBe('GW_OVERLOADED');
    expect(Number(over.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    // The bound is per endpoint: another endpoint can still hold.
    const other = call(gw.port, { host: 'h5.localhost' });
    await eventually(async () => (await held()) === 4);
    await gw.admin('PUT', '/v1/endpoints/h4/routes', { routes: [{ id: 'a', url: up.url }] });
    await gw.admin('PUT', '/v1/endpoints/h5/routes', { routes: [{ id: 'a', url: up.url }] });
    for (const r of await Promise.all([...waiting, other])) expect(r.status).toBe(200);
  });

  it("the table's limits.max_held overrides HOLD_QUEUE_MAX; deleting the endpoint answers the held ones with 404", async () => {
    await gw.admin('PUT', '/v1/endpoints/h7', { public: true, routes: [], limits: { max_held: 1 } });
    const first = call(gw.port, { host: 'h7.localhost' });
    await eventually(async () => (await held()) === 1);
    const second = await call(gw.port, { host: 'h7.localhost' });
    expect(second.status).toBe(503);
    expect(errorCode(second)).toBe('GW_OVERLOADED');
    expect((await gw.admin('DELETE', '/v1/endpoints/h7')).status).toBe(204);
    const r = await first;
    expect(r.status).toBe(404);
    expect(errorCode(r)).toBe('GW_ENDPOINT_NOT_FOUND');
    expect(await held()).toBe(0);
  });

  it('a client that leaves while held is removed from the queue', async () => {
    await gw.admin('PUT', '/v1/endpoints/h6', { public: true, routes: [] });
    const agents = [0, 1, 2].map(() => new Agent({ keepAlive: false }));
    const leaving = agents.map((agent) => call(gw.port, { host: 'h6.localhost', agent }));
    await eventually(async () => (await held()) === 3);
    for (const a of agents) a.destroy();
    await Promise.all(leaving);
    await eventually(async () => (await held()) === 0);
    // The freed places are usable again: three more are held, not refused.
    const again = [0, 1, 2].map(() => call(gw.port, { host: 'h6.localhost' }));
    await eventually(async () => (await held()) === 3);
    const before = up.received.length;
    await gw.admin('PUT', '/v1/endpoints/h6/routes', { routes: [{ id: 'a', url: up.url }] });
    for (const r of await Promise.all(again)) expect(r.status).toBe(200);
    // The clients that left were never sent upstream.
    expect(up.received.length - before).toBe(3);
  });
});
