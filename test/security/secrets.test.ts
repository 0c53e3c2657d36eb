import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/obs/logger.js';
import { adminCall, startTestGateway, TEST_ADMIN_TOKEN, TEST_TOKEN_SECRET, type TestGateway } from '../support/gateway.js';
import { rawRequest, rawSend } from '../support/raw-client.js';
import { startRawUpstream, type RawUpstream } from '../support/raw-upstream.js';

/**
 * Secrets never leak: endpoint tokens, the admin token and the token secret are absent from
 * every log line (captured at trace, the most verbose level, so every level's lines are in
 * it), from /metrics, from error bodies and from upstream requests; a `?token=` query is not
 * accepted on plain HTTP requests.
 */

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

describe('security: secrets', () => {
  const logs = new Capture();
  let gw: TestGateway;
  let up: RawUpstream;
  let token: string;
  let revoked: string;
  let otherToken: string;
  const bodies: string[] = [];

  const send = async (target: string, lines: string[]) => {
    const res = await rawSend(gw.port, rawRequest('GET', target, [...lines, 'Connection: close']), { idleMs: 3000 });
    for (const r of res.responses) bodies.push(r.body, JSON.stringify(r.headers));
    return res;
  };

  beforeAll(async () => {
    gw = await startTestGateway({ LOG_LEVEL: 'trace', ACCESS_LOG: 'true' }, { logDestination: logs });
    up = await startRawUpstream();
    await gw.admin('PUT', '/v1/endpoints/priv', { public: false, routes: [{ id: 'a', url: up.url }] });
    await gw.admin('PUT', '/v1/endpoints/other', { public: false, routes: [{ id: 'b', url: up.url }] });
    token = (await gw.admin('POST', '/v1/endpoints/priv/tokens', { ttl_seconds: 600, sub: 'alice' })).body.token;
    const r = (await gw.admin('POST', '/v1/endpoints/priv/tokens', { ttl_seconds: 600 })).body;
    revoked = r.token;
    expect((await gw.admin('DELETE', `/v1/endpoints/priv/tokens/${r.jti}`)).status).toBe(204);
    otherToken = (await gw.admin('POST', '/v1/endpoints/other/tokens', { ttl_seconds: 600 })).body.token;
    expect(token).toMatch(/^ey/);

    // Traffic that exercises success and every refusal path.
    await send('/', ['Host: priv.localhost', `Authorization: BackendAI ${token}`]);
    await send('/', ['Host: priv.localhost', `Authorization: Bearer ${token}`]);
    await send('/', ['Host: priv.localhost', `Authorization: BackendAI ${token.slice(0, -3)}abc`]);
    await send('/', ['Host: priv.localhost', `Authorization: BackendAI ${revoked}`]);
    await send('/', ['Host: priv.localhost', `Authorization: BackendAI ${otherToken}`]);
    await send('/', ['Host: priv.localhost', `Authorization: Weird ${token}`]);
    await send(`/?token=${token}`, ['Host: priv.localhost']);
    await send('/', ['Host: priv.localhost', `Authorization: Bearer ${TEST_ADMIN_TOKEN}`]);
    await send('/', ['Host: priv.localhost', `Authorization: BackendAI ${TEST_TOKEN_SECRET}`]);
    await send('/', ['Host: priv.localhost', `Cookie: session=${token}`, `Proxy-Authorization: Bearer ${token}`, `Authorization: BackendAI ${token}`]);
    // Admin API: wrong tokens, bad bodies carrying secrets, internal lookups.
    for (const bad of [`${TEST_ADMIN_TOKEN}x`, token, TEST_TOKEN_SECRET]) {
      const res = await adminCall(gw.adminUrl, bad, 'GET', '/v1/endpoints');
      bodies.push(JSON.stringify(res.body));
    }
    const invalid = await gw.admin('PUT', '/v1/endpoints/priv', { public: 'nope', token, secret: TEST_TOKEN_SECRET });
    bodies.push(JSON.stringify(invalid.body));
    bodies.push(JSON.stringify((await gw.admin('GET', '/v1/endpoints/priv/tokens')).body));
    bodies.push(JSON.stringify((await gw.admin('GET', '/v1/endpoints/priv')).body));
    await new Promise((resolve) => setTimeout(resolve, 100));
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });

  const secrets = () => ({
    token,
    'token signature': token.split('.')[2],
    'revoked token': revoked,
    'other token': otherToken,
    'admin token': TEST_ADMIN_TOKEN,
    'token secret': TEST_TOKEN_SECRET,
  });

  it('did log at trace and debug (the capture works)', () => {
    expect(logs.text).toContain('"level":"info"');
    expect(logs.text).toMatch(/"level":"(debug|trace)"/);
    expect(logs.text).toContain('"request_id"');
  });

  it('no secret appears in any log line', () => {
    for (const [name, value] of Object.entries(secrets())) expect(logs.text.includes(value), name).toBe(false);
  });

  it('no secret appears in /metrics', async () => {
    const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    expect(text).toContain('gateway_');
    for (const [name, value] of Object.entries(secrets())) expect(text.includes(value), name).toBe(false);
  });

  it('no secret appears in error bodies or response headers', () => {
    const all = bodies.join('\n');
    expect(all).toContain('GW_AUTH_');
    expect(all).toContain('ADM_');
    for (const [name, value] of Object.entries(secrets())) expect(all.includes(value), name).toBe(false);
  });

  it('no token reaches the upstream of a private endpoint (Authorization and Proxy-Authorization stripped)', () => {
    expect(up.requests.length).toBeGreaterThanOrEqual(3);
    const wire = up.connections.map((c) => c.data.toString('latin1')).join('');
    expect(wire).not.toMatch(/authorization/i);
    // Only the Cookie header the client chose to send carries it; nothing the gateway added.
    const withoutCookies = wire.replace(/^cookie:.*$/gim, '');
    for (const [name, value] of Object.entries(secrets())) expect(withoutCookies.includes(value), name).toBe(false);
  });

  it('a ?token= query is not accepted on a plain HTTP request', async () => {
    const before = up.requests.length;
    for (const q of [`?token=${token}`, `?access_token=${token}`, `?x=1&token=${encodeURIComponent(token)}`]) {
      const res = await send(`/v1/models${q}`, ['Host: priv.localhost']);
      expect(res.responses[0].status).toBe(401);
      expect(JSON.parse(res.responses[0].body).error.code).toBe('GW_AUTH_MISSING');
    }
    expect(up.requests.length).toBe(before);
  });

  it('the logger redacts secret fields at every level', () => {
    for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const) {
      const out = new Capture();
      const logger = createLogger(level, out);
      logger[level](
        {
          authorization: `Bearer ${token}`,
          headers: { authorization: token },
          req: { headers: { authorization: token } },
          token,
          admin_token: TEST_ADMIN_TOKEN,
          secret: TEST_TOKEN_SECRET,
          ADMIN_TOKEN: TEST_ADMIN_TOKEN,
          TOKEN_SECRET: TEST_TOKEN_SECRET,
          settings: { ADMIN_TOKEN: TEST_ADMIN_TOKEN, TOKEN_SECRET: TEST_TOKEN_SECRET },
        },
        'probe',
      );
      logger.flush?.();
      expect(out.text, level).toContain('probe');
      expect(out.text, level).toContain('[redacted]');
      for (const [name, value] of Object.entries(secrets())) expect(out.text.includes(value), `${level}: ${name}`).toBe(false);
    }
  });
});
