import { Writable } from 'node:stream';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, TEST_ADMIN_TOKEN, type TestGateway } from '../support/gateway.js';
import { rawSend, type RawResult } from '../support/raw-client.js';
import { startRawUpstream, type RawUpstream } from '../support/raw-upstream.js';

/**
 * Never a crash: random and mutated requests over raw TCP, and random JSON bodies to the admin
 * API, for a bounded number of runs. No 5xx the gateway made itself (upstream faults aside),
 * no internal-error log line, no unhandled rejection, no malformed request reaching an
 * upstream, and a live gateway afterwards.
 */

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

const SEEDS = [
  'GET /v1/models HTTP/1.1\r\nHost: pub.localhost\r\nAccept: */*\r\n\r\n',
  'POST /v1/chat HTTP/1.1\r\nHost: pub.localhost\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{"prompt":"hi"}',
  'POST /e/pub/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  'GET http://pub.localhost/a?b=c HTTP/1.1\r\nHost: pub.localhost\r\nX-Request-Id: abc\r\nConnection: keep-alive, x-a\r\nX-A: 1\r\n\r\n',
  'GET /e/priv/ HTTP/1.1\r\nHost: gw\r\nAuthorization: BackendAI eyJhbGciOiJIUzI1NiJ9.e30.sig\r\n\r\n',
  'PUT /e/pub/%2e/x HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc',
  'OPTIONS /e/priv/ HTTP/1.1\r\nHost: gw\r\nAccess-Control-Request-Method: POST\r\nOrigin: http://x\r\n\r\n',
];

const TOKENS = ['\r\n', '\n', '\r', ' ', '\t', ':', '\x00', '\x7f', '\xff', ',', ';', '/', '..', '%2e', '\\', 'Transfer-Encoding: chunked\r\n', 'Content-Length: 5\r\n', 'Content-Length: -1\r\n', 'Host: priv.localhost\r\n', '0\r\n\r\n', 'ffffffff\r\n', 'HTTP/1.1', 'GET / HTTP/1.1\r\n', 'Expect: 100-continue\r\n', 'Upgrade: websocket\r\nConnection: Upgrade\r\n'];

/** A mutation of a seed: insert, delete, replace or duplicate a span, or splice in a token. */
const mutated = fc
  .record({
    seed: fc.constantFrom(...SEEDS),
    edits: fc.array(
      fc.record({
        kind: fc.constantFrom('insert', 'delete', 'replace', 'dup', 'byte'),
        at: fc.nat(),
        len: fc.integer({ min: 1, max: 8 }),
        token: fc.constantFrom(...TOKENS),
        byte: fc.integer({ min: 0, max: 255 }),
      }),
      { minLength: 1, maxLength: 4 },
    ),
  })
  .map(({ seed, edits }) => {
    let s = seed;
    for (const e of edits) {
      const at = e.at % (s.length + 1);
      switch (e.kind) {
        case 'insert':
          s = s.slice(0, at) + e.token + s.slice(at);
          break;
        case 'delete':
          s = s.slice(0, at) + s.slice(at + e.len);
          break;
        case 'replace':
          s = s.slice(0, at) + e.token + s.slice(at + e.len);
          break;
        case 'dup':
          s = s.slice(0, at + e.len) + s.slice(at, at + e.len) + s.slice(at + e.len);
          break;
        default:
          s = s.slice(0, at) + String.fromCharCode(e.byte) + s.slice(at + 1);
      }
    }
    return s;
  });

/** A request built from random parts: method, target, header names and values. */
const generated = fc
  .record({
    method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE', 'CONNECT', 'QUERY'),
    target: fc.oneof(fc.webPath(), fc.string({ maxLength: 40 }), fc.constant('*'), fc.webUrl()),
    prefix: fc.constantFrom('', '/e/pub', '/e/priv', '/e/nope'),
    host: fc.oneof(fc.constantFrom('pub.localhost', 'priv.localhost', 'gw', '', 'PUB.LOCALHOST.', '[::1]:80'), fc.domain(), fc.string({ maxLength: 20 })),
    headers: fc.array(fc.tuple(fc.string({ minLength: 1, maxLength: 12 }), fc.string({ maxLength: 30 })), { maxLength: 6 }),
    body: fc.string({ maxLength: 40 }),
    version: fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/1.1', 'HTTP/2.0'),
  })
  .map(({ method, target, prefix, host, headers, body, version }) => {
    const t = target.startsWith('/') || target === '*' || target.startsWith('http') ? target : '/' + target;
    const lines = [`Host: ${host}`, ...headers.map(([n, v]) => `${n}: ${v}`), `Content-Length: ${Buffer.byteLength(body, 'latin1')}`];
    return `${method} ${prefix && t.startsWith('/') ? prefix + t : t} ${version}\r\n${lines.join('\r\n')}\r\n\r\n${body}`;
  });

/** Statuses the gateway may answer with; a 5xx must be an upstream fault code. */
const UPSTREAM_5XX = new Set(['GW_UPSTREAM_UNAVAILABLE', 'GW_UPSTREAM_TIMEOUT', 'GW_NO_HEALTHY_ROUTE', 'GW_OVERLOADED']);

function checkResponses(payload: string, res: RawResult): void {
  for (const r of res.responses) {
    if (r.status < 500) continue;
    let code = '';
    try {
      code = JSON.parse(r.body).error.code;
    } catch {
      // not JSON
    }
    if (!UPSTREAM_5XX.has(code)) throw new Error(`gateway answered ${r.status} ${code || r.body.slice(0, 80)} to ${JSON.stringify(payload)}`);
  }
}

