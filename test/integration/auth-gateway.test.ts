import { base64url } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { startUpstream, type TestUpstream } from '../support/upstream.js';

/** Tokens through the real data plane: every bad token gets its code and reaches nothing. */

let gw: TestGateway;
let up: TestUpstream;
let token: string;
let jti: string;

async function call(path: string, headers: Record<string, string> = {}, method = 'GET') {
  const res = await fetch(`${gw.url}${path}`, { method, headers });
  const text = await res.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.status, body, headers: res.headers };
}

beforeAll(async () => {
  gw = await startTestGateway();
  up = await startUpstream();
  expect((await gw.admin('PUT', '/v1/endpoints/llm', { routes: [{ url: up.url }] })).status).toBe(201);
  expect((await gw.admin('PUT', '/v1/endpoints/other', { routes: [{ url: up.url }] })).status).toBe(201);
  expect((await gw.admin('PUT', '/v1/endpoints/pub', { public: true, routes: [{ url: up.url }] })).status).toBe(201);
  const issued = await gw.admin('POST', '/v1/endpoints/llm/tokens', { duration: '1h', sub: 'alice' });
  expect(issued.status).toBe(201);
  ({ token, jti } = issued.body);
});

afterAll(async () => {
  await gw?.stop();
  await up?.close();
});

describe('private endpoint through the gateway', () => {
  it('a valid token reaches the upstream without Authorization', async () => {
    const before = up.received.length;
    const res = await call('/e/llm/v1/models', { authorization: `BackendAI ${token}` });
    expect(res.status).toBe(200);
    expect(up.received.length).toBe(before + 1);
    expect(up.received.at(-1)!.headers.authorization).toBeUndefined();
    expect((await call('/e/llm/x', { authorization: `Bearer ${token}` })).status).toBe(200);
  });

  it('each bad input gets its exact code, a 401 challenge, and nothing reaches the upstream', async () => {
    const other = await gw.admin('POST', '/v1/endpoints/other/tokens', { duration: '1h' });
    const none = `${base64url.encode('{"alg":"none"}')}.${base64url.encode(JSON.stringify({ aud: 'x', exp: 9999999999 }))}.`;
    const cases: [Record<string, string>, number, string][] = [
      [{}, 401, 'GW_AUTH_MISSING'],
      [{ authorization: '' }, 401, 'GW_AUTH_MISSING'],
      [{ authorization: `Basic ${token}` }, 401, 'GW_AUTH_MISSING'],
      [{ authorization: `BackendAI  ${token}` }, 401, 'GW_AUTH_INVALID'],
      [{ authorization: `BackendAI ${'a'.repeat(9000)}.b.c` }, 401, 'GW_AUTH_INVALID'],
      [{ authorization: 'BackendAI aGVsbG8.d29ybGQ.Zm9v' }, 401, 'GW_AUTH_INVALID'],
      [{ authorization: `BackendAI ${none}` }, 401, 'GW_AUTH_INVALID'],
      [{ authorization: `BackendAI ${other.body.token}` }, 403, 'GW_AUTH_FORBIDDEN'],
    ];
    const before = up.received.length;
    for (const [headers, status, code] of cases) {
      const res = await call('/e/llm/', headers);
      expect(res.status, code).toBe(status);
      expect(res.body.error.code).toBe(code);
      expect(res.headers.get('www-authenticate')).toMatch(/^BackendAI realm="llm"/);
    }
    expect(up.received.length).toBe(before);
  });

  it('CORS preflight passes without a token', async () => {
    const res = await call('/e/llm/v1/chat', { origin: 'http://app.example', 'access-control-request-method': 'POST' }, 'OPTIONS');
    expect(res.status).toBe(200);
  });

  it('a public endpoint passes Authorization through untouched', async () => {
    const res = await call('/e/pub/', { authorization: 'Bearer client-own-key' });
    expect(res.status).toBe(200);
    expect(up.received.at(-1)!.headers.authorization).toBe('Bearer client-own-key');
  });

  it('revocation stops a cached token', async () => {
    expect((await call('/e/llm/', { authorization: `BackendAI ${token}` })).status).toBe(200);
    expect((await gw.admin('DELETE', `/v1/endpoints/llm/tokens/${jti}`)).status).toBe(204);
    const res = await call('/e/llm/', { authorization: `BackendAI ${token}` });
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('GW_AUTH_REVOKED');
  });
});
