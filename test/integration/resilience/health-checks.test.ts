import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { startUpstream, type TestUpstream } from '../../support/upstream.js';
import { eventually, sleep } from '../../support/eventually.js';
import { call, errorCode, metric } from './support.js';

/** A replica whose health endpoint the test controls: 'ok', 'fail' (500) or 'stall' (never answers). */
interface Replica {
  up: TestUpstream;
  health: 'ok' | 'fail' | 'stall';
  probes: number;
  served: number;
}

async function replica(name: string, healthPath = '/health'): Promise<Replica> {
  const r: Replica = { up: undefined as unknown as TestUpstream, health: 'ok', probes: 0, served: 0 };
  r.up = await startUpstream((req, res) => {
    if (req.url === healthPath) {
      r.probes++;
      if (req.headers['user-agent'] !== 'modelgate-health-check') res.statusCode = 400;
      else if (r.health === 'stall') return;
      else if (r.health === 'fail') res.statusCode = 503;
      res.end(r.health);
      return;
    }
    r.served++;
    res.end(name);
  });
  return r;
}

const FAST = { interval_s: 0.1, timeout_s: 0.3, unhealthy_after: 2, healthy_after: 2 };

describe('gateway health checks of pushed routes (health_check)', () => {
  let gw: TestGateway;
  const replicas: Replica[] = [];
  const start = async (name: string, healthPath?: string) => {
    const r = await replica(name, healthPath);
    replicas.push(r);
    return r;
  };

  beforeAll(async () => {
    gw = await startTestGateway({ HOLD_TIMEOUT_MS: '5000' });
  });
  afterAll(async () => {
    await gw?.stop();
    for (const r of replicas) await r.up.close();
  });

  const get = (name: string) => call(gw.port, { host: `${name}.localhost`, path: '/v1/models' });
  const state = (endpoint: string, s: string) => metric(gw.adminUrl, 'modelgate_health_check_routes', { endpoint, state: s });

  it('probing starts when the table is written: a failing route never sees a request', async () => {
    const sick = await start('sick');
    sick.health = 'fail';
    const fine = await start('fine');
    await gw.admin('PUT', '/v1/endpoints/hc-early', {
      public: true,
      health_check: FAST,
      routes: [
        { id: 'sick', url: sick.up.url },
        { id: 'fine', url: fine.up.url },
      ],
    });
    await eventually(async () => (await state('hc-early', 'unhealthy')) === 1, 5000);
    for (let i = 0; i < 10; i++) expect((await get('hc-early')).body).toBe('fine');
    expect(sick.served).toBe(0);
  });

  it('every route failing: requests are held, and served as soon as one passes again', async () => {
    const only = await start('only');
    await gw.admin('PUT', '/v1/endpoints/hc-hold', { public: true, health_check: FAST, routes: [{ id: 'only', url: only.up.url }] });
    expect((await get('hc-hold')).body).toBe('only');
    only.health = 'fail';
    await eventually(async () => (await state('hc-hold', 'unhealthy')) === 1, 5000);
    const servedBefore = only.served;
    const pending = get('hc-hold');
    await sleep(300);
    // Held, not sent to the failing route.
    expect(only.served).toBe(servedBefore);
    only.health = 'ok';
    const r = await pending;
    expect(r.status).toBe(200);
    expect(r.body).toBe('only');
  });

  it('a probe that gets no answer within timeout_s counts as a failure', async () => {
    const staller = await start('staller');
    const other = await start('other');
    await gw.admin('PUT', '/v1/endpoints/hc-stall', {
      public: true,
      health_check: FAST,
      routes: [
        { id: 'staller', url: staller.up.url },
        { id: 'other', url: other.up.url },
      ],
    });
    expect((await get('hc-stall')).status).toBe(200);
    staller.health = 'stall';
    await eventually(async () => (await state('hc-stall', 'unhealthy')) === 1, 5000);
    const before = staller.served;
    for (let i = 0; i < 10; i++) expect((await get('hc-stall')).body).toBe('other');
    expect(staller.served).toBe(before);
  });

  it('probes the path under the route URL prefix; removing health_check puts a failing route back at once', async () => {
    const prefixed = await start('prefixed', '/api/ready');
    await gw.admin('PUT', '/v1/endpoints/hc-prefix', {
      public: true,
      health_check: { ...FAST, path: '/ready' },
      routes: [{ id: 'p', url: `${prefixed.up.url}/api` }],
    });
    expect((await get('hc-prefix')).status).toBe(200);
    await eventually(() => prefixed.probes >= 2, 5000);
    prefixed.health = 'fail';
    await eventually(async () => (await state('hc-prefix', 'unhealthy')) === 1, 5000);
    const removed = await gw.admin('PATCH', '/v1/endpoints/hc-prefix', { health_check: null });
    expect(removed.status).toBe(200);
    await eventually(async () => (await get('hc-prefix')).status === 200, 5000);
    expect(await state('hc-prefix', 'unhealthy')).toBe(0);
    const probes = prefixed.probes;
    await sleep(400);
    expect(prefixed.probes).toBe(probes);
  });

  it('a route that never recovers within the hold time → 503 GW_NO_HEALTHY_ROUTE', async () => {
    const gw2 = await startTestGateway({ HOLD_TIMEOUT_MS: '300' });
    try {
      const dead = await start('dead');
      await gw2.admin('PUT', '/v1/endpoints/hc-dead', { public: true, health_check: FAST, routes: [{ id: 'd', url: dead.up.url }] });
      expect((await call(gw2.port, { host: 'hc-dead.localhost' })).status).toBe(200);
      dead.health = 'fail';
      await eventually(async () => (await metric(gw2.adminUrl, 'modelgate_health_check_routes', { endpoint: 'hc-dead', state: 'unhealthy' })) === 1, 5000);
      const r = await call(gw2.port, { host: 'hc-dead.localhost' });
      expect(r.status).toBe(503);
      expect(errorCode(r)).toBe('GW_NO_HEALTHY_ROUTE');
    } finally {
      await gw2.stop();
    }
  });
});
