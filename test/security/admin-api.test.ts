import { networkInterfaces } from 'node:os';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminTokenMatcher } from '../../src/admin/app.js';
import { loadSettings } from '../../src/config/settings.js';
import { startTestGateway, TEST_ADMIN_TOKEN, type TestGateway } from '../support/gateway.js';
import { rawSend } from '../support/raw-client.js';

/**
 * The admin API holds the keys: constant-time bearer check, loopback by default, bounded
 * bodies (413 ADM_BODY_TOO_LARGE, also chunked), JSON objects only, DNS-label names, absolute
 * http(s) route URLs; every refusal is ADM_INVALID naming the field, never a 500.
 */

const LIMIT = 2048;

describe('security: admin API', () => {
  let gw: TestGateway;

  beforeAll(async () => {
    gw = await startTestGateway({ ADMIN_BODY_LIMIT_BYTES: String(LIMIT) });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  /** Raw admin call (exact bytes, any content type) with the admin token. */
  const raw = async (method: string, path: string, body: string | Buffer, headers: Record<string, string> = {}) => {
    const res = await fetch(`${gw.adminUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, ...headers },
      body,
    });
    const text = await res.text();
    let json: any = null;
    try {
      json = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: res.status, json, text };
  };
  const fieldsOf = (json: any): string[] => (json?.error?.details ?? []).map((d: { field: string }) => d.field);

  describe('authentication', () => {
    it('listens on loopback unless told otherwise', async () => {
      expect(loadSettings({ env: {} }).ADMIN_HOST).toBe('127.0.0.1');
      const external = Object.values(networkInterfaces())
        .flat()
        .find((i) => i && i.family === 'IPv4' && !i.internal);
      if (external) {
        const refused = await new Promise<boolean>((resolve) => {
          const s = connect(gw.running.adminPort, external.address);
          s.on('connect', () => {
            s.destroy();
            resolve(false);
          });
          s.on('error', () => resolve(true));
        });
        expect(refused).toBe(true);
      }
    });

    it('refuses every /v1 call without the exact admin token', async () => {
      const tries = ['', 'Bearer', `Bearer ${TEST_ADMIN_TOKEN}x`, `Bearer ${TEST_ADMIN_TOKEN.slice(0, -1)}`, `Basic ${TEST_ADMIN_TOKEN}`, TEST_ADMIN_TOKEN, `Bearer ${TEST_ADMIN_TOKEN.toUpperCase()}`];
      for (const authorization of tries) {
        for (const [method, path] of [['GET', '/v1/endpoints'], ['PUT', '/v1/endpoints/x'], ['POST', '/v1/endpoints/x/tokens'], ['DELETE', '/v1/endpoints/x']]) {
          const res = await fetch(`${gw.adminUrl}${path}`, { method, headers: authorization ? { authorization } : {} });
          expect(res.status, `${method} ${path} ${authorization}`).toBe(401);
          expect(((await res.json()) as { error: { code: string } }).error.code).toBe('ADM_UNAUTHORIZED');
        }
      }
    });

    it('compares digests (equal-length work whatever the input)', () => {
      const matches = adminTokenMatcher(TEST_ADMIN_TOKEN);
      expect(matches(`Bearer ${TEST_ADMIN_TOKEN}`)).toBe(true);
      expect(matches(`bearer ${TEST_ADMIN_TOKEN}`)).toBe(true);
      expect(matches(`Bearer ${TEST_ADMIN_TOKEN} `)).toBe(true);
      for (const bad of [undefined, '', 'Bearer ', `Bearer ${'x'.repeat(TEST_ADMIN_TOKEN.length)}`, `Bearer ${TEST_ADMIN_TOKEN}${'x'.repeat(5000)}`, `Token ${TEST_ADMIN_TOKEN}`]) {
        expect(matches(bad)).toBe(false);
      }
    });
  });

  describe('bodies', () => {
    it('refuses a body over ADMIN_BODY_LIMIT_BYTES with 413 ADM_BODY_TOO_LARGE', async () => {
      const res = await raw('PUT', '/v1/endpoints/big', JSON.stringify({ public: true, pad: 'x'.repeat(LIMIT) }), { 'content-type': 'application/json' });
      expect(res.status).toBe(413);
      expect(res.json.error.code).toBe('ADM_BODY_TOO_LARGE');
    });

    it('refuses an oversized chunked body with no length with 413', async () => {
      const chunk = 'x'.repeat(1000);
      const chunks = Array.from({ length: 4 }, () => `${chunk.length.toString(16)}\r\n${chunk}\r\n`).join('');
      const payload =
        `PUT /v1/endpoints/big HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TEST_ADMIN_TOKEN}\r\n` +
        `Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunks}0\r\n\r\n`;
      const res = await rawSend(gw.running.adminPort, payload, { idleMs: 2000 });
      expect(res.responses[0]?.status).toBe(413);
      expect(JSON.parse(res.responses[0].body).error.code).toBe('ADM_BODY_TOO_LARGE');
      expect((await gw.admin('GET', '/v1/endpoints/big')).status).toBe(404);
    });

    const notObjects: Record<string, string> = {
      array: '[{"public":true}]',
      string: '"public"',
      number: '42',
      null: 'null',
      boolean: 'true',
      'invalid JSON': '{"public": tru',
      'trailing garbage': '{"public": true} x',
      'single quotes': "{'public': true}",
      'a BOM then JSON array': '\ufeff[]',
    };
    for (const [name, body] of Object.entries(notObjects)) {
      it(`refuses a body that is ${name} with ADM_INVALID naming "body"`, async () => {
        const res = await raw('PUT', '/v1/endpoints/nobj', body, { 'content-type': 'application/json' });
        expect(res.status).toBe(400);
        expect(res.json.error.code).toBe('ADM_INVALID');
        expect(fieldsOf(res.json)).toContain('body');
      });
    }

    it('never answers 500 to odd content types, invalid UTF-8, deep nesting or huge arrays', async () => {
      const cases: [string, string | Buffer, Record<string, string>][] = [
        ['text/plain', '{"public":true}', { 'content-type': 'text/plain' }],
        ['no content-type', '{"public":true}', {}],
        ['form', 'public=true', { 'content-type': 'application/x-www-form-urlencoded' }],
        ['multipart', '--x\r\n\r\n--x--', { 'content-type': 'multipart/form-data; boundary=x' }],
        ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), { 'content-type': 'application/json' }],
        ['lone surrogate', '{"routes":[{"url":"http://a/\\ud800"}]}', { 'content-type': 'application/json' }],
        ['deep arrays', '['.repeat(1000) + ']'.repeat(1000), { 'content-type': 'application/json' }],
        ['deep objects', '{"routes":'.repeat(150) + '1' + '}'.repeat(150), { 'content-type': 'application/json' }],
        ['huge array', JSON.stringify({ routes: Array(1000).fill(0) }), { 'content-type': 'application/json' }],
        ['big numbers', '{"routes":[{"url":"http://a/","weight":1e309}]}', { 'content-type': 'application/json' }],
      ];
      for (const [name, body, headers] of cases) {
        const res = await raw('PUT', '/v1/endpoints/odd', body, headers);
        expect(res.status, name).toBeLessThan(500);
        expect(res.json?.error?.code ?? 'ok', name).not.toMatch(/INTERNAL/);
      }
    });

    it('refuses prototype-pollution keys and never pollutes', async () => {
      for (const body of [
        '{"__proto__":{"polluted":true}}',
        '{"public":true,"constructor":{"prototype":{"polluted":true}}}',
        '{"routes":[{"url":"http://a/","__proto__":{"polluted":true}}]}',
        '{"timeouts":{"__proto__":{"polluted":true}}}',
      ]) {
        const res = await raw('PUT', '/v1/endpoints/proto', body, { 'content-type': 'application/json' });
        expect([200, 201, 400], body).toContain(res.status);
        if (res.status === 400) expect(res.json.error.code).toBe('ADM_INVALID');
      }
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      const table = await gw.admin('GET', '/v1/endpoints/proto');
      if (table.status === 200) expect(JSON.stringify(table.body)).not.toContain('polluted');
    });
  });

  describe('fields', () => {
    const badNames = ['Bad', 'bad_name', '-a', 'a-', 'a.b', 'x'.repeat(64), '%2e%2e', 'caf%C3%A9', 'a%20b', '..'];
    for (const name of badNames) {
      it(`refuses endpoint name ${JSON.stringify(name)} with ADM_INVALID naming "name"`, async () => {
        const res = await gw.admin('PUT', `/v1/endpoints/${name}`, { public: true });
        if (name === '..' || name === '%2e%2e') {
          // fetch resolves these client-side to /v1/endpoints/.. → /v1 (ADM_NOT_FOUND); never a table.
          expect([400, 404]).toContain(res.status);
          return;
        }
        expect(res.status).toBe(400);
        expect(res.body.error.code).toBe('ADM_INVALID');
        expect(fieldsOf(res.body)).toEqual(['name']);
      });
    }

    const badUrls = ['ftp://a/', '/relative', 'javascript:alert(1)', 'http://', 'file:///etc/passwd', 'unix:/tmp/s', 'a.example:80', '', 'http://a b/', 42, null];
    for (const url of badUrls) {
      it(`refuses route URL ${JSON.stringify(url)} with ADM_INVALID naming routes.0.url`, async () => {
        const res = await gw.admin('PUT', '/v1/endpoints/urls', { routes: [{ url }] });
        expect(res.status).toBe(400);
        expect(res.body.error.code).toBe('ADM_INVALID');
        expect(fieldsOf(res.body)).toContain('routes.0.url');
      });
    }

    it('names every bad field at once', async () => {
      const res = await gw.admin('PUT', '/v1/endpoints/many', { public: 'yes', routes: [{ url: 'ftp://x/', weight: -1 }], extra: 1 });
      expect(res.status).toBe(400);
      const fields = fieldsOf(res.body);
      for (const f of ['public', 'routes.0.url', 'routes.0.weight']) expect(fields).toContain(f);
    });

    it('accepts a valid endpoint (the rules are not over-strict)', async () => {
      const res = await gw.admin('PUT', '/v1/endpoints/ok-1', { public: true, routes: [{ url: 'https://10.0.0.1:8443/base' }] });
      expect(res.status).toBe(201);
    });

    it('keeps a safe X-Request-Id and replaces an unsafe one', async () => {
      const kept = await fetch(`${gw.adminUrl}/healthz`, { headers: { 'x-request-id': 'adm-1' } });
      expect(kept.headers.get('x-request-id')).toBe('adm-1');
      const replaced = await fetch(`${gw.adminUrl}/healthz`, { headers: { 'x-request-id': 'has space' } });
      expect(replaced.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    });
  });
});
