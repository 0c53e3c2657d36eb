import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { closedPort, startUpstream, type TestUpstream } from '../../support/upstream.js';
import { call, errorCode, metric } from './support.js';

/**
 * Safe retries: only a connection that failed before any request byte was written is retried,
 * on another route, at most RETRY_MAX (2) more times. Anything that reached an upstream is not.
 */
describe('safe retries', () => {
  let gw: TestGateway;
  let good: TestUpstream;
  let resetter: TestUpstream;
  let dead1: string;
  let dead2: string;
  let dead3: string;

  beforeAll(async () => {
    // Ejection off the table for these tests: every request must meet the dead routes again.
    gw = await startTestGateway({ EJECT_AFTER_FAILURES: '1000' });
    good = await startUpstream((_req, res, body) => res.end(`good:${body.length}:${body.toString('latin1').slice(0, 16)}`));
    resetter = await startUpstream((req) => req.socket.destroy());
    dead1 = `http://127.0.0.1:${await closedPort()}`;
    dead2 = `http://127.0.0.1:${await closedPort()}`;
    dead3 = `http://127.0.0.1:${await closedPort()}`;
  });
  afterAll(async () => {
    await gw?.stop();
    await good?.close();
    await resetter?.close();
  });

  it('connection refused → retried on another route; the caller never notices', async () => {
    await gw.admin('PUT', '/v1/endpoints/svc', {
      public: true,
      balancer: 'round_robin',
      routes: [
        { id: 'd1', url: dead1 },
        { id: 'd2', url: dead2 },
        { id: 'g', url: good.url },
      ],
    });
    const before = good.received.length;
    for (let i = 0; i < 30; i++) {
      const r = await call(gw.port, { path: `/n${i}` });
      expect(r.status, r.body).toBe(200);
    }
    expect(good.received.length - before).toBe(30);
    expect(await metric(gw.adminUrl, 'modelgate_retries_total', { endpoint: 'svc' })).toBeGreaterThanOrEqual(20);
  });

  it('at most 2 more tries: three refusing routes before the good one → 502', async () => {
    await gw.admin('PUT', '/v1/endpoints/svc', {
      public: true,
      balancer: 'round_robin',
      routes: [
        { id: 'd1', url: dead1 },
        { id: 'd2', url: dead2 },
        { id: 'd3', url: dead3 },
      ],
    });
    const r = await call(gw.port);
    expect(r.status).toBe(502);
    expect(errorCode(r)).toBe('GW_UPSTREAM_UNAVAILABLE');
    const retries = await metric(gw.adminUrl, 'modelgate_retries_total', { endpoint: 'svc' });
    const r2 = await call(gw.port);
    expect(r2.status).toBe(502);
    // Exactly two retries per request: 1 try + 2 more.
    expect(await metric(gw.adminUrl, 'modelgate_retries_total', { endpoint: 'svc' })).toBe(retries + 2);
  });

  it('a request that reached an upstream which then reset is NOT retried (exactly one hit)', async () => {
    await gw.admin('PUT', '/v1/endpoints/svc', {
      public: true,
      routes: [
        { id: 'r', url: resetter.url },
        { id: 'g', url: good.url, weight: 1 },
      ],
    });
    let failures = 0;
    const resetBefore = resetter.received.length;
    const goodBefore = good.received.length;
    for (let i = 0; i < 20; i++) {
      const r = await call(gw.port, { method: 'POST', body: `gen-${i}` });
      if (r.status === 502) failures++;
      else expect(r.status).toBe(200);
    }
    const resetHits = resetter.received.length - resetBefore;
    const goodHits = good.received.length - goodBefore;
    expect(resetHits).toBeGreaterThan(0);
    // Every request reached exactly one upstream: no duplicate generations.
    expect(resetHits + goodHits).toBe(20);
    expect(failures).toBe(resetHits);
  });

  it('POST bodies (content-length and chunked) arrive intact after a retry', async () => {
    await gw.admin('PUT', '/v1/endpoints/svc', {
      public: true,
      balancer: 'round_robin',
      routes: [
        { id: 'd1', url: dead1 },
        { id: 'g', url: good.url },
      ],
    });
    const payload = Buffer.alloc(256 * 1024, 'abcdefghij');
    for (let i = 0; i < 4; i++) {
      const before = good.received.length;
      const r = await call(gw.port, { method: 'POST', path: '/gen', body: payload, headers: { 'content-type': 'application/octet-stream' } });
      expect(r.status).toBe(200);
      expect(good.received.length - before).toBe(1);
      expect(good.received.at(-1)!.body.equals(payload)).toBe(true);
    }
    for (let i = 0; i < 4; i++) {
      const before = good.received.length;
      const r = await call(gw.port, { method: 'POST', path: '/gen', body: 'chunked body', headers: { 'transfer-encoding': 'chunked' } });
      expect(r.status).toBe(200);
      expect(good.received.length - before).toBe(1);
      expect(good.received.at(-1)!.body.toString()).toBe('chunked body');
    }
  });
});
