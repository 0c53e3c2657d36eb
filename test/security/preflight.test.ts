import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { rawRequest, rawSend } from '../support/raw-client.js';
import { startRawUpstream, type RawUpstream } from '../support/raw-upstream.js';

/**
 * Issue 21 finding 4: only a real CORS preflight passes a private endpoint without a token:
 * `OPTIONS` with `Origin` and `Access-Control-Request-Method` and no body. It reaches the
 * upstream with only the headers a preflight needs.
 */
describe('security: CORS preflights on private endpoints', () => {
  let gw: TestGateway;
  let up: RawUpstream;

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startRawUpstream();
    expect((await gw.admin('PUT', '/v1/endpoints/priv', { public: false, routes: [{ id: 'a', url: up.url }] })).status).toBe(201);
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });

  const PREFLIGHT = ['Host: gw', 'Origin: http://app.example', 'Access-Control-Request-Method: POST'];

  it.each([
    ['a Content-Length body', rawRequest('OPTIONS', '/e/priv/v1/chat', [...PREFLIGHT, 'Content-Length: 11'], '{"prompt":1}'.slice(0, 11))],
    ['a chunked body', rawRequest('OPTIONS', '/e/priv/v1/chat', [...PREFLIGHT, 'Transfer-Encoding: chunked'], '5\r\nhello\r\n0\r\n\r\n')],
    ['an empty chunked body', rawRequest('OPTIONS', '/e/priv/v1/chat', [...PREFLIGHT, 'Transfer-Encoding: chunked'], '0\r\n\r\n')],
    ['no Origin', rawRequest('OPTIONS', '/e/priv/v1/chat', ['Host: gw', 'Access-Control-Request-Method: POST'])],
    ['another method', rawRequest('POST', '/e/priv/v1/chat', [...PREFLIGHT, 'Content-Length: 2'], '{}')],
  ])('needs a token for an OPTIONS "preflight" with %s', async (_what, payload) => {
    up.reset();
    const res = await rawSend(gw.port, payload, { idleMs: 500 });
    expect(res.responses[0]?.status).toBe(401);
    expect(JSON.parse(res.responses[0].body).error.code).toBe('GW_AUTH_MISSING');
    expect(up.requests).toHaveLength(0);
  });

  it('passes a real preflight without a token, forwarding only what a preflight needs', async () => {
    up.reset();
    const res = await rawSend(
      gw.port,
      rawRequest('OPTIONS', '/e/priv/v1/chat', [
        ...PREFLIGHT,
        'Access-Control-Request-Headers: content-type, authorization',
        'Cookie: session=secret',
        'X-Api-Key: k',
        'Content-Length: 0',
      ]),
      { idleMs: 500 },
    );
    expect(res.responses[0]?.status).toBe(200);
    expect(up.requests).toHaveLength(1);
    const names = up.requests[0].headers.map(([n]) => n.toLowerCase());
    expect(names).toContain('origin');
    expect(names).toContain('access-control-request-method');
    expect(names).toContain('access-control-request-headers');
    expect(names).not.toContain('cookie');
    expect(names).not.toContain('x-api-key');
    expect(up.requests[0].body.length).toBe(0);
  });
});
