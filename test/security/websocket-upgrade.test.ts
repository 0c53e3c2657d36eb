import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { rawRequest, rawSend } from '../support/raw-client.js';
import { startRawUpstream, type RawUpstream } from '../support/raw-upstream.js';

/**
 * The WebSocket upgrade path reads the request head with the same rules as plain HTTP: the
 * framing, Host and client-address hardening cannot be bypassed by adding `Upgrade: websocket`.
 */
const UPGRADE = ['Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=='];

describe('security: WebSocket upgrades', () => {
  let gw: TestGateway;
  let up: RawUpstream;

  beforeAll(async () => {
    gw = await startTestGateway();
    // The accept value for the key in UPGRADE: the gateway opens a tunnel only for a real 101.
    up = await startRawUpstream({
      respond: () => 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n',
    });
    await gw.admin('PUT', '/v1/endpoints/ws', { public: true, routes: [{ id: 'a', url: up.url }] });
    await gw.admin('PUT', '/v1/endpoints/secret', { public: false, routes: [{ id: 'a', url: up.url }] });
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });

  it('strips client-address headers the gateway sets and forwards its own', async () => {
    up.reset();
    const res = await rawSend(
      gw.port,
      rawRequest('GET', '/chat', ['Host: ws.localhost', ...UPGRADE, 'X-Real-IP: 6.6.6.6', 'X-Forwarded-Host: secret.localhost', 'Forwarded: for=6.6.6.6', 'X-Forwarded-Prefix: /admin']),
      { idleMs: 500 },
    );
    expect(res.text).toContain('101 Switching Protocols');
    expect(up.requests).toHaveLength(1);
    const req = up.requests[0];
    expect(up.headerValues(req, 'x-real-ip')).toEqual([]);
    expect(up.headerValues(req, 'forwarded')).toEqual([]);
    expect(up.headerValues(req, 'x-forwarded-prefix')).toEqual([]);
    expect(up.headerValues(req, 'x-forwarded-host')).toEqual(['ws.localhost']);
    expect(up.headerValues(req, 'x-forwarded-for')).toEqual(['127.0.0.1']);
  });

  it.each([
    ['two Host headers', rawRequest('GET', '/', ['Host: ws.localhost', 'Host: secret.localhost', ...UPGRADE])],
    ['a dot segment', rawRequest('GET', '/a/../b', ['Host: ws.localhost', ...UPGRADE])],
    ['a malformed Host', rawRequest('GET', '/', ['Host: ws.localhost/x', ...UPGRADE])],
    ['too many header lines', rawRequest('GET', '/', ['Host: ws.localhost', ...UPGRADE, ...Array.from({ length: 120 }, (_, i) => `X-H${i}: v`)])],
  ])('refuses an upgrade with %s and never reaches the upstream', async (_what, payload) => {
    up.reset();
    const res = await rawSend(gw.port, payload, { idleMs: 500 });
    expect(res.responses[0]?.status).toBeGreaterThanOrEqual(400);
    expect(res.responses[0]?.status).toBeLessThan(500);
    expect(up.requests).toHaveLength(0);
  });

  it('does not let X-Forwarded-Host route an upgrade to a private endpoint', async () => {
    up.reset();
    const res = await rawSend(gw.port, rawRequest('GET', '/', ['Host: 127.0.0.1', 'X-Forwarded-Host: secret.localhost', ...UPGRADE]), { idleMs: 500 });
    expect(res.responses[0]?.status).toBe(404);
    expect(up.requests).toHaveLength(0);
  });
});
