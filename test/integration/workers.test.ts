import { randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { spawnGateway, TEST_ADMIN_TOKEN, type SpawnedGateway } from '../support/gateway.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';
import { eventually } from '../support/eventually.js';

/**
 * WORKERS=2: the primary runs the admin API (and, without Redis, the store), two workers serve
 * the data plane on one shared port. Each request below opens a new connection (agent: false);
 * cluster hands connections to the workers in turn, so a run of them reaches both workers.
 */

function call(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function upstreamsSeen(port: number, host: string, n: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const res = await call(port, host);
    seen.add(res.status === 200 ? (JSON.parse(res.body) as { upstream: string }).upstream : `status ${res.status}`);
  }
  return seen;
}

for (const mode of ['embedded store', 'redis'] as const) {
  describe(`WORKERS=2 (${mode})`, () => {
    let gw: SpawnedGateway;
    let a: TestUpstream;
    let b: TestUpstream;

    beforeAll(async () => {
      a = await startUpstream(undefined, { name: 'a' });
      b = await startUpstream(undefined, { name: 'b' });
      const env: Record<string, string> = { WORKERS: '2', ADMIN_TOKEN: TEST_ADMIN_TOKEN };
      if (mode === 'redis') Object.assign(env, { REDIS_URL: inject('redisUrl'), REDIS_PREFIX: `workers-${randomUUID().slice(0, 8)}:` });
      gw = await spawnGateway(env);
    }, 60_000);
    afterAll(async () => {
      await gw?.stop('SIGKILL');
      await a?.close();
      await b?.close();
    });

    it('serves requests from every worker, and a route change reaches all of them', async () => {
      const put = await gw.admin('PUT', '/v1/endpoints/multi', { public: true, routes: [{ id: 'r', url: a.url }] });
      expect(put.status).toBe(201);
      expect(await upstreamsSeen(gw.port, 'multi.localhost', 8)).toEqual(new Set(['a']));

      const change = await gw.admin('PUT', '/v1/endpoints/multi/routes', { routes: [{ id: 'r', url: b.url }] });
      expect(change.status).toBe(200);
      await eventually(async () => {
        const seen = await upstreamsSeen(gw.port, 'multi.localhost', 8);
        return seen.size === 1 && seen.has('b');
      });
    });

    it('answers unknown endpoints from the workers with 404', async () => {
      for (let i = 0; i < 4; i++) expect((await call(gw.port, 'nope.localhost')).status).toBe(404);
    });

    it('sums every worker\'s data-plane metrics on the admin listener', async () => {
      await gw.admin('PUT', '/v1/endpoints/counted', { public: true, routes: [{ id: 'r', url: a.url }] });
      for (let i = 0; i < 10; i++) expect((await call(gw.port, 'counted.localhost')).status).toBe(200);
      const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith('modelgate_requests_total{') && l.includes('endpoint="counted"') && l.includes('2xx'));
      // Connections alternate between the two workers; only a sum over both gives 10.
      expect(line, text.slice(0, 2000)).toBeDefined();
      expect(Number(line!.split(' ').pop())).toBe(10);
    });

    it('sums every worker\'s numbers in the console\'s stats endpoint', async () => {
      await gw.admin('PUT', '/v1/endpoints/charted', { public: true, routes: [{ id: 'r', url: a.url }] });
      for (let i = 0; i < 10; i++) expect((await call(gw.port, 'charted.localhost')).status).toBe(200);
      const stats = await gw.admin('GET', '/v1/endpoints/charted/stats');
      expect(stats.status).toBe(200);
      expect(stats.body.requests).toEqual({ '2xx': 10 });
      expect(stats.body.latency.count).toBe(10);
      expect(stats.body.latency.counts.at(-1)).toBe(10);
      // Both workers loaded the table: the route appears once, its counts summed.
      expect(stats.body.routes).toEqual([{ id: 'r', in_flight: 0 }]);
    });

    it('drains every worker on SIGTERM and exits 0', async () => {
      const code = await gw.stop('SIGTERM');
      expect(code).toBe(0);
      const workersDrained = gw.lines.filter((l) => l.includes('worker draining')).length;
      expect(workersDrained).toBe(2);
    });
  });
}
