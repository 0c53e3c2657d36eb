import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';
import { eventually } from '../support/eventually.js';

/**
 * Issue 21 finding 2: a route that leads back to the gateway must not loop. The admin API refuses
 * routes naming the gateway's own listeners; a loop it cannot see (through another address or a
 * TCP forwarder) is cut by the `Via` hop count with `508 GW_LOOP_DETECTED`.
 */

/** A plain TCP forwarder to the gateway: an address the admin API cannot recognise as the gateway. */
async function startForwarder(targetPort: number): Promise<{ port: number; connections: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const state = { port: 0, connections: 0, close: async () => {} };
  const server: Server = createServer((client) => {
    state.connections++;
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  state.port = (server.address() as AddressInfo).port;
  state.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return state;
}

describe('security: proxy loops', () => {
  let gw: TestGateway;
  let fwd: Awaited<ReturnType<typeof startForwarder>>;
  let plain: TestUpstream;

  beforeAll(async () => {
    // A low concurrency cap keeps an unfixed gateway from burning the machine while the test fails.
    gw = await startTestGateway({ MAX_CONCURRENT_REQUESTS: '64', HOLD_TIMEOUT_MS: '0' });
    fwd = await startForwarder(gw.port);
    plain = await startUpstream();
  });
  afterAll(async () => {
    await gw?.stop();
    await fwd?.close();
    await plain?.close();
  });

  it('cuts an HTTP loop with 508 GW_LOOP_DETECTED after a few hops', async () => {
    expect((await gw.admin('PUT', '/v1/endpoints/loop', { public: true, routes: [{ id: 'a', url: `http://127.0.0.1:${fwd.port}/e/loop` }] })).status).toBe(201);
    const before = fwd.connections;
    const res = await fetch(`${gw.url}/e/loop/x`, { signal: AbortSignal.timeout(10_000) });
    expect(res.status).toBe(508);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('GW_LOOP_DETECTED');
    expect(fwd.connections - before).toBeLessThanOrEqual(8);
  });

  it('cuts a WebSocket loop with 508 as well', async () => {
    expect((await gw.admin('PUT', '/v1/endpoints/wsloop', { public: true, routes: [{ id: 'a', url: `http://127.0.0.1:${fwd.port}/e/wsloop` }] })).status).toBe(201);
    const status = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${gw.port}/e/wsloop/`);
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.once('open', () => reject(new Error('a looping upgrade opened')));
      ws.once('error', reject);
    });
    expect(status).toBe(508);
  });

  it('forwards one Via entry of its own and passes a normal request through', async () => {
    await gw.admin('PUT', '/v1/endpoints/plain', { public: true, routes: [{ id: 'a', url: plain.url }] });
    const res = await fetch(`${gw.url}/e/plain/a`, { headers: { via: '1.1 edge' } });
    expect(res.status).toBe(200);
    expect(plain.received.at(-1)!.headers.via).toBe('1.1 edge, 1.1 modelgate');
  });

  it.each([
    ['the data plane', (g: TestGateway) => `http://127.0.0.1:${g.port}/e/x`],
    ['the data plane by name', (g: TestGateway) => `http://localhost:${g.port}`],
    ['the data plane by an apps-domain name', (g: TestGateway) => `http://other.localhost:${g.port}/`],
    ['the admin listener', (g: TestGateway) => `http://127.0.0.1:${new URL(g.adminUrl).port}/`],
  ])('refuses a route to %s with ADM_INVALID naming the field', async (_what, url) => {
    const put = await gw.admin('PUT', '/v1/endpoints/self', { public: true, routes: [{ id: 'a', url: plain.url }, { id: 'b', url: url(gw) }] });
    expect(put.status).toBe(400);
    expect(put.body.error.code).toBe('ADM_INVALID');
    expect(put.body.error.details.map((d: { field: string }) => d.field)).toContain('routes.1.url');
    await gw.admin('PUT', '/v1/endpoints/self', { public: true, routes: [{ id: 'a', url: plain.url }] });
    const routes = await gw.admin('PUT', '/v1/endpoints/self/routes', { routes: [{ id: 'a', url: url(gw) }] });
    expect(routes.status).toBe(400);
    expect(routes.body.error.details[0].field).toBe('routes.0.url');
    const patch = await gw.admin('PATCH', '/v1/endpoints/self/routes/a', { url: url(gw) });
    expect(patch.status).toBe(400);
    expect(patch.body.error.details[0].field).toBe('url');
  });
});

describe('security: the upstream queue per route is bounded', () => {
  let gw: TestGateway;
  let stalled: TestUpstream;
  const held: (() => void)[] = [];

  beforeAll(async () => {
    gw = await startTestGateway({ UPSTREAM_POOL_CONNECTIONS: '1', UPSTREAM_PENDING_MAX: '2' });
    stalled = await startUpstream((_req, res) => {
      held.push(() => res.end('late'));
    });
    await gw.admin('PUT', '/v1/endpoints/slow', { public: true, routes: [{ id: 'a', url: stalled.url }] });
  });
  afterAll(async () => {
    for (const release of held) release();
    await gw?.stop();
    await stalled?.close();
  });

  it('answers 503 GW_OVERLOADED once a route has its connections busy and its queue full', async () => {
    // 1 connection + 2 waiting: of 6 concurrent requests, 3 are refused at once, whatever the arrival order.
    const settled: { status: number; code?: string }[] = [];
    const calls = Array.from({ length: 6 }, () =>
      fetch(`${gw.url}/e/slow/x`, { signal: AbortSignal.timeout(15_000) }).then(async (r) => {
        const text = await r.text();
        const out = { status: r.status, code: r.status === 503 ? JSON.parse(text).error.code : undefined };
        settled.push(out);
        return out;
      }),
    );
    await eventually(() => settled.length === 3 && held.length === 1, { timeoutMs: 10_000 });
    expect(settled.map((r) => r.code)).toEqual(['GW_OVERLOADED', 'GW_OVERLOADED', 'GW_OVERLOADED']);
    while (settled.length < 6) {
      for (const release of held.splice(0)) release();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const all = await Promise.all(calls);
    expect(all.map((r) => r.status).sort()).toEqual([200, 200, 200, 503, 503, 503]);
  });
});
