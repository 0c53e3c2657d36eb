import { networkInterfaces } from 'node:os';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, TEST_ADMIN_TOKEN, type TestGateway } from '../support/gateway.js';
import { rawRequest, rawSend, type RawResponse } from '../support/raw-client.js';

/**
 * Issue 21, finding 7 (and the admin half of 8): the admin listener answers only to its own
 * names (DNS rebinding: a web page whose name resolves to 127.0.0.1 must not read /metrics or
 * drive /v1), `ADMIN_METRICS_AUTH=true` puts /metrics behind the admin token, and an
 * absolute-form target with userinfo is a clean 400, never a 500 with a stack in the log.
 */

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

const AUTH = `Authorization: Bearer ${TEST_ADMIN_TOKEN}`;

async function get(port: number, target: string, headers: string[], method = 'GET', body = ''): Promise<RawResponse> {
  const lines = [...headers, 'Connection: close'];
  if (body) lines.push('Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body)}`);
  const res = await rawSend(port, rawRequest(method, target, lines, body), { idleMs: 2000 });
  expect(res.responses.length, res.text).toBe(1);
  return res.responses[0];
}

function expectMisdirected(res: RawResponse): void {
  expect(res.status).toBe(421);
  expect(res.headers['content-type']).toContain('application/json');
  expect(JSON.parse(res.body).error.code).toBe('ADM_MISDIRECTED');
}

describe('security: admin listener Host allow-list (default ADMIN_HOST=127.0.0.1)', () => {
  const logs = new Capture();
  let gw: TestGateway;
  let port: number;

  beforeAll(async () => {
    gw = await startTestGateway({ LOG_LEVEL: 'info', ADMIN_ALLOWED_HOSTS: 'admin.internal, Ops.Example.com' }, { logDestination: logs });
    port = gw.running.adminPort;
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it.each(['evil.example', `evil.example:${'PORT'}`, 'attacker.localhost.evil.example', 'localhost.evil.example', '127.0.0.1.nip.io', 'admin.internal.evil.example'])(
    'refuses Host %s with 421 ADM_MISDIRECTED on /metrics, /healthz and /v1',
    async (host) => {
      const h = host.replace('PORT', String(port));
      expectMisdirected(await get(port, '/metrics', [`Host: ${h}`]));
      expectMisdirected(await get(port, '/healthz', [`Host: ${h}`]));
      expectMisdirected(await get(port, '/v1/endpoints', [`Host: ${h}`, AUTH]));
      expectMisdirected(await get(port, '/v1/endpoints/rebound', [`Host: ${h}`, AUTH], 'PUT', '{"public":true}'));
    },
  );

  it('a refused write changes nothing', async () => {
    expect((await gw.admin('GET', '/v1/endpoints/rebound')).status).toBe(404);
  });

  it.each(['127.0.0.1', '127.0.0.1:PORT', 'localhost', 'localhost:PORT', 'LOCALHOST:PORT', 'localhost.', '[::1]', '[::1]:PORT', 'admin.internal:PORT', 'ops.example.com'])(
    'accepts its own name %s',
    async (host) => {
      const h = host.replace('PORT', String(port));
      expect((await get(port, '/healthz', [`Host: ${h}`])).status).toBe(200);
      expect((await get(port, '/v1/endpoints', [`Host: ${h}`, AUTH])).status).toBe(200);
    },
  );

  it('judges an absolute-form target by its own authority (RFC 9112 §3.2.2)', async () => {
    expectMisdirected(await get(port, 'http://evil.example/metrics', ['Host: 127.0.0.1']));
    const ok = await get(port, `http://127.0.0.1:${port}/v1/endpoints`, ['Host: evil.example', AUTH]);
    expect(ok.status).toBe(200);
  });

  it('absolute-form with userinfo is a clean 400 ADM_INVALID, no stack in the log', async () => {
    const before = logs.text.length;
    for (const [method, body] of [
      ['GET', ''],
      ['PUT', '{"public":true}'],
    ] as const) {
      const res = await get(port, `http://user:pw@127.0.0.1:${port}/v1/endpoints/creds`, [`Host: 127.0.0.1:${port}`, AUTH], method, body);
      expect(res.status).toBe(400);
      const json = JSON.parse(res.body);
      expect(json.error.code).toBe('ADM_INVALID');
      expect(res.body).not.toContain('pw');
    }
    const res = await get(port, `http://user@127.0.0.1/healthz`, ['Host: 127.0.0.1']);
    expect(res.status).toBe(400);
    const added = logs.text.slice(before);
    expect(added).not.toContain('internal error');
    expect(added).not.toContain('"stack"');
    expect((await gw.admin('GET', '/v1/endpoints/creds')).status).toBe(404);
  });

  it('/metrics needs no token unless ADMIN_METRICS_AUTH is set', async () => {
    expect((await get(port, '/metrics', ['Host: 127.0.0.1'])).status).toBe(200);
  });

  it('the admin client (fetch on 127.0.0.1) keeps working', async () => {
    expect((await gw.admin('PUT', '/v1/endpoints/ok', { public: true })).status).toBe(201);
    expect((await gw.admin('GET', '/v1/endpoints/ok')).status).toBe(200);
  });
});

describe('security: ADMIN_METRICS_AUTH=true', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({ ADMIN_METRICS_AUTH: 'true' });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('/metrics without the admin token is 401 ADM_UNAUTHORIZED; with it, Prometheus text', async () => {
    const port = gw.running.adminPort;
    const refused = await get(port, '/metrics', ['Host: 127.0.0.1']);
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body).error.code).toBe('ADM_UNAUTHORIZED');
    const wrong = await get(port, '/metrics', ['Host: 127.0.0.1', 'Authorization: Bearer not-the-admin-token']);
    expect(wrong.status).toBe(401);
    const ok = await get(port, '/metrics', ['Host: 127.0.0.1', AUTH]);
    expect(ok.status).toBe(200);
    expect(ok.body).toContain('# HELP');
    // Liveness stays open for probes.
    expect((await get(port, '/healthz', ['Host: 127.0.0.1'])).status).toBe(200);
  });
});

describe('security: ADMIN_HOST=0.0.0.0 accepts the machine own addresses', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({ ADMIN_HOST: '0.0.0.0' });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('any interface address as Host is accepted; a foreign name is not', async () => {
    const port = gw.running.adminPort;
    const addresses = Object.values(networkInterfaces())
      .flat()
      .filter((i) => i !== undefined)
      .map((i) => (i.family === 'IPv6' ? `[${i.address.split('%')[0]}]` : i.address));
    expect(addresses.length).toBeGreaterThan(0);
    for (const address of addresses) {
      expect((await get(port, '/healthz', [`Host: ${address}:${port}`])).status, address).toBe(200);
    }
    expect((await get(port, '/healthz', ['Host: 0.0.0.0'])).status).toBe(200);
    expectMisdirected(await get(port, '/metrics', ['Host: rebind.evil.example']));
    expectMisdirected(await get(port, '/metrics', ['Host: 203.0.113.9']));
  });
});
