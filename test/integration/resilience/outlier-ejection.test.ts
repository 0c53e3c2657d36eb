import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { closedPort, startUpstream, type TestUpstream } from '../../support/upstream.js';
import { call, metric } from './support.js';
import { sleep } from '../../support/eventually.js';

const EJECT_BASE_MS = 800;

function listenOn(port: number, body: string): Promise<Server> {
  const server = createServer((_req, res) => res.end(body));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Passive outlier ejection: 3 connect failures in a row eject a route for EJECT_BASE_MS, doubling. */
describe('passive outlier ejection', () => {
  let gw: TestGateway;
  let good: TestUpstream;

  beforeAll(async () => {
    gw = await startTestGateway({ EJECT_BASE_MS: String(EJECT_BASE_MS), EJECT_MAX_MS: '60000' });
    good = await startUpstream(undefined, { name: 'good' });
  });
  afterAll(async () => {
    await gw?.stop();
    await good?.close();
  });

  const connectErrors = (endpoint: string) => metric(gw.adminUrl, 'modelgate_upstream_errors_total', { endpoint, kind: 'connect' });
  const ejections = (endpoint: string) => metric(gw.adminUrl, 'modelgate_route_ejections_total', { endpoint });

  it('3 consecutive connect failures eject the route; it is skipped, then tried again and returns on success', async () => {
    const deadPort = await closedPort();
    await gw.admin('PUT', '/v1/endpoints/ej', {
      public: true,
      balancer: 'round_robin',
      routes: [
        { id: 'dead', url: `http://127.0.0.1:${deadPort}` },
        { id: 'good', url: good.url },
      ],
    });
    // Round-robin alternates: every other request meets the dead route first (then retries on good).
    for (let i = 0; i < 6; i++) expect((await call(gw.port, { host: 'ej.localhost' })).status).toBe(200);
    expect(await connectErrors('ej')).toBe(3);
    expect(await ejections('ej')).toBe(1);

    // Ejected: no further attempts on it. Only requests sent well inside the ejection count (on a
    // busy machine 20 requests can outlast it).
    const ejectedBy = Date.now();
    for (let i = 0; i < 20 && Date.now() - ejectedBy < EJECT_BASE_MS / 2; i++) {
      expect((await call(gw.port, { host: 'ej.localhost' })).status).toBe(200);
    }
    expect(await connectErrors('ej')).toBe(3);

    // It comes back to life; after the ejection it is tried again, succeeds and takes traffic.
    const revived = await listenOn(deadPort, 'revived');
    try {
      await sleep(EJECT_BASE_MS + 100);
      const seen: Record<string, number> = {};
      for (let i = 0; i < 10; i++) {
        const r = await call(gw.port, { host: 'ej.localhost' });
        expect(r.status).toBe(200);
        seen[r.body.includes('revived') ? 'revived' : 'good'] = 1 + (seen[r.body.includes('revived') ? 'revived' : 'good'] ?? 0);
      }
      expect(seen.revived).toBe(5);
      expect(await ejections('ej')).toBe(1);
    } finally {
      await closeServer(revived);
    }
  });

  it('ejection doubles while the route keeps failing', async () => {
    const deadPort = await closedPort();
    await gw.admin('PUT', '/v1/endpoints/dbl', {
      public: true,
      balancer: 'round_robin',
      routes: [
        { id: 'dead', url: `http://127.0.0.1:${deadPort}` },
        { id: 'good', url: good.url },
      ],
    });
    // The first ejection happens somewhere in this burst: before it starts is the earliest it can be.
    const burstAt = Date.now();
    for (let i = 0; i < 6; i++) await call(gw.port, { host: 'dbl.localhost' });
    expect(await ejections('dbl')).toBe(1);
    const ejectedAt = Date.now();
    // Keep sending: after the first ejection (800 ms) one failed try ejects it again, for 1600 ms.
    let secondAt = 0;
    while (Date.now() - ejectedAt < 4000) {
      expect((await call(gw.port, { host: 'dbl.localhost' })).status).toBe(200);
      if (secondAt === 0 && (await ejections('dbl')) === 2) secondAt = Date.now();
      await sleep(20);
    }
    expect(secondAt - burstAt).toBeGreaterThanOrEqual(EJECT_BASE_MS - 50);
    expect(secondAt - ejectedAt).toBeLessThan(EJECT_BASE_MS + 1500);
    // The second ejection lasts 2 × base: by 4 s after the first there is at most one more.
    expect(await ejections('dbl')).toBeLessThanOrEqual(3);
    // connect failures stay tiny compared to the requests sent: the route was skipped while ejected.
    expect(await connectErrors('dbl')).toBeLessThanOrEqual(6);
  });

  it('all routes ejected: traffic still goes to them (panic mode) and succeeds once one is back', async () => {
    const deadPort = await closedPort();
    await gw.admin('PUT', '/v1/endpoints/panic', { public: true, routes: [{ id: 'only', url: `http://127.0.0.1:${deadPort}` }] });
    for (let i = 0; i < 3; i++) expect((await call(gw.port, { host: 'panic.localhost' })).status).toBe(502);
    expect(await ejections('panic')).toBe(1);
    const revived = await listenOn(deadPort, 'back');
    try {
      // Well within the ejection time: the ejected only route is still used.
      const t0 = Date.now();
      const r = await call(gw.port, { host: 'panic.localhost' });
      expect(Date.now() - t0).toBeLessThan(EJECT_BASE_MS - 100);
      expect(r.status).toBe(200);
      expect(r.body).toBe('back');
    } finally {
      await closeServer(revived);
    }
  });
});
