import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { rawRequest, rawSend } from '../support/raw-client.js';
import { startRawUpstream, type RawUpstream } from '../support/raw-upstream.js';
import { eventually } from '../support/eventually.js';

/**
 * Issue 21 finding 1: an upgrade request must not turn the client connection into a raw tunnel
 * before the upstream really switched protocols. Only a `101` with `Upgrade: websocket` and the
 * right `Sec-WebSocket-Accept` opens a tunnel; any other answer is relayed as one response and
 * the connection closes, so bytes the client sends afterwards never reach the upstream.
 */
const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const ACCEPT = createHash('sha1').update(`${KEY}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
const UPGRADE = ['Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Version: 13', `Sec-WebSocket-Key: ${KEY}`];
const SMUGGLED = 'GET /second/../../x HTTP/1.1\r\nHost: anything.example\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n';

describe('security: upgrades become tunnels only after a real 101', () => {
  let gw: TestGateway;
  let ok: RawUpstream;
  let notFound: RawUpstream;
  let badAccept: RawUpstream;
  let good: RawUpstream;

  beforeAll(async () => {
    gw = await startTestGateway({ BODY_LIMIT_BYTES: '1000' });
    ok = await startRawUpstream();
    notFound = await startRawUpstream({ respond: () => 'HTTP/1.1 404 Not Found\r\ncontent-length: 4\r\n\r\nnope' });
    badAccept = await startRawUpstream({ respond: () => 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n' });
    good = await startRawUpstream({ respond: () => `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${ACCEPT}\r\n\r\n` });
    for (const [name, up] of [['ok', ok], ['nf', notFound], ['bad', badAccept], ['good', good]] as const) {
      expect((await gw.admin('PUT', `/v1/endpoints/${name}`, { public: true, routes: [{ id: 'a', url: up.url }] })).status).toBe(201);
    }
  });
  afterAll(async () => {
    await gw?.stop();
    await Promise.all([ok?.close(), notFound?.close(), badAccept?.close(), good?.close()]);
  });

  it.each([
    ['200', 'ok', 200],
    ['404', 'nf', 404],
  ])('relays a %s answer to an upgrade as one response; later bytes never reach the upstream', async (_what, name, status) => {
    const up = name === 'ok' ? ok : notFound;
    up.reset();
    const res = await rawSend(gw.port, '', {
      pieces: [rawRequest('GET', `/e/${name}/chat`, ['Host: gw', ...UPGRADE]), SMUGGLED],
      delayMs: 300,
      idleMs: 600,
    });
    expect(res.responses[0]?.status).toBe(status);
    expect(res.responses.filter((r) => r.status === 101)).toHaveLength(0);
    expect(up.requests).toHaveLength(1);
    expect(up.requests[0].target).toBe('/chat');
    expect(up.connections.map((c) => c.data.toString('latin1')).join('')).not.toContain('/second/');
  });

  it('refuses a 101 whose Sec-WebSocket-Accept is wrong (502) and opens no tunnel', async () => {
    badAccept.reset();
    const res = await rawSend(gw.port, '', {
      pieces: [rawRequest('GET', '/e/bad/chat', ['Host: gw', ...UPGRADE]), SMUGGLED],
      delayMs: 300,
      idleMs: 600,
    });
    expect(res.responses[0]?.status).toBe(502);
    expect(JSON.parse(res.responses[0].body).error.code).toBe('GW_UPSTREAM_UNAVAILABLE');
    expect(badAccept.connections.map((c) => c.data.toString('latin1')).join('')).not.toContain('/second/');
  });

  it('opens the tunnel for a correct 101 and forwards the client bytes only after it', async () => {
    good.reset();
    const res = await rawSend(gw.port, '', { pieces: [rawRequest('GET', '/e/good/chat', ['Host: gw', ...UPGRADE]), 'after-101'], delayMs: 300, idleMs: 600 });
    expect(res.text).toMatch(/^HTTP\/1\.1 101 /);
    expect(res.text.toLowerCase()).toContain(`sec-websocket-accept: ${ACCEPT.toLowerCase()}`);
    await eventually(() => good.connections.some((c) => c.data.toString('latin1').endsWith('after-101')));
  });

  it('refuses bytes sent before the handshake completed (no pipelining into a tunnel)', async () => {
    good.reset();
    const res = await rawSend(gw.port, rawRequest('GET', '/e/good/chat', ['Host: gw', ...UPGRADE]) + SMUGGLED, { idleMs: 600 });
    expect(res.responses[0]?.status).toBe(400);
    expect(good.requests).toHaveLength(0);
  });

  it('refuses bytes sent while the upgrade waits in the hold queue, and never sends it upstream later', async () => {
    good.reset();
    expect((await gw.admin('PUT', '/v1/endpoints/held', { public: true, routes: [] })).status).toBe(201);
    const res = await rawSend(gw.port, '', { pieces: [rawRequest('GET', '/e/held/chat', ['Host: gw', ...UPGRADE]), SMUGGLED], delayMs: 300, idleMs: 600 });
    expect(res.responses[0]?.status).toBe(400);
    expect((await gw.admin('PUT', '/v1/endpoints/held/routes', { routes: [{ id: 'a', url: good.url }] })).status).toBe(200);
    const probe = await rawSend(gw.port, rawRequest('GET', '/e/held/probe', ['Host: gw', ...UPGRADE]), { idleMs: 400 });
    expect(probe.text).toMatch(/^HTTP\/1\.1 101 /);
    expect(good.requests.map((r) => r.target)).toEqual(['/probe']);
  });

  it('sends a non-WebSocket upgrade (h2c) through the normal request path with its body limit', async () => {
    ok.reset();
    const body = 'x'.repeat(5000);
    const res = await rawSend(
      gw.port,
      rawRequest('POST', '/e/ok/x', ['Host: gw', 'Connection: Upgrade, HTTP2-Settings', 'Upgrade: h2c', 'HTTP2-Settings: AAMAAABkAAQAAP__', `Content-Length: ${body.length}`], body),
      { idleMs: 600 },
    );
    expect(res.responses[0]?.status).toBe(413);
    expect(JSON.parse(res.responses[0].body).error.code).toBe('GW_BODY_TOO_LARGE');
    expect(ok.requests).toHaveLength(0);
  });

  it('refuses a chunked h2c body over the limit while it streams', async () => {
    ok.reset();
    const chunk = 'y'.repeat(800);
    const chunked = `${(800).toString(16)}\r\n${chunk}\r\n${(800).toString(16)}\r\n${chunk}\r\n0\r\n\r\n`;
    const res = await rawSend(gw.port, rawRequest('POST', '/e/ok/x', ['Host: gw', 'Connection: Upgrade', 'Upgrade: h2c', 'Transfer-Encoding: chunked'], chunked), { idleMs: 600 });
    expect(res.responses[0]?.status).toBe(413);
    expect(ok.requests.filter((r) => r.body.length > 1000)).toHaveLength(0);
  });
});

interface WsUpstream {
  url: string;
  sockets: WebSocket[];
  close(): Promise<void>;
}

async function startWsUpstream(): Promise<WsUpstream> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await once(wss, 'listening');
  const sockets: WebSocket[] = [];
  wss.on('connection', (s) => {
    sockets.push(s);
    s.on('message', (d) => s.send(`echo:${d.toString()}`));
  });
  return {
    url: `http://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of wss.clients) s.terminate();
        wss.close(() => resolve());
      }),
  };
}

