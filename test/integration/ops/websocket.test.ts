import { once } from 'node:events';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { TokenIssuer } from '../../../src/auth/issuer.js';
import { startTestGateway, TEST_TOKEN_SECRET, type TestGateway } from '../../support/gateway.js';
import { startUpstream } from '../../support/upstream.js';
import { eventually, sleep } from '../../support/eventually.js';

interface WsUpstream {
  wss: WebSocketServer;
  url: string;
  /** Upgrade requests seen: url and headers. */
  seen: { url: string; headers: Record<string, string | string[] | undefined> }[];
  /** Server-side sockets, newest last. */
  sockets: WebSocket[];
  close(): Promise<void>;
}

async function startWsUpstream(): Promise<WsUpstream> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await once(wss, 'listening');
  const up: WsUpstream = {
    wss,
    url: `http://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    seen: [],
    sockets: [],
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of wss.clients) s.terminate();
        wss.close(() => resolve());
      }),
  };
  wss.on('connection', (socket, req) => {
    up.seen.push({ url: req.url ?? '', headers: req.headers });
    up.sockets.push(socket);
    socket.on('message', (data, isBinary) => socket.send(isBinary ? data : `echo:${data.toString()}`, { binary: isBinary }));
  });
  return up;
}

function openClient(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  const ws = new WebSocket(url, { headers });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, body, headers: res.headers })));
    });
  });
}

function nextMessage(ws: WebSocket): Promise<string> {
  return new Promise((resolve) => ws.once('message', (d) => resolve(d.toString())));
}

async function metricValue(gw: TestGateway, endpoint: string): Promise<number> {
  const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`modelgate_websockets_open{endpoint="${endpoint}"}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('WebSocket proxying', () => {
  let gw: TestGateway;
  let up: WsUpstream;
  let token: string;

  beforeAll(async () => {
    gw = await startTestGateway({ WS_IDLE_TIMEOUT_MS: '600' });
    up = await startWsUpstream();
    expect((await gw.admin('PUT', '/v1/endpoints/pub', { public: true, routes: [{ id: 'w1', url: up.url }] })).status).toBe(201);
    const priv = await gw.admin('PUT', '/v1/endpoints/priv', { routes: [{ id: 'w1', url: up.url }] });
    expect(priv.status).toBe(201);
    const issued = await new TokenIssuer(TEST_TOKEN_SECRET).issue({ endpointId: priv.body.id, sub: 'ws-test', exp: Math.floor(Date.now() / 1000) + 600 });
    token = issued.token;
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });

  it('round-trips text and binary frames through /e/{name}/ and host addressing', async () => {
    const ws = await openClient(`ws://127.0.0.1:${gw.port}/e/pub/chat?x=1`);
    ws.send('hello');
    expect(await nextMessage(ws)).toBe('echo:hello');
    const bin = new Promise<Buffer>((resolve) => ws.once('message', (d) => resolve(d as Buffer)));
    ws.send(Buffer.from([1, 2, 3, 250]));
    expect([...(await bin)]).toEqual([1, 2, 3, 250]);
    expect(up.seen.at(-1)!.url).toBe('/chat?x=1');
    expect(up.seen.at(-1)!.headers['x-request-id']).toBeTruthy();
    expect(up.seen.at(-1)!.headers['x-forwarded-for']).toBe('127.0.0.1');
    ws.close();
    await once(ws, 'close');

    const ws2 = await openClient(`ws://127.0.0.1:${gw.port}/socket`, { host: `pub.localhost:${gw.port}` });
    ws2.send('via host');
    expect(await nextMessage(ws2)).toBe('echo:via host');
    expect(up.seen.at(-1)!.url).toBe('/socket');
    ws2.close();
    await once(ws2, 'close');
  });

  it('rejects a private endpoint without a token with a JSON 401 before the upgrade', async () => {
    const err = (await openClient(`ws://127.0.0.1:${gw.port}/e/priv/`).catch((e) => e)) as { status: number; body: string; headers: Record<string, string> };
    expect(err.status).toBe(401);
    expect(JSON.parse(err.body).error.code).toBe('GW_AUTH_MISSING');
    expect(err.headers['www-authenticate']).toMatch(/^BackendAI realm="priv"/);
    const bad = (await openClient(`ws://127.0.0.1:${gw.port}/e/priv/?token=nope`).catch((e) => e)) as { status: number; body: string };
    expect(bad.status).toBe(401);
    expect(JSON.parse(bad.body).error.code).toBe('GW_AUTH_INVALID');
    const missing = (await openClient(`ws://127.0.0.1:${gw.port}/e/nope/`).catch((e) => e)) as { status: number; body: string };
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body).error.code).toBe('GW_ENDPOINT_NOT_FOUND');
  });

  it('accepts the token in Authorization and strips it before forwarding', async () => {
    const ws = await openClient(`ws://127.0.0.1:${gw.port}/e/priv/a`, { authorization: `Bearer ${token}` });
    ws.send('x');
    expect(await nextMessage(ws)).toBe('echo:x');
    expect(up.seen.at(-1)!.headers.authorization).toBeUndefined();
    ws.close();
    await once(ws, 'close');
  });

  it('accepts the token in the query string for browsers and strips it from the forwarded URL', async () => {
    const ws = await openClient(`ws://127.0.0.1:${gw.port}/e/priv/stream?model=m&token=${encodeURIComponent(token)}&n=2`);
    ws.send('q');
    expect(await nextMessage(ws)).toBe('echo:q');
    expect(up.seen.at(-1)!.url).toBe('/stream?model=m&n=2');
    ws.close();
    await once(ws, 'close');
  });

  it('propagates a close from the client to the upstream and counts open sockets', async () => {
    const ws = await openClient(`ws://127.0.0.1:${gw.port}/e/pub/`);
    await eventually(() => up.sockets.length > 0 && up.sockets.at(-1)!.readyState === WebSocket.OPEN);
    const server = up.sockets.at(-1)!;
    expect(await metricValue(gw, 'pub')).toBe(1);
    const serverClosed = new Promise<number>((resolve) => server.once('close', (code) => resolve(code)));
    ws.close(4001, 'bye');
    expect(await serverClosed).toBe(4001);
    await eventually(async () => (await metricValue(gw, 'pub')) === 0);
  });

  it('propagates a close from the upstream to the client, and an abrupt drop too', async () => {
    const ws = await openClient(`ws://127.0.0.1:${gw.port}/e/pub/`);
    await eventually(() => up.sockets.at(-1)!.readyState === WebSocket.OPEN);
    const clientClosed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    up.sockets.at(-1)!.close(4002, 'server bye');
    expect(await clientClosed).toBe(4002);

    const ws2 = await openClient(`ws://127.0.0.1:${gw.port}/e/pub/`);
    const count = up.sockets.length;
    await eventually(() => up.sockets.length === count && up.sockets.at(-1)!.readyState === WebSocket.OPEN);
    const dropped = new Promise<number>((resolve) => ws2.once('close', (code) => resolve(code)));
    up.sockets.at(-1)!.terminate();
    // The upstream vanished without a close frame: the gateway says so with 1011, not a bare TCP close.
    expect(await dropped).toBe(1011);
  });

  it('closes both sides with 1001 after WS_IDLE_TIMEOUT_MS without traffic, not while traffic flows', async () => {
    const ws = await openClient(`ws://127.0.0.1:${gw.port}/e/pub/`);
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    for (let i = 0; i < 4; i++) {
      await sleep(300);
      ws.send(`keep ${i}`);
      expect(await nextMessage(ws)).toBe(`echo:keep ${i}`);
    }
    expect(ws.readyState).toBe(WebSocket.OPEN);
    const serverSide = up.sockets.at(-1)!;
    const serverClosed = new Promise<number>((resolve) => serverSide.once('close', (code) => resolve(code)));
    const started = Date.now();
    expect(await closed).toBe(1001);
    expect(await serverClosed).toBe(1001);
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
  });

  it('forwards a non-WebSocket Upgrade (h2c) as a plain HTTP/1.1 request', async () => {
    const plain = await startUpstream();
    await gw.admin('PUT', '/v1/endpoints/plain', { public: true, routes: [{ id: 'p', url: plain.url }] });
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: gw.port,
          path: '/e/plain/x?y=1',
          method: 'POST',
          headers: { host: 'localhost', connection: 'Upgrade, HTTP2-Settings', upgrade: 'h2c', 'http2-settings': 'AAMAAABkAAQAAP__', 'content-length': '5' },
        },
        (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        },
      );
      req.on('upgrade', () => reject(new Error('unexpected upgrade')));
      req.on('error', reject);
      req.end('hello');
    });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({ method: 'POST', url: '/x?y=1' });
    expect(plain.received[0].body.toString()).toBe('hello');
    expect(plain.received[0].headers.upgrade).toBeUndefined();
    await plain.close();
  });

  it('waits in the hold queue for a healthy route, like an HTTP request', async () => {
    await gw.admin('PUT', '/v1/endpoints/later', { public: true, routes: [] });
    const opening = openClient(`ws://127.0.0.1:${gw.port}/e/later/`);
    await eventually(async () => (await (await fetch(`${gw.adminUrl}/metrics`)).text()).includes('modelgate_held_requests 1'));
    await gw.admin('PUT', '/v1/endpoints/later/routes', { routes: [{ id: 'w1', url: up.url }] });
    const ws = await opening;
    ws.send('held');
    expect(await nextMessage(ws)).toBe('echo:held');
    ws.close();
    await once(ws, 'close');
  });
});

