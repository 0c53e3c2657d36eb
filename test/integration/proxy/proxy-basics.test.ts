import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { startUpstream, type TestUpstream } from '../../support/upstream.js';
import { eventually } from '../../support/eventually.js';

/** Raw request through the gateway with full control of the Host header. */
function call(port: number, opts: { host?: string; path?: string; method?: string; headers?: Record<string, string>; body?: string }) {
  return new Promise<{ status: number; headers: Record<string, any>; body: string }>((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: opts.path ?? '/', method: opts.method ?? 'GET', headers: { host: opts.host ?? 'localhost', ...opts.headers } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe('proxy basics', () => {
  let gw: TestGateway;
  let a: TestUpstream;
  let b: TestUpstream;

  beforeAll(async () => {
    gw = await startTestGateway();
    a = await startUpstream(undefined, { name: 'a' });
    b = await startUpstream(undefined, { name: 'b' });
    const put = await gw.admin('PUT', '/v1/endpoints/chat', { public: true, routes: [{ id: 'a', url: a.url }] });
    expect(put.status).toBe(201);
    expect(put.body.url).toBe(`http://chat.localhost:${gw.port}/`);
  });
  afterAll(async () => {
    await gw?.stop();
    await a?.close();
    await b?.close();
  });

  it('routes by host name and proxies the path and query as is', async () => {
    const res = await call(gw.port, { host: `chat.localhost:${gw.port}`, path: '/v1/models?x=1' });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ upstream: 'a', method: 'GET', url: '/v1/models?x=1' });
  });

  it('routes by /e/{name}/ prefix and strips it', async () => {
    expect(JSON.parse((await call(gw.port, { path: '/e/chat/v1/x?y=2' })).body).url).toBe('/v1/x?y=2');
    expect(JSON.parse((await call(gw.port, { path: '/e/chat' })).body).url).toBe('/');
    expect(JSON.parse((await call(gw.port, { path: '/e/chat?q=1' })).body).url).toBe('/?q=1');
  });

  it('host names are case-insensitive and may end with a dot', async () => {
    expect((await call(gw.port, { host: 'CHAT.LocalHost' })).status).toBe(200);
    expect((await call(gw.port, { host: 'chat.localhost.' })).status).toBe(200);
  });

  it('answers unknown endpoints with the JSON error shape', async () => {
    for (const opts of [{ host: 'nope.localhost' }, { path: '/e/nope/' }, { path: '/other' }]) {
      const res = await call(gw.port, opts);
      expect(res.status).toBe(404);
      expect(res.headers['content-type']).toBe('application/json');
      const body = JSON.parse(res.body);
      expect(body.error.code).toBe('GW_ENDPOINT_NOT_FOUND');
      expect(body.error.request_id).toBe(res.headers['x-request-id']);
    }
  });

  it('refuses a malformed endpoint host name with 400', async () => {
    const res = await call(gw.port, { host: 'bad_name.localhost' });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).error.code).toBe('GW_BAD_REQUEST');
  });

  it('serves /healthz and /readyz itself', async () => {
    expect(JSON.parse((await call(gw.port, { path: '/healthz' })).body)).toEqual({ status: 'ok' });
    const ready = await call(gw.port, { path: '/readyz' });
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body).status).toBe('ready');
  });

  it('drops hop-by-hop headers, sets X-Forwarded-*, keeps or generates X-Request-Id', async () => {
    const before = a.received.length;
    const res = await call(gw.port, {
      host: 'chat.localhost',
      headers: {
        connection: 'keep-alive, x-secret-hop',
        'x-secret-hop': '1',
        'keep-alive': 'timeout=5',
        'proxy-authorization': 'Basic abc',
        'x-forwarded-for': '6.6.6.6',
        'x-forwarded-host': 'evil.example',
        'x-request-id': 'my-id-123',
        'x-custom': 'kept',
      },
    });
    expect(res.headers['x-request-id']).toBe('my-id-123');
    const got = a.received[before].headers;
    expect(got['x-secret-hop']).toBeUndefined();
    expect(got['keep-alive']).toBeUndefined();
    expect(got['proxy-authorization']).toBeUndefined();
    expect(got['x-forwarded-for']).toBe('127.0.0.1');
    expect(got['x-forwarded-host']).toBe('chat.localhost');
    expect(got['x-forwarded-proto']).toBe('http');
    expect(got['x-request-id']).toBe('my-id-123');
    expect(got['x-custom']).toBe('kept');

    const generated = await call(gw.port, { host: 'chat.localhost', headers: { 'x-request-id': 'bad id with spaces' } });
    expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('streams request bodies to the upstream (content-length and chunked)', async () => {
    const before = a.received.length;
    const res = await call(gw.port, { host: 'chat.localhost', method: 'POST', path: '/v1/chat', body: '{"prompt":"hi"}', headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(200);
    expect(a.received[before].body.toString()).toBe('{"prompt":"hi"}');

    const chunked = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: gw.port, path: '/up', method: 'POST', headers: { host: 'chat.localhost', 'transfer-encoding': 'chunked' } }, (r) => {
        r.resume();
        r.on('end', () => resolve(r.statusCode!));
      });
      req.on('error', reject);
      req.write('part1-');
      setTimeout(() => req.end('part2'), 20);
    });
    expect(chunked).toBe(200);
    expect(a.received.at(-1)!.body.toString()).toBe('part1-part2');
  });

  it('applies a route change at once and balances by weight among healthy routes', async () => {
    const put = await gw.admin('PUT', '/v1/endpoints/chat/routes', {
      routes: [
        { id: 'a', url: a.url, weight: 1 },
        { id: 'b', url: b.url, weight: 3 },
        { id: 'c', url: 'http://127.0.0.1:9', weight: 5, status: 'unhealthy' },
      ],
    });
    expect(put.status).toBe(200);
    expect(put.body.version).toBe(2);
    const counts: Record<string, number> = { a: 0, b: 0 };
    await eventually(async () => JSON.parse((await call(gw.port, { host: 'chat.localhost' })).body).upstream === 'b');
    for (let i = 0; i < 200; i++) counts[JSON.parse((await call(gw.port, { host: 'chat.localhost' })).body).upstream]++;
    // Sequential requests have no outstanding work, so p2c follows the weighted draws: ~1:3.
    expect(counts.a + counts.b).toBe(200);
    expect(counts.b).toBeGreaterThan(counts.a * 1.5);
    expect(counts.a).toBeGreaterThan(10);
  });

  it('holds no traffic for weight 0 routes and round-robins exactly when asked', async () => {
    await gw.admin('PATCH', '/v1/endpoints/chat', { balancer: 'round_robin', routes: [{ id: 'a', url: a.url, weight: 1 }, { id: 'b', url: b.url, weight: 0 }] });
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) seen.add(JSON.parse((await call(gw.port, { host: 'chat.localhost' })).body).upstream);
    expect([...seen]).toEqual(['a']);
    await gw.admin('PATCH', '/v1/endpoints/chat/routes/b', { weight: 1 });
    const order: string[] = [];
    for (let i = 0; i < 6; i++) order.push(JSON.parse((await call(gw.port, { host: 'chat.localhost' })).body).upstream);
    expect(order.filter((u) => u === 'a').length).toBe(3);
    expect(order.filter((u) => u === 'b').length).toBe(3);
  });

  it('passes upstream errors through untouched', async () => {
    const bad = await startUpstream((_req, res) => {
      res.writeHead(503, { 'content-type': 'text/plain', 'x-upstream': 'yes' });
      res.end('model overloaded');
    });
    await gw.admin('PUT', '/v1/endpoints/bad', { public: true, routes: [{ url: bad.url }] });
    const res = await call(gw.port, { host: 'bad.localhost' });
    expect(res.status).toBe(503);
    expect(res.body).toBe('model overloaded');
    expect(res.headers['x-upstream']).toBe('yes');
    await bad.close();
  });
});
