import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { rawRequest, rawSend } from '../support/raw-client.js';
import { startRawUpstream, type RawUpstream } from '../support/raw-upstream.js';

/**
 * Header abuse: control characters in either direction, header size and count limits, and
 * client headers posing as the ones the gateway sets (X-Forwarded-*, Forwarded, X-Request-Id).
 */

const H = 'Host: pub.localhost';

describe('security: headers', () => {
  let gw: TestGateway;
  let up: RawUpstream;

  beforeAll(async () => {
    gw = await startTestGateway({ MAX_HEADER_BYTES: '8192', MAX_HEADER_COUNT: '50' });
    up = await startRawUpstream();
    await gw.admin('PUT', '/v1/endpoints/pub', { public: true, routes: [{ id: 'a', url: up.url }] });
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });
  beforeEach(() => up.reset());

  const get = (lines: string[], target = '/') => rawSend(gw.port, rawRequest('GET', target, [H, 'Connection: close', ...lines]));

  describe('control characters', () => {
    const bad: Record<string, string> = {
      NUL: 'X-A: a\x00b',
      SOH: 'X-A: a\x01b',
      DEL: 'X-A: a\x7fb',
      ESC: 'X-A: \x1b[31m',
      'bare CR': 'X-A: a\rb',
      'LF (obs-fold)': 'X-A: a\r\n b',
      'NUL in a name': 'X-\x00A: b',
      'space in a name': 'X A: b',
      'colon-less line': 'X-A',
      'empty name': ': b',
    };
    for (const [name, line] of Object.entries(bad)) {
      it(`refuses ${name} in a request header with 400 and forwards nothing`, async () => {
        const res = await get([line]);
        expect(res.responses.map((r) => r.status)).toEqual([400]);
        expect(res.closed).toBe(true);
        expect(up.requests).toEqual([]);
      });
    }

    it('passes obs-text (bytes 0x80-0xFF) but never a control character', async () => {
      const res = await get(['X-A: caf\xe9']);
      expect(res.responses.map((r) => r.status)).toEqual([200]);
      const raw = up.requests[0].raw;
      for (const byte of raw) if (byte < 0x20 && byte !== 13 && byte !== 10 && byte !== 9) throw new Error(`control byte ${byte} forwarded`);
    });

    const badResponses: Record<string, string> = {
      'CR in a value': 'HTTP/1.1 200 OK\r\nx-a: a\rb\r\ncontent-length: 2\r\n\r\nok',
      'NUL in a value': 'HTTP/1.1 200 OK\r\nx-a: a\x00b\r\ncontent-length: 2\r\n\r\nok',
      'LF line ends': 'HTTP/1.1 200 OK\nx-a: b\ncontent-length: 2\n\nok',
      'obs-fold': 'HTTP/1.1 200 OK\r\nx-a: a\r\n b\r\ncontent-length: 2\r\n\r\nok',
      'CL with TE': 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
      'two Content-Lengths': 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok',
      'space in a name': 'HTTP/1.1 200 OK\r\nx a: b\r\ncontent-length: 2\r\n\r\nok',
      'not HTTP at all': 'SSH-2.0-OpenSSH\r\n\r\n',
    };
    for (const [name, response] of Object.entries(badResponses)) {
      it(`answers 502 when the upstream sends ${name}, and keeps serving`, async () => {
        const bad = await startRawUpstream({ respond: () => response });
        const ep = `bad-${name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/-$/, '')}`;
        try {
          await gw.admin('PUT', `/v1/endpoints/${ep}`, { public: true, routes: [{ id: 'b', url: bad.url }] });
          const res = await rawSend(gw.port, rawRequest('GET', '/', [`Host: ${ep}.localhost`, 'Connection: close']));
          expect(res.responses.length).toBe(1);
          expect(res.responses[0].status).toBe(502);
          expect(JSON.parse(res.responses[0].body).error.code).toBe('GW_UPSTREAM_UNAVAILABLE');
          expect(res.text).not.toContain('\x00');
          const health = await rawSend(gw.port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
          expect(health.responses[0].status).toBe(200);
        } finally {
          await bad.close();
        }
      });
    }
  });

  describe('size and count limits', () => {
    it('refuses a header block over MAX_HEADER_BYTES with 431 GW_HEADERS_TOO_LARGE', async () => {
      const res = await get([`X-Big: ${'a'.repeat(9000)}`]);
      expect(res.responses.map((r) => r.status)).toEqual([431]);
      expect(JSON.parse(res.responses[0].body).error.code).toBe('GW_HEADERS_TOO_LARGE');
      expect(res.closed).toBe(true);
      expect(up.requests).toEqual([]);
    });

    it('refuses many small headers adding up over the size limit with 431', async () => {
      const lines = Array.from({ length: 45 }, (_, i) => `X-H${i}: ${'v'.repeat(200)}`);
      const res = await get(lines);
      expect(res.responses.map((r) => r.status)).toEqual([431]);
    });

    it('refuses more than MAX_HEADER_COUNT header lines with 431 instead of dropping some', async () => {
      const res = await get(Array.from({ length: 60 }, (_, i) => `X-H${i}: v`));
      expect(res.responses.map((r) => r.status)).toEqual([431]);
      expect(JSON.parse(res.responses[0].body).error.code).toBe('GW_HEADERS_TOO_LARGE');
      expect(up.requests).toEqual([]);
    });

    it('forwards every header of a request at the count limit', async () => {
      const res = await get(Array.from({ length: 48 }, (_, i) => `X-H${i}: v${i}`));
      expect(res.responses.map((r) => r.status)).toEqual([200]);
      expect(up.headerValues(up.requests[0], 'x-h47')).toEqual(['v47']);
    });
  });

  describe('headers the gateway sets', () => {
    it('replaces client X-Forwarded-*, Forwarded and X-Real-IP with its own', async () => {
      const res = await get([
        'X-Forwarded-For: 6.6.6.6',
        'x-forwarded-for: 7.7.7.7',
        'X-FORWARDED-HOST: priv.localhost',
        'X-Forwarded-Proto: https',
        'X-Forwarded-Port: 443',
        'X-Forwarded-Prefix: /admin',
        'X-Forwarded-Server: trusted',
        'X-Forwarded-Client-Cert: Hash=evil',
        'X-Forwarded-Ssl: on',
        'Forwarded: for=6.6.6.6;host=priv.localhost;proto=https',
        'X-Real-IP: 6.6.6.6',
      ]);
      expect(res.responses.map((r) => r.status)).toEqual([200]);
      const req = up.requests[0];
      expect(up.headerValues(req, 'x-forwarded-for')).toEqual(['127.0.0.1']);
      expect(up.headerValues(req, 'x-forwarded-host')).toEqual(['pub.localhost']);
      expect(up.headerValues(req, 'x-forwarded-proto')).toEqual(['http']);
      for (const name of ['x-forwarded-port', 'x-forwarded-prefix', 'x-forwarded-server', 'x-forwarded-client-cert', 'x-forwarded-ssl', 'forwarded', 'x-real-ip']) {
        expect(up.headerValues(req, name), name).toEqual([]);
      }
      expect(req.raw.toString('latin1')).not.toMatch(/6\.6\.6\.6|7\.7\.7\.7|priv\.localhost|evil/);
    });

    it('a Connection header cannot make the gateway drop the headers it sets', async () => {
      const res = await get(['Connection: x-forwarded-for, x-request-id, x-forwarded-host, x-forwarded-proto', 'X-Request-Id: abc-123']);
      expect(res.responses.map((r) => r.status)).toEqual([200]);
      const req = up.requests[0];
      expect(up.headerValues(req, 'x-forwarded-for')).toEqual(['127.0.0.1']);
      expect(up.headerValues(req, 'x-forwarded-host')).toEqual(['pub.localhost']);
      expect(up.headerValues(req, 'x-forwarded-proto')).toEqual(['http']);
      expect(up.headerValues(req, 'x-request-id')).toHaveLength(1);
    });

    it('keeps a safe X-Request-Id, replaces an unsafe one, and forwards exactly one', async () => {
      const kept = await get(['X-Request-Id: trace-0123_abc.def:9']);
      expect(kept.responses[0].headers['x-request-id']).toBe('trace-0123_abc.def:9');
      expect(up.headerValues(up.requests[0], 'x-request-id')).toEqual(['trace-0123_abc.def:9']);

      for (const unsafe of ['has space', 'x'.repeat(129), 'caf\xe9', '']) {
        up.reset();
        const res = await get([`X-Request-Id: ${unsafe}`]);
        const id = res.responses[0].headers['x-request-id'];
        expect(id).toMatch(/^[0-9a-f-]{36}$/);
        expect(up.headerValues(up.requests[0], 'x-request-id')).toEqual([id]);
      }

      up.reset();
      const twice = await get(['X-Request-Id: first', 'X-Request-Id: second']);
      expect(up.headerValues(up.requests[0], 'x-request-id')).toHaveLength(1);
      expect(twice.responses[0].headers['x-request-id']).toBe(up.headerValues(up.requests[0], 'x-request-id')[0]);
    });

    it('the upstream cannot override the X-Request-Id echoed to the client, nor leak hop-by-hop headers', async () => {
      const liar = await startRawUpstream({
        respond: () => 'HTTP/1.1 200 OK\r\nx-request-id: forged\r\nconnection: x-internal\r\nx-internal: secret\r\nkeep-alive: timeout=99\r\ncontent-length: 2\r\n\r\nok',
      });
      try {
        await gw.admin('PUT', '/v1/endpoints/liar', { public: true, routes: [{ id: 'l', url: liar.url }] });
        const res = await rawSend(gw.port, rawRequest('GET', '/', ['Host: liar.localhost', 'Connection: close', 'X-Request-Id: mine-1']));
        const r = res.responses[0];
        expect(r.status).toBe(200);
        expect(r.headers['x-request-id']).toBe('mine-1');
        expect(r.headers['x-internal']).toBeUndefined();
        expect(r.headers['keep-alive']).toBeUndefined();
      } finally {
        await liar.close();
      }
    });
  });

  it('appends the peer to X-Forwarded-For only when the peer is a trusted proxy', async () => {
    const trusting = await startTestGateway({ TRUSTED_PROXIES: '127.0.0.1/32' });
    try {
      await trusting.admin('PUT', '/v1/endpoints/pub', { public: true, routes: [{ id: 'a', url: up.url }] });
      const res = await rawSend(trusting.port, rawRequest('GET', '/', [H, 'Connection: close', 'X-Forwarded-For: 203.0.113.9', 'X-Forwarded-Host: evil', 'X-Forwarded-Proto: https']));
      expect(res.responses.map((r) => r.status)).toEqual([200]);
      const req = up.requests[0];
      expect(up.headerValues(req, 'x-forwarded-for')).toEqual(['203.0.113.9, 127.0.0.1']);
      expect(up.headerValues(req, 'x-forwarded-host')).toEqual(['pub.localhost']);
      // A TLS terminator in front says the client spoke https; the upstream hears it.
      expect(up.headerValues(req, 'x-forwarded-proto')).toEqual(['https']);
      up.reset();
      await rawSend(trusting.port, rawRequest('GET', '/', [H, 'Connection: close', 'X-Forwarded-Proto: gopher']));
      expect(up.headerValues(up.requests[0], 'x-forwarded-proto')).toEqual(['http']);
    } finally {
      await trusting.stop();
    }
  });
});
