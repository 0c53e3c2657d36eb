import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnGateway, startTestGateway, type SpawnedGateway, type TestGateway } from '../../support/gateway.js';
import { startUpstream, type TestUpstream } from '../../support/upstream.js';
import { eventually, sleep } from '../../support/eventually.js';

function metricLines(text: string, name: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

describe('access log (spawned gateway, stdout)', () => {
  let gw: SpawnedGateway;
  let up: TestUpstream;
  let token: string;

  beforeAll(async () => {
    up = await startUpstream();
    gw = await spawnGateway({ ACCESS_LOG: 'true', LOG_LEVEL: 'info' });
    const put = await gw.admin('PUT', '/v1/endpoints/logged', { routes: [{ id: 'r1', url: up.url }] });
    expect(put.status).toBe(201);
    const issued = await gw.admin('POST', '/v1/endpoints/logged/tokens', { ttl_seconds: 600, sub: 'log-test' });
    expect(issued.status).toBe(201);
    token = issued.body.token;
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });

  it('writes one JSON line per request with the documented fields, and never a token', async () => {
    const ok = await fetch(`${gw.url}/e/logged/v1/models?api_key=hidden`, { headers: { authorization: `BackendAI ${token}`, 'x-request-id': 'req-ok-1' } });
    expect(ok.status).toBe(200);
    await ok.text();
    const denied = await fetch(`${gw.url}/e/logged/v1/models`, { headers: { authorization: 'Bearer not.a.jwt', 'x-request-id': 'req-bad-1' } });
    expect(denied.status).toBe(401);
    await denied.text();

    const access = (await eventually(() => {
      const lines = gw.lines.filter((l) => l.includes('"msg":"request"')).map((l) => JSON.parse(l));
      return lines.length >= 2 ? lines : null;
    }))!;
    const okLine = access.find((l) => l.request_id === 'req-ok-1');
    expect(okLine).toMatchObject({ level: 'info', method: 'GET', path: '/v1/models', endpoint: 'logged', route: 'r1', status: 200 });
    expect(typeof okLine.bytes).toBe('number');
    expect(okLine.duration_ms).toBeGreaterThan(0);
    expect(okLine.ttfb_ms).toBeGreaterThan(0);
    expect(okLine.err_code).toBeUndefined();
    const badLine = access.find((l) => l.request_id === 'req-bad-1');
    expect(badLine).toMatchObject({ status: 401, err_code: 'GW_AUTH_INVALID', endpoint: 'logged' });

    const all = gw.lines.join('\n');
    expect(all).not.toContain(token);
    expect(all).not.toContain(token.split('.')[2]);
    expect(all).not.toContain('not.a.jwt');
    expect(all).not.toContain('api_key=hidden');
    expect(all).not.toContain('test-token-secret');
  });
});

describe('LOG_LEVEL is honoured', () => {
  it('warn drops info lines, including access lines; info keeps them', async () => {
    const up = await startUpstream();
    for (const level of ['warn', 'info']) {
      const lines: string[] = [];
      const destination = new Writable({
        write(chunk: Buffer, _enc, done) {
          lines.push(...chunk.toString().split('\n').filter(Boolean));
          done();
        },
      });
      const gw = await startTestGateway({ ACCESS_LOG: 'true', LOG_LEVEL: level }, { logDestination: destination });
      await gw.admin('PUT', '/v1/endpoints/lv', { public: true, routes: [{ id: 'r', url: up.url }] });
      await (await fetch(`${gw.url}/e/lv/`)).text();
      await gw.stop();
      await sleep(50);
      const access = lines.filter((l) => l.includes('"msg":"request"'));
      if (level === 'warn') {
        expect(access).toEqual([]);
        expect(lines.some((l) => l.includes('"level":"info"'))).toBe(false);
      } else {
        expect(access.length).toBe(1);
      }
    }
    await up.close();
  });
});

describe('/metrics on the admin port', () => {
  let gw: TestGateway;
  let up: TestUpstream;

  beforeAll(async () => {
    gw = await startTestGateway({ METRICS_ENDPOINT_LABEL_CAP: '2' });
    up = await startUpstream();
    for (const name of ['m1', 'm2', 'm3', 'm4']) {
      expect((await gw.admin('PUT', `/v1/endpoints/${name}`, { public: name !== 'm4', routes: [{ id: 'r', url: up.url }] })).status).toBe(201);
    }
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });

  it('exposes the operational metrics with the endpoint label cap respected', async () => {
    for (const name of ['m1', 'm2', 'm3', 'm4', 'm1']) await (await fetch(`${gw.url}/e/${name}/`)).text();
    const issued = await gw.admin('POST', '/v1/endpoints/m4/tokens', { ttl_seconds: 600 });
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${gw.url}/e/m4/`, { headers: { authorization: `Bearer ${issued.body.token}` } });
      expect(res.status).toBe(200);
      await res.text();
    }
    // A route-table change for a cached endpoint feeds the store-events lag histogram.
    expect((await gw.admin('PUT', '/v1/endpoints/m1/routes', { routes: [{ id: 'r2', url: up.url }] })).status).toBe(200);
    const text = (await eventually(async () => {
      const t = await (await fetch(`${gw.adminUrl}/metrics`)).text();
      return /modelgate_store_event_lag_seconds_count [1-9]/.test(t) ? t : null;
    }))!;

    const endpoints = new Set(
      metricLines(text, 'modelgate_requests_total').map((l) => /endpoint="([^"]*)"/.exec(l)?.[1]).filter((v): v is string => v !== undefined),
    );
    expect(endpoints.has('m1')).toBe(true);
    expect(endpoints.has('m2')).toBe(true);
    expect(endpoints.has('other')).toBe(true);
    expect(endpoints.has('m3')).toBe(false);
    expect(endpoints.has('m4')).toBe(false);
    expect([...endpoints].filter((e) => e !== 'other' && e !== 'none').length).toBeLessThanOrEqual(2);

    for (const name of [
      'modelgate_request_duration_seconds',
      'modelgate_in_flight_requests',
      'modelgate_held_requests',
      'modelgate_retries_total',
      'modelgate_route_ejections_total',
      'modelgate_token_cache_total',
      'modelgate_store_event_lag_seconds',
      'modelgate_store_resync_age_seconds',
      'modelgate_websockets_open',
    ]) {
      expect(text, name).toContain(`# TYPE ${name} `);
    }
    const hits = metricLines(text, 'modelgate_token_cache_total').find((l) => l.includes('result="hit"'));
    expect(Number(hits?.split(' ').pop())).toBeGreaterThanOrEqual(2);
    expect(text).toMatch(/modelgate_in_flight_requests 0/);

    // Every metric the Grafana dashboard queries exists.
    const dashboard = JSON.parse(readFileSync(new URL('../../../docs/grafana-dashboard.json', import.meta.url), 'utf8'));
    const used = new Set<string>(JSON.stringify(dashboard).match(/modelgate_[a-z_]+/g) ?? []);
    expect(used.size).toBeGreaterThan(10);
    for (const name of used) expect(text, name).toContain(`# TYPE ${name.replace(/_bucket$/, '')} `);
  });
});
