import { Agent } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { closedPort, startUpstream, type TestUpstream } from '../../support/upstream.js';
import { call, errorCode } from './support.js';

/**
 * Each way an upstream can misbehave gives the caller the right answer, and the very next
 * request (on the same keep-alive client connection) is unaffected.
 */
describe('upstream faults', () => {
  let gw: TestGateway;
  let up: TestUpstream;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });

  beforeAll(async () => {
    gw = await startTestGateway({ FIRST_BYTE_TIMEOUT_MS: '400', IDLE_TIMEOUT_MS: '400' });
    up = await startUpstream((req, res) => {
      switch (req.url) {
        case '/reset-before-headers':
          req.socket.destroy();
          return;
        case '/reset-mid-body':
          res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' });
          res.write('x'.repeat(100));
          setTimeout(() => req.socket.destroy(), 50);
          return;
        case '/half-headers':
          req.socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/pl');
          setTimeout(() => req.socket.destroy(), 50);
          return;
        case '/never':
          return; // never answers
        case '/500':
          res.writeHead(500, { 'content-type': 'text/x-upstream', 'x-upstream': 'yes', 'retry-after': '7' });
          res.end('upstream says no');
          return;
        case '/503':
          res.writeHead(503, { 'content-type': 'application/json' });
          res.end('{"error":"model loading"}');
          return;
        default:
          res.end('ok');
      }
    });
    const dead = await closedPort();
    await gw.admin('PUT', '/v1/endpoints/svc', { public: true, routes: [{ id: 'a', url: up.url }] });
    await gw.admin('PUT', '/v1/endpoints/dead', { public: true, routes: [{ id: 'd', url: `http://127.0.0.1:${dead}` }] });
  });
  afterAll(async () => {
    agent.destroy();
    await gw?.stop();
    await up?.close();
  });

  async function nextIsFine() {
    const ok = await call(gw.port, { path: '/fine', agent });
    expect(ok.status).toBe(200);
    expect(ok.body).toBe('ok');
  }

  it('connection refused (only route) → 502 GW_UPSTREAM_UNAVAILABLE', async () => {
    const r = await call(gw.port, { host: 'dead.localhost', agent });
    expect(r.status).toBe(502);
    expect(errorCode(r)).toBe('GW_UPSTREAM_UNAVAILABLE');
    await nextIsFine();
  });

  it('reset before headers → 502, exactly one upstream hit (not retried)', async () => {
    const before = up.received.filter((r) => r.url === '/reset-before-headers').length;
    const r = await call(gw.port, { path: '/reset-before-headers', agent });
    expect(r.status).toBe(502);
    expect(errorCode(r)).toBe('GW_UPSTREAM_UNAVAILABLE');
    expect(up.received.filter((x) => x.url === '/reset-before-headers').length - before).toBe(1);
    await nextIsFine();
  });

  it('reset mid-body → the client gets a truncated response and its connection closed', async () => {
    const r = await call(gw.port, { path: '/reset-mid-body', agent });
    expect(r.status).toBe(200);
    expect(r.truncated).toBe(true);
    expect(r.body.length).toBeLessThan(1000);
    await nextIsFine();
  });

  it('half-sent headers → 502', async () => {
    const r = await call(gw.port, { path: '/half-headers', agent });
    expect(r.status).toBe(502);
    expect(errorCode(r)).toBe('GW_UPSTREAM_UNAVAILABLE');
    await nextIsFine();
  });

  it('a response that never starts → 504 GW_UPSTREAM_TIMEOUT after the first-byte timeout', async () => {
    const t0 = Date.now();
    const r = await call(gw.port, { path: '/never', agent });
    const took = Date.now() - t0;
    expect(r.status).toBe(504);
    expect(errorCode(r)).toBe('GW_UPSTREAM_TIMEOUT');
    expect(took).toBeGreaterThanOrEqual(350);
    expect(took).toBeLessThan(3000);
    await nextIsFine();
  });

  it('upstream 5xx pass through untouched (status, headers, body), never retried', async () => {
    const before = up.received.length;
    const r = await call(gw.port, { path: '/500', agent });
    expect(r.status).toBe(500);
    expect(r.body).toBe('upstream says no');
    expect(r.headers['content-type']).toBe('text/x-upstream');
    expect(r.headers['x-upstream']).toBe('yes');
    expect(r.headers['retry-after']).toBe('7');
    expect(up.received.length - before).toBe(1);
    const r2 = await call(gw.port, { path: '/503', agent });
    expect(r2.status).toBe(503);
    expect(r2.body).toBe('{"error":"model loading"}');
    await nextIsFine();
  });
});
