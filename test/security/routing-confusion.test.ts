import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startTestGateway, TEST_ADMIN_TOKEN, type TestGateway } from '../support/gateway.js';
import { rawRequest, rawSend, type RawResult } from '../support/raw-client.js';
import { startRawUpstream, type RawUpstream } from '../support/raw-upstream.js';

/**
 * Routing confusion: the endpoint comes from the Host (or the absolute-form authority, which
 * RFC 9112 says replaces it) or the `/e/{name}/` prefix alone. Encoded or dot-segment paths,
 * backslashes, X-Forwarded-Host and Forwarded never move a request to another endpoint, never
 * reach the private endpoint without its token, and never reach the admin API.
 */

describe('security: routing confusion', () => {
  let gw: TestGateway;
  let pub: RawUpstream;
  let priv: RawUpstream;
  let pubToken: string;
  let privToken: string;

  beforeAll(async () => {
    gw = await startTestGateway();
    pub = await startRawUpstream();
    priv = await startRawUpstream();
    // The public route has a base path, so a climbing path would be visible upstream.
    expect((await gw.admin('PUT', '/v1/endpoints/pub', { public: true, routes: [{ id: 'p', url: `${pub.url}/base` }] })).status).toBe(201);
    expect((await gw.admin('PUT', '/v1/endpoints/priv', { public: false, routes: [{ id: 'q', url: priv.url }] })).status).toBe(201);
    await gw.admin('PUT', '/v1/endpoints/other', { public: false, routes: [{ id: 'o', url: priv.url }] });
    privToken = (await gw.admin('POST', '/v1/endpoints/priv/tokens', { ttl_seconds: 600 })).body.token;
    pubToken = (await gw.admin('POST', '/v1/endpoints/other/tokens', { ttl_seconds: 600 })).body.token;
    expect(privToken).toBeTruthy();
  });
  afterAll(async () => {
    await gw?.stop();
    await pub?.close();
    await priv?.close();
  });
  beforeEach(() => {
    pub.reset();
    priv.reset();
  });

  const send = (target: string, lines: string[], method = 'GET'): Promise<RawResult> =>
    rawSend(gw.port, rawRequest(method, target, [...lines, 'Connection: close']), { idleMs: 3000 });
  const status = (r: RawResult) => r.responses[0]?.status;
  const code = (r: RawResult) => JSON.parse(r.responses[0].body).error?.code;

  describe('dot segments and encodings', () => {
    const climbing = [
      '/e/pub/../priv/',
      '/e/pub/..',
      '/e/pub/./x',
      '/e/pub/%2e%2e/priv/',
      '/e/pub/%2E%2E/priv/',
      '/e/pub/.%2e/x',
      '/e/pub/%2e./x',
      '/e/pub/a/..%2f..%2fpriv',
      '/e/pub/a\\..\\..\\x',
      '/e/pub/a%5c..%5cx',
    ];
    for (const target of climbing) {
      it(`refuses ${target} with 400 and forwards nothing`, async () => {
        const res = await send(target, ['Host: gw.example']);
        expect(status(res)).toBe(400);
        expect(code(res)).toBe('GW_BAD_REQUEST');
        expect(pub.requests.length + priv.requests.length).toBe(0);
      });
    }

    it('refuses dot segments under host addressing too', async () => {
      for (const target of ['/../x', '/a/%2e%2e/b', '/a/./b']) {
        expect(status(await send(target, ['Host: pub.localhost']))).toBe(400);
      }
      expect(pub.requests.length).toBe(0);
    });

    const notFound = ['/e/pub%2fpriv/', '/e/pub%2Fx', '/e/%70ub/', '/e/PUB/', '/e//pub/', '/e/pub\\x', '/e/pub%00/', '/E/pub/', '/e/priv.localhost/'];
    for (const target of notFound) {
      it(`does not decode ${JSON.stringify(target)} into an endpoint name (404)`, async () => {
        const res = await send(target, ['Host: gw.example']);
        expect(status(res)).toBe(404);
        expect(code(res)).toBe('GW_ENDPOINT_NOT_FOUND');
        expect(pub.requests.length + priv.requests.length).toBe(0);
      });
    }

    it('keeps dots that are not segments, and anything in the query, as is', async () => {
      const res = await send('/e/pub/v1/file.tar.gz/...x/a..b?next=../../priv&x=%2e%2e', ['Host: gw.example']);
      expect(status(res)).toBe(200);
      expect(pub.requests.map((r) => r.target)).toEqual(['/base/v1/file.tar.gz/...x/a..b?next=../../priv&x=%2e%2e']);
    });
  });

  describe('headers that try to pick the endpoint', () => {
    it('X-Forwarded-Host and Forwarded never change the endpoint', async () => {
      const res = await send('/x', ['Host: pub.localhost', 'X-Forwarded-Host: priv.localhost', 'Forwarded: host=priv.localhost']);
      expect(status(res)).toBe(200);
      expect(pub.requests.length).toBe(1);
      expect(priv.requests.length).toBe(0);
      const viaPrefix = await send('/e/pub/x', ['Host: gw.example', 'X-Forwarded-Host: priv.localhost', 'X-Original-URL: /e/priv/', 'X-Rewrite-URL: /e/priv/']);
      expect(status(viaPrefix)).toBe(200);
      expect(priv.requests.length).toBe(0);
    });

    it('the Host wins over a /e/{name}/ path (no double routing)', async () => {
      const res = await send('/e/priv/secret', ['Host: pub.localhost']);
      expect(status(res)).toBe(200);
      expect(pub.requests.map((r) => r.target)).toEqual(['/base/e/priv/secret']);
      expect(priv.requests.length).toBe(0);
    });

    it('malformed Host values are refused, never matched loosely', async () => {
      for (const host of ['pub.localhost@priv.localhost', 'priv.localhost/../pub.localhost', 'priv.localhost pub.localhost', 'priv.localhost\\x']) {
        const res = await send('/', [`Host: ${host}`]);
        expect(status(res), host).toBe(400);
      }
      for (const host of ['priv.localhost.evil.com', 'xpriv.localhost:1:2', 'priv_x.localhost', 'a.priv.localhost']) {
        const res = await send('/', [`Host: ${host}`]);
        expect([400, 404], host).toContain(status(res));
      }
      expect(pub.requests.length + priv.requests.length).toBe(0);
    });
  });

  describe('absolute-form targets', () => {
    it('are routed by their authority (RFC 9112 §3.2.2) and forwarded in origin-form', async () => {
      const res = await send('http://pub.localhost/v1/x?y=1', ['Host: priv.localhost']);
      expect(status(res)).toBe(200);
      expect(pub.requests.map((r) => r.line)).toEqual(['GET /base/v1/x?y=1 HTTP/1.1']);
      expect(pub.headerValues(pub.requests[0], 'x-forwarded-host')).toEqual(['pub.localhost']);
      expect(priv.requests.length).toBe(0);
    });

    it('still need the token of the endpoint they name', async () => {
      const res = await send('http://priv.localhost/x', ['Host: pub.localhost']);
      expect(status(res)).toBe(401);
      expect(code(res)).toBe('GW_AUTH_MISSING');
      const ok = await send('HTTP://PRIV.localhost/x', ['Host: pub.localhost', `Authorization: BackendAI ${privToken}`]);
      expect(status(ok)).toBe(200);
      expect(priv.requests.map((r) => r.line)).toEqual(['GET /x HTTP/1.1']);
      expect(pub.requests.length).toBe(0);
    });

    it('with userinfo, another scheme, no authority or asterisk-form are refused with 400', async () => {
      for (const target of ['http://user@pub.localhost/', 'http://u:p@pub.localhost/', 'ftp://pub.localhost/', 'https:///x', 'http:pub.localhost/', 'pub.localhost/x']) {
        const res = await send(target, ['Host: pub.localhost']);
        expect(status(res), target).toBe(400);
      }
      expect(status(await send('*', ['Host: pub.localhost'], 'OPTIONS'))).toBe(400);
      expect(pub.requests.length + priv.requests.length).toBe(0);
    });

    it('a path starting with // is a path of the Host endpoint, not an authority', async () => {
      const res = await send('//priv.localhost/x', ['Host: pub.localhost']);
      expect(status(res)).toBe(200);
      expect(pub.requests.map((r) => r.target)).toEqual(['/base//priv.localhost/x']);
      expect(priv.requests.length).toBe(0);
    });
  });

  describe('private endpoints and the admin API', () => {
    it('never reach the private endpoint without its own token', async () => {
      const attempts: [string, string[]][] = [
        ['/e/priv/', ['Host: gw.example']],
        ['/', ['Host: priv.localhost']],
        ['/', ['Host: priv.localhost', `Authorization: BackendAI ${pubToken}`]],
        ['/', ['Host: priv.localhost', `Authorization: Bearer ${TEST_ADMIN_TOKEN}`]],
        ['/', ['Host: priv.localhost', `Authorization: BackendAI ${privToken}x`]],
        ['/', ['Host: priv.localhost', `Authorization: Basic ${Buffer.from(`u:${privToken}`).toString('base64')}`]],
        [`/?token=${privToken}`, ['Host: priv.localhost']],
        [`/e/priv/?access_token=${privToken}`, ['Host: gw.example']],
        ['/e/pub/../priv/', ['Host: gw.example']],
        ['/', ['Host: priv.localhost', 'X-Forwarded-Host: pub.localhost', 'Forwarded: host=pub.localhost']],
      ];
      for (const [target, lines] of attempts) {
        const res = await send(target, lines);
        expect([400, 401, 403], `${target} ${lines.join(' ')}`).toContain(status(res));
      }
      expect(priv.requests.length).toBe(0);
    });

    it('never reach the admin API through the data plane', async () => {
      const adminPort = gw.running.adminPort;
      const attempts: [string, string[]][] = [
        ['/v1/endpoints', ['Host: gw.example', `Authorization: Bearer ${TEST_ADMIN_TOKEN}`]],
        ['/v1/endpoints', [`Host: 127.0.0.1:${adminPort}`, `Authorization: Bearer ${TEST_ADMIN_TOKEN}`]],
        [`http://127.0.0.1:${adminPort}/v1/endpoints`, ['Host: gw.example', `Authorization: Bearer ${TEST_ADMIN_TOKEN}`]],
        ['/e/pub/../../v1/endpoints', ['Host: gw.example', `Authorization: Bearer ${TEST_ADMIN_TOKEN}`]],
        ['/metrics', ['Host: gw.example']],
      ];
      for (const [target, lines] of attempts) {
        const res = await send(target, lines);
        expect([400, 404], target).toContain(status(res));
        expect(res.text).not.toContain('"endpoints"');
        expect(res.text).not.toContain('gateway_');
      }
    });
  });
});
