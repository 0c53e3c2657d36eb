import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { startUpstream, type TestUpstream } from '../../support/upstream.js';
import { call, errorCode, metric } from './support.js';
import { eventually } from '../../support/eventually.js';

/** Concurrency limits per instance, per endpoint (setting) and per endpoint (table) → GW_OVERLOADED. */
describe('overload', () => {
  let gw: TestGateway;
  let up: TestUpstream;
  let concurrent = 0;
  let maxConcurrent = 0;
  const waiting: (() => void)[] = [];

  beforeAll(async () => {
    gw = await startTestGateway({ MAX_CONCURRENT_REQUESTS: '8', MAX_CONCURRENT_PER_ENDPOINT: '5', HOLD_QUEUE_MAX: '4' });
    up = await startUpstream((req, res) => {
      if (req.url !== '/slow') {
        res.end('ok');
        return;
      }
      concurrent++;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      waiting.push(() => {
        concurrent--;
        res.end('slow done');
      });
    });
    for (const name of ['e1', 'e2', 'e3']) await gw.admin('PUT', `/v1/endpoints/${name}`, { public: true, routes: [{ id: 'a', url: up.url }] });
    await gw.admin('PUT', '/v1/endpoints/lim', { public: true, routes: [{ id: 'a', url: up.url }], limits: { max_concurrent: 2 } });
  });
  afterAll(async () => {
    for (const w of waiting.splice(0)) w();
    await gw?.stop();
    await up?.close();
  });

  function releaseAll() {
    for (const w of waiting.splice(0)) w();
  }

  async function expectOverloaded(host: string) {
    const r = await call(gw.port, { host, path: '/slow' });
    expect(r.status).toBe(503);
    expect(errorCode(r)).toBe('GW_OVERLOADED');
    expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  }

  it('MAX_CONCURRENT_PER_ENDPOINT: the 6th concurrent request to one endpoint → 503 GW_OVERLOADED + Retry-After', async () => {
    const slow = Array.from({ length: 5 }, () => call(gw.port, { host: 'e1.localhost', path: '/slow' }));
    await eventually(() => waiting.length === 5);
    await expectOverloaded('e1.localhost');
    // Another endpoint is not affected by e1's limit.
    expect((await call(gw.port, { host: 'e2.localhost', path: '/fast' })).status).toBe(200);
    releaseAll();
    for (const r of await Promise.all(slow)) expect(r.status).toBe(200);
    expect((await call(gw.port, { host: 'e1.localhost', path: '/fast' })).status).toBe(200);
  });

  it("the table's limits.max_concurrent overrides the per-endpoint default", async () => {
    const slow = [0, 1].map(() => call(gw.port, { host: 'lim.localhost', path: '/slow' }));
    await eventually(() => waiting.length === 2);
    await expectOverloaded('lim.localhost');
    releaseAll();
    for (const r of await Promise.all(slow)) expect(r.status).toBe(200);
  });

  it('MAX_CONCURRENT_REQUESTS bounds the whole instance', async () => {
    const slow = [
      ...Array.from({ length: 4 }, () => call(gw.port, { host: 'e1.localhost', path: '/slow' })),
      ...Array.from({ length: 4 }, () => call(gw.port, { host: 'e2.localhost', path: '/slow' })),
    ];
    await eventually(() => waiting.length === 8);
    await expectOverloaded('e3.localhost');
    releaseAll();
    for (const r of await Promise.all(slow)) expect(r.status).toBe(200);
  });

  it('a flood is answered at once beyond the limits; upstream concurrency and memory stay bounded', async () => {
    maxConcurrent = 0;
    const refusedBefore = await metric(gw.adminUrl, 'modelgate_gateway_errors_total', { code: 'GW_OVERLOADED' });
    const heapBefore = process.memoryUsage().heapUsed;
    const flood = Array.from({ length: 400 }, (_, i) => call(gw.port, { host: `e${(i % 3) + 1}.localhost`, path: '/slow' }));
    // Everything beyond the limit was refused: only the admitted ones are still pending.
    await eventually(
      async () => (await metric(gw.adminUrl, 'modelgate_gateway_errors_total', { code: 'GW_OVERLOADED' })) - refusedBefore === 392, { timeoutMs: 10_000 });
    expect(waiting.length).toBe(8);
    expect(await metric(gw.adminUrl, 'modelgate_in_flight_requests')).toBe(8);
    releaseAll();
    const results = await Promise.all(flood);
    expect(results.filter((r) => r.status === 200).length).toBe(8);
    expect(results.filter((r) => r.status === 503 && errorCode(r) === 'GW_OVERLOADED').length).toBe(392);
    expect(maxConcurrent).toBeLessThanOrEqual(8);
    // Rough guard: 400 refused requests must not pile up state (well under 50 MB of growth).
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(50 * 1024 * 1024);
    expect(await metric(gw.adminUrl, 'modelgate_in_flight_requests')).toBe(0);
  });
});