describe('security: fuzz (bounded)', () => {
  const logs = new Capture();
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown) => unhandled.push(err);
  let gw: TestGateway;
  let up: RawUpstream;

  beforeAll(async () => {
    process.on('unhandledRejection', onUnhandled);
    process.on('uncaughtException', onUnhandled);
    gw = await startTestGateway({ LOG_LEVEL: 'warn', HEADERS_TIMEOUT_MS: '1000', REQUEST_BODY_TIMEOUT_MS: '1000', HOLD_TIMEOUT_MS: '0' }, { logDestination: logs });
    up = await startRawUpstream();
    await gw.admin('PUT', '/v1/endpoints/pub', { public: true, routes: [{ id: 'a', url: up.url }] });
    await gw.admin('PUT', '/v1/endpoints/priv', { public: false, routes: [{ id: 'b', url: up.url }] });
  });
  afterAll(async () => {
    process.off('unhandledRejection', onUnhandled);
    process.off('uncaughtException', onUnhandled);
    await gw?.stop();
    await up?.close();
  });

  /** Sends a batch concurrently (keeps the run short), checking each answer. */
  async function sendBatch(batch: string[]): Promise<void> {
    const results = await Promise.all(batch.map((p) => rawSend(gw.port, Buffer.from(p, 'latin1'), { idleMs: 250, maxMs: 3000, untilResponses: 1 })));
    results.forEach((res, i) => checkResponses(batch[i], res));
  }

  it('mutated requests never make the gateway fail (300 runs)', async () => {
    await fc.assert(fc.asyncProperty(fc.array(mutated, { minLength: 10, maxLength: 10 }), sendBatch), { numRuns: 30, seed: Date.now() % 2 ** 31 });
  }, 40_000);

  it('generated requests never make the gateway fail (300 runs)', async () => {
    await fc.assert(fc.asyncProperty(fc.array(generated, { minLength: 10, maxLength: 10 }), sendBatch), { numRuns: 30 });
  }, 40_000);

  it('random JSON bodies and names never make the admin API answer 5xx (300 runs)', async () => {
    const field = fc.constantFrom('public', 'routes', 'timeouts', 'limits', 'allowed_cidrs', 'balancer', 'expected_version', 'url', 'weight', 'status', 'id', 'ttl_seconds', 'duration', 'expires_at', 'valid_until', 'sub', '__proto__', 'constructor');
    const value = fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.constantFrom('http://127.0.0.1:1/', 'healthy', '1h', -1, 1e21, '', [], {}));
    const body = fc.oneof(
      fc.dictionary(field, value, { maxKeys: 5 }).map((o) => JSON.stringify(o)),
      fc.record({ routes: fc.array(fc.dictionary(field, value, { maxKeys: 4 }), { maxLength: 3 }) }).map((o) => JSON.stringify(o)),
      fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
      fc.string({ maxLength: 60 }),
    );
    const call = fc.record({
      method: fc.constantFrom('PUT', 'PATCH', 'POST', 'GET', 'DELETE'),
      path: fc.constantFrom('/v1/endpoints/NAME', '/v1/endpoints/NAME/routes', '/v1/endpoints/NAME/routes/r1', '/v1/endpoints/NAME/tokens', '/v1/endpoints/NAME/tokens/JTI'),
      name: fc.oneof(fc.constantFrom('fz', 'pub', 'fz-2'), fc.string({ minLength: 1, maxLength: 12 })),
      body,
    });
    await fc.assert(
      fc.asyncProperty(fc.array(call, { minLength: 10, maxLength: 10 }), async (calls) => {
        await Promise.all(
          calls.map(async (c) => {
            const path = c.path.replace('NAME', encodeURIComponent(c.name)).replace('JTI', encodeURIComponent(c.name));
            const res = await fetch(`${gw.adminUrl}${path}`, {
              method: c.method,
              headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}`, 'content-type': 'application/json' },
              body: c.method === 'GET' || c.method === 'DELETE' ? undefined : c.body,
            });
            const text = await res.text();
            if (res.status >= 500) throw new Error(`admin ${c.method} ${path} ${c.body} → ${res.status} ${text}`);
          }),
        );
      }),
      { numRuns: 30 },
    );
  }, 40_000);

  it('stayed alive and clean: /healthz 200, no internal errors, no unhandled rejections, upstream saw only well-framed requests', async () => {
    const health = await rawSend(gw.port, 'GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n');
    expect(health.responses[0]?.status).toBe(200);
    expect((await fetch(`${gw.adminUrl}/healthz`)).status).toBe(200);
    expect(unhandled).toEqual([]);
    expect(logs.text).not.toMatch(/internal error|uncaught|unhandled/i);
    expect(up.requests.length).toBeGreaterThan(0);
    expect(up.connections.filter((c) => c.garbage !== '').map((c) => c.garbage.slice(0, 200))).toEqual([]);
    // Nothing the gateway forwarded carries a control character or an ambiguous framing.
    for (const req of up.requests) {
      const te = up.headerValues(req, 'transfer-encoding');
      const cl = up.headerValues(req, 'content-length');
      expect(te.length + cl.length).toBeLessThanOrEqual(1);
      expect(req.target.startsWith('/')).toBe(true);
      const head = req.raw.subarray(0, req.raw.indexOf('\r\n\r\n'));
      // No control byte other than HTAB and the CRLF line ends.
      expect(head.some((b) => (b < 0x20 && b !== 9 && b !== 10 && b !== 13) || b === 0x7f)).toBe(false);
    }
  });
});
