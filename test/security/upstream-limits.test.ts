import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawRequest, rawSend } from '../support/raw-client.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { startRawUpstream, type RawUpstream } from '../support/raw-upstream.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';

/**
 * Issue 21, finding 8 (upstream side): an upstream cannot make the gateway hold and relay an
 * unbounded number of response headers (502 GW_UPSTREAM_UNAVAILABLE past the bound, Envoy's
 * max_response_headers_count), and a huge route table does not build one undici pool per
 * origin up front: pools are created when a route is first used.
 */

function responseWithHeaders(count: number, valueBytes = 1): string {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) lines.push(`x-h-${i}: ${'v'.repeat(valueBytes)}`);
  return `HTTP/1.1 200 OK\r\n${lines.join('\r\n')}${count ? '\r\n' : ''}content-length: 2\r\n\r\nok`;
}

describe('security: upstream response header count', () => {
  let gw: TestGateway;
  let up: RawUpstream;
  let headers = 0;
  let valueBytes = 1;

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startRawUpstream({ respond: () => responseWithHeaders(headers, valueBytes) });
    await gw.admin('PUT', '/v1/endpoints/hdr', { public: true, routes: [{ id: 'a', url: up.url }] });
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });

  it('a response with a normal number of headers passes', async () => {
    headers = 90;
    const res = await fetch(`${gw.url}/e/hdr/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-h-89')).toBe('v');
  });

  it.each([101, 1000, 5000])('%i response headers → 502 GW_UPSTREAM_UNAVAILABLE', async (count) => {
    headers = count;
    valueBytes = 1;
    const res = await fetch(`${gw.url}/e/hdr/`);
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('GW_UPSTREAM_UNAVAILABLE');
  });

  it('a header block over the byte bound → 502 too', async () => {
    headers = 40;
    valueBytes = 4096;
    const res = await fetch(`${gw.url}/e/hdr/`);
    expect(res.status).toBe(502);
    valueBytes = 1;
  });

  it('a WebSocket 101 with too many headers is refused too (502), no tunnel', async () => {
    const ws = await startRawUpstream({
      respond: (req) => {
        const key = req.headers.find(([n]) => n.toLowerCase() === 'sec-websocket-key')?.[1] ?? '';
        const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
        const extra = Array.from({ length: 150 }, (_, i) => `x-h-${i}: v\r\n`).join('');
        return `HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept}\r\n${extra}\r\n`;
      },
    });
    try {
      await gw.admin('PUT', '/v1/endpoints/wsh', { public: true, routes: [{ id: 'a', url: ws.url }] });
      const res = await rawSend(
        gw.port,
        rawRequest('GET', '/e/wsh/', ['Host: 127.0.0.1', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==']),
        { idleMs: 2000, untilResponses: 1 },
      );
      expect(res.responses[0]?.status, res.text.slice(0, 300)).toBe(502);
    } finally {
      await ws.close();
    }
  });

  it('the gateway keeps serving afterwards', async () => {
    headers = 3;
    expect((await fetch(`${gw.url}/e/hdr/`)).status).toBe(200);
  });
});

describe('security: pools are created on first use', () => {
  let gw: TestGateway;
  let up: TestUpstream;
  const ROUTES = 10_000;

  beforeAll(async () => {
    gw = await startTestGateway({ ADMIN_BODY_LIMIT_BYTES: String(8 * 1024 * 1024) });
    up = await startUpstream();
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });

  it(`${ROUTES} routes with distinct origins build a pool only for the origins that carry traffic`, async () => {
    // One live route; every other route has its own origin (10.x.y.z) and takes no traffic yet.
    const routes = [{ id: 'live', url: up.url, weight: 1 }];
    for (let i = 1; i < ROUTES; i++) {
      routes.push({ id: `r${i}`, url: `http://10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:8000`, weight: 0 });
    }
    const put = await gw.admin('PUT', '/v1/endpoints/wide', { public: true, routes });
    expect([200, 201]).toContain(put.status);
    const pools = gw.running.gateway!.pools;
    const heapBefore = process.memoryUsage().heapUsed;
    for (let i = 0; i < 5; i++) expect((await fetch(`${gw.url}/e/wide/`)).status).toBe(200);
    const heapAfter = process.memoryUsage().heapUsed;
    // Informational (GC timing makes heap numbers noisy); the pool count is the assertion.
    console.log(`[pools] ${ROUTES} routes: ${pools.open} undici pools open, heap +${Math.round((heapAfter - heapBefore) / 1024 / 1024)} MiB`);
    expect(pools.open).toBe(1);
    // Re-weighting a route onto a new origin builds its pool at its first request.
    routes[1].weight = 1;
    routes[0].weight = 0;
    expect((await gw.admin('PUT', '/v1/endpoints/wide', { public: true, routes })).status).toBe(200);
    await fetch(`${gw.url}/e/wide/`, { signal: AbortSignal.timeout(8000) }).catch(() => undefined);
    expect(pools.open).toBeGreaterThanOrEqual(1);
    expect(pools.open).toBeLessThanOrEqual(4);
  });
});