describe('WebSocket holding limits', () => {
  let gw: TestGateway;
  let up: WsUpstream;

  beforeAll(async () => {
    gw = await startTestGateway({ HOLD_TIMEOUT_MS: '300' });
    up = await startWsUpstream();
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });

  it('answers 503 GW_NO_HEALTHY_ROUTE when no route appears within the hold time', async () => {
    await gw.admin('PUT', '/v1/endpoints/empty', { public: true, routes: [] });
    const err = (await openClient(`ws://127.0.0.1:${gw.port}/e/empty/`).catch((e) => e)) as { status: number; body: string; headers: Record<string, string> };
    expect(err.status).toBe(503);
    expect(JSON.parse(err.body).error.code).toBe('GW_NO_HEALTHY_ROUTE');
    expect(err.headers['retry-after']).toBeDefined();
  });

  it('answers 503 GW_OVERLOADED when the hold queue is full', async () => {
    await gw.admin('PUT', '/v1/endpoints/nohold', { public: true, routes: [], limits: { max_held: 0 } });
    const err = (await openClient(`ws://127.0.0.1:${gw.port}/e/nohold/`).catch((e) => e)) as { status: number; body: string };
    expect(err.status).toBe(503);
    expect(JSON.parse(err.body).error.code).toBe('GW_OVERLOADED');
  });

  it('tells open WebSockets to go (1001) when the gateway drains, without waiting the grace', async () => {
    await gw.admin('PUT', '/v1/endpoints/live', { public: true, routes: [{ id: 'w1', url: up.url }] });
    const ws = await openClient(`ws://127.0.0.1:${gw.port}/e/live/`);
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    const started = Date.now();
    await gw.stop();
    expect(await closed).toBe(1001);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe('WebSocket tunnels and the HTTP timeouts', () => {
  let gw: TestGateway;
  let up: WsUpstream;

  beforeAll(async () => {
    gw = await startTestGateway({ HEADERS_TIMEOUT_MS: '300', REQUEST_BODY_TIMEOUT_MS: '600', WS_IDLE_TIMEOUT_MS: '5000' });
    up = await startWsUpstream();
    await gw.admin('PUT', '/v1/endpoints/long', { public: true, routes: [{ id: 'w1', url: up.url }] });
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });

  it('keeps a busy tunnel open past the HTTP request timeouts (only WS_IDLE_TIMEOUT_MS applies)', async () => {
    const ws = await openClient(`ws://127.0.0.1:${gw.port}/e/long/`);
    const started = Date.now();
    let i = 0;
    while (Date.now() - started < 2000) {
      ws.send(`m${i}`);
      expect(await nextMessage(ws)).toBe(`echo:m${i}`);
      i++;
      await sleep(100);
    }
    expect(ws.readyState).toBe(WebSocket.OPEN);
    ws.close();
    await once(ws, 'close');
  });
});
