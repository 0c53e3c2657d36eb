import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { startOpenAiUpstream, type OpenAiUpstream } from '../../support/openai-upstream.js';
import { eventually } from '../../support/eventually.js';
import { chat, issueToken, metric } from './support.js';

describe('max_in_flight_per_route and the queue (one instance, embedded store)', () => {
  let gw: TestGateway;
  let up: OpenAiUpstream;
  let up2: OpenAiUpstream;

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startOpenAiUpstream('a');
    up2 = await startOpenAiUpstream('b');
  });
  afterEach(() => {
    up.holding = false;
    up.release();
    up2.holding = false;
    up2.release();
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
    await up2?.close();
  });

  it('never lets a replica see more than the cap; the rest wait and all succeed', async () => {
    await gw.admin('PUT', '/v1/endpoints/capped', { public: true, routes: [{ url: up.url }, { url: up2.url }], limits: { max_in_flight_per_route: 2 } });
    up.holding = true;
    up2.holding = true;
    const all = Array.from({ length: 12 }, (_, i) => chat(gw.url, 'capped', { id: String(i) }));
    await eventually(() => up.inFlight === 2 && up2.inFlight === 2);
    await eventually(async () => (await metric(gw, 'modelgate_traffic_queued_requests')) === 8);
    up.holding = false;
    up2.holding = false;
    up.release();
    up2.release();
    const results = await Promise.all(all);
    expect(results.map((r) => r.status)).toEqual(Array(12).fill(200));
    expect(up.maxInFlight).toBeLessThanOrEqual(2);
    expect(up2.maxInFlight).toBeLessThanOrEqual(2);
    expect(up.requests + up2.requests).toBeGreaterThanOrEqual(12);
  });

  it('lets waiting requests out by priority, then arrival', async () => {
    await gw.admin('PUT', '/v1/endpoints/prio', { routes: [{ url: up.url }], limits: { max_in_flight_per_route: 1 } });
    const low = await issueToken(gw, 'prio', { priority: 1 });
    const mid = await issueToken(gw, 'prio', { priority: 5 });
    const high = await issueToken(gw, 'prio', {});
    const top = await issueToken(gw, 'prio', { priority: 9 });
    up.arrivals.length = 0;
    up.holding = true;
    const pending = [chat(gw.url, 'prio', { token: mid, id: 'first' })];
    await eventually(() => up.inFlight === 1);
    const order: [string, string][] = [
      [low, 'low-1'],
      [high, 'default-1'],
      [top, 'top-1'],
      [low, 'low-2'],
      [top, 'top-2'],
    ];
    for (const [i, [token, id]] of order.entries()) {
      pending.push(chat(gw.url, 'prio', { token, id }));
      await eventually(async () => (await metric(gw, 'modelgate_traffic_queued_requests')) === i + 1);
    }
    for (let n = 1; n <= order.length; n++) {
      up.release();
      await eventually(() => up.arrivals.length === n + 1);
    }
    up.holding = false;
    up.release();
    expect((await Promise.all(pending)).map((r) => r.status)).toEqual(Array(6).fill(200));
    expect(up.arrivals).toEqual(['first', 'top-1', 'top-2', 'default-1', 'low-1', 'low-2']);
  });

  it('answers 503 GW_OVERLOADED with Retry-After when the queue is full or the wait too long', async () => {
    await gw.admin('PUT', '/v1/endpoints/full', { public: true, routes: [{ url: up.url }], limits: { max_in_flight_per_route: 1, queue: { max_length: 1, max_wait_ms: 400 } } });
    up.holding = true;
    const first = chat(gw.url, 'full');
    await eventually(() => up.inFlight === 1);
    const waiting = chat(gw.url, 'full');
    await eventually(async () => (await metric(gw, 'modelgate_traffic_queued_requests')) === 1);
    const refused = await chat(gw.url, 'full');
    expect(refused.status).toBe(503);
    expect(JSON.parse(refused.text).error.code).toBe('GW_OVERLOADED');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const outwaited = await waiting;
    expect(outwaited.status).toBe(503);
    expect(JSON.parse(outwaited.text).error.code).toBe('GW_OVERLOADED');
    expect(outwaited.headers.get('retry-after')).not.toBeNull();
    up.holding = false;
    up.release();
    expect((await first).status).toBe(200);
  });

  it('gives a queued place back when its client goes away', async () => {
    await gw.admin('PUT', '/v1/endpoints/gone', { public: true, routes: [{ url: up.url }], limits: { max_in_flight_per_route: 1, queue: { max_length: 1 } } });
    up.holding = true;
    const first = chat(gw.url, 'gone');
    await eventually(() => up.inFlight === 1);
    const ac = new AbortController();
    const abandoned = chat(gw.url, 'gone', { signal: ac.signal }).catch((err: Error) => err);
    await eventually(async () => (await metric(gw, 'modelgate_traffic_queued_requests')) === 1);
    ac.abort();
    await abandoned;
    await eventually(async () => (await metric(gw, 'modelgate_traffic_queued_requests')) === 0);
    const next = chat(gw.url, 'gone');
    await eventually(async () => (await metric(gw, 'modelgate_traffic_queued_requests')) === 1);
    up.holding = false;
    up.release();
    expect((await first).status).toBe(200);
    expect((await next).status).toBe(200);
    expect(up.maxInFlight).toBeLessThanOrEqual(2);
  });
});
