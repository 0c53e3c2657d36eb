import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { rawRequest, rawSend } from '../support/raw-client.js';
import { startRawUpstream, type RawUpstream } from '../support/raw-upstream.js';

/** CONNECT and TRACE are never proxied (405); every other method node:http parses passes through. */

describe('security: methods', () => {
  let gw: TestGateway;
  let up: RawUpstream;

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startRawUpstream();
    await gw.admin('PUT', '/v1/endpoints/pub', { public: true, routes: [{ id: 'a', url: up.url }] });
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });
  beforeEach(() => up.reset());

  it('answers CONNECT (authority-form) with a JSON 405 and closes', async () => {
    const res = await rawSend(gw.port, 'CONNECT pub.localhost:443 HTTP/1.1\r\nHost: pub.localhost:443\r\n\r\n', { idleMs: 2000 });
    expect(res.responses.map((r) => r.status)).toEqual([405]);
    expect(JSON.parse(res.responses[0].body).error.code).toBe('GW_METHOD_NOT_ALLOWED');
    expect(res.closed).toBe(true);
    expect(up.connections).toEqual([]);
  });

  it('answers CONNECT to an upstream address with 405 too (no open tunnel)', async () => {
    const res = await rawSend(gw.port, `CONNECT 127.0.0.1:${up.port} HTTP/1.1\r\nHost: 127.0.0.1:${up.port}\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n`, { idleMs: 2000 });
    expect(res.responses.map((r) => r.status)).toEqual([405]);
    expect(res.closed).toBe(true);
    expect(up.connections).toEqual([]);
  });

  it('answers TRACE with 405 and never forwards it (no header reflection)', async () => {
    for (const target of ['/', '/e/pub/']) {
      const res = await rawSend(gw.port, rawRequest('TRACE', target, ['Host: pub.localhost', 'Cookie: secret=1', 'Connection: close']));
      expect(res.responses.map((r) => r.status)).toEqual([405]);
      expect(JSON.parse(res.responses[0].body).error.code).toBe('GW_METHOD_NOT_ALLOWED');
      expect(res.text).not.toContain('secret=1');
    }
    expect(up.requests).toEqual([]);
  });

  it('refuses methods node:http does not know, and lower-case spellings, with 400', async () => {
    for (const method of ['FOO', 'get', 'TRACK', 'G\x00ET']) {
      const res = await rawSend(gw.port, rawRequest(method, '/', ['Host: pub.localhost', 'Connection: close']));
      expect(res.responses.map((r) => r.status), method).toEqual([400]);
    }
    expect(up.requests).toEqual([]);
  });

  const passing = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'PROPFIND', 'SEARCH', 'QUERY', 'PURGE'];
  for (const method of passing) {
    it(`passes ${method} through unchanged`, async () => {
      const body = method === 'POST' || method === 'PUT' || method === 'PATCH' || method === 'QUERY' ? 'abc' : '';
      const lines = ['Host: pub.localhost', 'Connection: close', ...(body ? [`Content-Length: ${body.length}`] : [])];
      const res = await rawSend(gw.port, rawRequest(method, '/m', lines, body));
      expect(res.responses[0]?.status).toBe(200);
      expect(up.requests.map((r) => r.line)).toEqual([`${method} /m HTTP/1.1`]);
      expect(up.requests[0].body.toString()).toBe(body);
    });
  }
});