function open(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  const ws = new WebSocket(url, { headers });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
  });
}

describe('security: tunnels are requests in flight with their endpoint and token', () => {
  let gw: TestGateway;
  let up: WsUpstream;

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startWsUpstream();
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });

  it('counts an open tunnel against the endpoint max_concurrent', async () => {
    expect((await gw.admin('PUT', '/v1/endpoints/capped', { public: true, routes: [{ id: 'a', url: up.url }], limits: { max_concurrent: 1 } })).status).toBe(201);
    const ws = await open(`ws://127.0.0.1:${gw.port}/e/capped/`);
    const res = await fetch(`${gw.url}/e/capped/plain`);
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('GW_OVERLOADED');
    const second = (await open(`ws://127.0.0.1:${gw.port}/e/capped/`).catch((e) => e)) as { status?: number };
    expect(second.status).toBe(503);
    ws.close();
    await once(ws, 'close');
  });

  it('closes a tunnel when its token is revoked', async () => {
    expect((await gw.admin('PUT', '/v1/endpoints/priv', { public: false, routes: [{ id: 'a', url: up.url }] })).status).toBe(201);
    const issued = await gw.admin('POST', '/v1/endpoints/priv/tokens', { sub: 'ws' });
    expect(issued.status).toBe(201);
    const ws = await open(`ws://127.0.0.1:${gw.port}/e/priv/`, { authorization: `Bearer ${issued.body.token}` });
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.send('before');
    await new Promise((resolve) => ws.once('message', resolve));
    expect((await gw.admin('DELETE', `/v1/endpoints/priv/tokens/${issued.body.jti}`)).status).toBe(204);
    expect(await closed).toBe(1008);
  });

  it('closes a tunnel when its endpoint is deleted', async () => {
    expect((await gw.admin('PUT', '/v1/endpoints/gone', { public: true, routes: [{ id: 'a', url: up.url }] })).status).toBe(201);
    const ws = await open(`ws://127.0.0.1:${gw.port}/e/gone/`);
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    expect((await gw.admin('DELETE', '/v1/endpoints/gone')).status).toBe(204);
    expect(await closed).toBe(1001);
  });
});

describe('security: open tunnels do not fill a route queue', () => {
  let gw: TestGateway;
  let up: WsUpstream;

  beforeAll(async () => {
    // One pool connection and no waiting room: a request finds the route full only while
    // another request is really using it, not while WebSockets are open on it.
    gw = await startTestGateway({ UPSTREAM_POOL_CONNECTIONS: '1', UPSTREAM_PENDING_MAX: '0' });
    up = await startWsUpstream();
    await gw.admin('PUT', '/v1/endpoints/many', { public: true, routes: [{ id: 'a', url: up.url }] });
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });

  it('opens several WebSockets on a route whose pool has a single connection', async () => {
    const sockets = [];
    for (let i = 0; i < 3; i++) sockets.push(await open(`ws://127.0.0.1:${gw.port}/e/many/`));
    for (const ws of sockets) {
      ws.send('x');
      expect((await new Promise<Buffer>((resolve) => ws.once('message', resolve))).toString()).toBe('echo:x');
      ws.close();
    }
  });
});
