import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { rawSend } from '../support/raw-client.js';
import { startRawUpstream, type RawUpstream } from '../support/raw-upstream.js';

/**
 * Request smuggling and desync (RFC 9112 §6): every ambiguous framing is refused with a JSON
 * 400 and the connection closed; a request hidden behind it never reaches an upstream; what
 * the upstream receives is exactly what the client framed, re-framed by the gateway.
 */

const H = 'Host: pub.localhost';
const SMUGGLED = `GET /smuggled HTTP/1.1\r\n${H}\r\n\r\n`;

describe('security: framing and request smuggling', () => {
  let gw: TestGateway;
  let up: RawUpstream;

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startRawUpstream();
    expect((await gw.admin('PUT', '/v1/endpoints/pub', { public: true, routes: [{ id: 'a', url: up.url }] })).status).toBe(201);
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });
  beforeEach(() => up.reset());

  /** Every byte any upstream connection received, as text. */
  const upstreamBytes = () => up.connections.map((c) => c.data.toString('latin1')).join('');

  const ambiguous: Record<string, string> = {
    'Content-Length with Transfer-Encoding': `POST / HTTP/1.1\r\n${H}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    'Transfer-Encoding before Content-Length': `POST / HTTP/1.1\r\n${H}\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n`,
    'two different Content-Lengths': `POST / HTTP/1.1\r\n${H}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef`,
    'two equal Content-Lengths': `POST / HTTP/1.1\r\n${H}\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nabcde`,
    'Content-Length list': `POST / HTTP/1.1\r\n${H}\r\nContent-Length: 5, 5\r\n\r\nabcde`,
    'Content-Length with a sign': `POST / HTTP/1.1\r\n${H}\r\nContent-Length: +5\r\n\r\nabcde`,
    'negative Content-Length': `POST / HTTP/1.1\r\n${H}\r\nContent-Length: -1\r\n\r\n`,
    'hex Content-Length': `POST / HTTP/1.1\r\n${H}\r\nContent-Length: 0x5\r\n\r\nabcde`,
    'Transfer-Encoding: chunked, identity': `POST / HTTP/1.1\r\n${H}\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nabcde\r\n0\r\n\r\n`,
    'Transfer-Encoding: identity': `POST / HTTP/1.1\r\n${H}\r\nTransfer-Encoding: identity\r\n\r\nabcde`,
    'Transfer-Encoding: gzip, chunked': `POST / HTTP/1.1\r\n${H}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n`,
    'Transfer-Encoding: xchunked': `POST / HTTP/1.1\r\n${H}\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n`,
    'Transfer-Encoding: chunked-false': `POST / HTTP/1.1\r\n${H}\r\nTransfer-Encoding: chunked-false\r\n\r\n5\r\nabcde\r\n0\r\n\r\n`,
    'Transfer-Encoding on two lines': `POST / HTTP/1.1\r\n${H}\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n`,
    'Transfer-Encoding: chunked, chunked': `POST / HTTP/1.1\r\n${H}\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n`,
    'space before the colon': `POST / HTTP/1.1\r\n${H}\r\nTransfer-Encoding : chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n`,
    'obs-fold Transfer-Encoding': `POST / HTTP/1.1\r\n${H}\r\nTransfer-Encoding:\r\n chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n`,
    'vertical tab in Transfer-Encoding': `POST / HTTP/1.1\r\n${H}\r\nTransfer-Encoding:\x0bchunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n`,
    'Transfer-Encoding in HTTP/1.0': `POST / HTTP/1.0\r\n${H}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n`,
    'chunk size not hex': `POST / HTTP/1.1\r\n${H}\r\nTransfer-Encoding: chunked\r\n\r\nZ\r\nabcde\r\n0\r\n\r\n`,
    'negative chunk size': `POST / HTTP/1.1\r\n${H}\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nabcde\r\n0\r\n\r\n`,
    'chunk size overflow': `POST / HTTP/1.1\r\n${H}\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nabcde\r\n0\r\n\r\n`,
    'chunk size 0x-prefixed': `POST / HTTP/1.1\r\n${H}\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nabcde\r\n0\r\n\r\n`,
    'space after chunk size': `POST / HTTP/1.1\r\n${H}\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nabcde\r\n0\r\n\r\n`,
    'chunk data longer than its size': `POST / HTTP/1.1\r\n${H}\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcde\r\n0\r\n\r\n`,
    'bare LF in chunked framing': `POST / HTTP/1.1\r\n${H}\r\nTransfer-Encoding: chunked\r\n\r\n5\nabcde\n0\n\n`,
    'bare LF line ends in the head': `POST / HTTP/1.1\n${H}\nContent-Length: 5\n\nabcde`,
    'bare LF inside the head': `GET / HTTP/1.1\r\n${H}\nX-A: b\r\n\r\n`,
    'bare CR inside the head': `GET / HTTP/1.1\r\n${H}\rX-A: b\r\n\r\n`,
    'no Host in HTTP/1.1': `GET /e/pub/ HTTP/1.1\r\nX-A: b\r\n\r\n`,
    'two Host headers': `GET / HTTP/1.1\r\n${H}\r\nHost: other.localhost\r\n\r\n`,
    'Host with a path': `GET /e/pub/ HTTP/1.1\r\nHost: pub.localhost/x\r\n\r\n`,
    'Host with userinfo': `GET / HTTP/1.1\r\nHost: x@pub.localhost\r\n\r\n`,
    'HTTP/2.0 in the request line': `GET / HTTP/2.0\r\n${H}\r\n\r\n`,
    'HTTP/1.2 in the request line': `GET / HTTP/1.2\r\n${H}\r\n\r\n`,
  };

  for (const [name, payload] of Object.entries(ambiguous)) {
    it(`refuses ${name} with 400, closes, and nothing reaches the upstream`, async () => {
      // The request hidden behind the ambiguous one must never become an upstream request.
      const res = await rawSend(gw.port, payload + SMUGGLED, { idleMs: 1500 });
      expect(res.closed).toBe(true);
      expect(res.responses.length).toBe(1);
      const [r] = res.responses;
      expect(r.status).toBe(400);
      expect(r.headers['content-type']).toBe('application/json');
      expect(JSON.parse(r.body).error.code).toBe('GW_BAD_REQUEST');
      expect(up.requests).toEqual([]);
      expect(upstreamBytes()).toBe('');
    });
  }

  it('forwards a request hidden inside a Content-Length body as body bytes, exactly', async () => {
    const body = `x${SMUGGLED}`;
    const res = await rawSend(gw.port, `POST /in HTTP/1.1\r\n${H}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
    expect(res.responses.map((r) => r.status)).toEqual([200]);
    expect(up.requests.length).toBe(1);
    expect(up.requests[0].line).toBe('POST /in HTTP/1.1');
    expect(up.requests[0].body.toString('latin1')).toBe(body);
    expect(up.connections.every((c) => c.garbage === '')).toBe(true);
  });

  it('forwards a request hidden inside a chunked body as body bytes, exactly', async () => {
    const body = `0\r\n\r\n${SMUGGLED}`;
    const payload = `POST /in HTTP/1.1\r\n${H}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
    const res = await rawSend(gw.port, payload);
    expect(res.responses.map((r) => r.status)).toEqual([200]);
    expect(up.requests.length).toBe(1);
    expect(up.requests[0].body.toString('latin1')).toBe(body);
  });

  it('forwards exactly the framed body and refuses the bytes after it', async () => {
    const res = await rawSend(gw.port, `POST /exact HTTP/1.1\r\n${H}\r\nContent-Length: 5\r\n\r\nabcdeXYZ garbage\r\n\r\n`, { idleMs: 1500 });
    expect(res.closed).toBe(true);
    expect(up.requests.length).toBe(1);
    expect(up.requests[0].body.toString()).toBe('abcde');
    expect(upstreamBytes()).not.toContain('XYZ');
  });

  it('re-frames chunk extensions and accepted TE spellings as plain chunked or a length', async () => {
    const variants = [
      `Transfer-Encoding: chunked\r\n\r\n5;ext=1\r\nabcde\r\n0\r\n\r\n`,
      `Transfer-Encoding:\tchunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n`,
      `Transfer-Encoding:   CHUNKED  \r\n\r\n5\r\nabcde\r\n0\r\n\r\n`,
    ];
    for (const v of variants) {
      up.reset();
      const res = await rawSend(gw.port, `POST /te HTTP/1.1\r\n${H}\r\nConnection: close\r\n${v}`);
      expect(res.responses.map((r) => r.status)).toEqual([200]);
      expect(up.requests.length).toBe(1);
      const req = up.requests[0];
      expect(req.body.toString()).toBe('abcde');
      const te = up.headerValues(req, 'transfer-encoding');
      const cl = up.headerValues(req, 'content-length');
      // Exactly one framing, in its canonical spelling.
      expect(te.length + cl.length).toBe(1);
      if (te.length === 1) expect(te[0]).toBe('chunked');
      expect(req.raw.toString('latin1')).not.toContain('ext=1');
    }
  });

  it('keeps pipelined, well-framed requests apart (one upstream request each)', async () => {
    const payload = `POST /one HTTP/1.1\r\n${H}\r\nContent-Length: 3\r\n\r\nabcGET /two HTTP/1.1\r\n${H}\r\nConnection: close\r\n\r\n`;
    const res = await rawSend(gw.port, payload);
    expect(res.responses.map((r) => r.status)).toEqual([200, 200]);
    // Responses keep the client's order; upstream arrival may differ (POST /one's small body is
    // read whole before it is sent, while GET /two goes at once: RFC 9112 §9.3.2 lets a client
    // pipeline after a POST only what does not depend on it).
    expect(up.requests.map((r) => r.line).sort()).toEqual(['GET /two HTTP/1.1', 'POST /one HTTP/1.1']);
    expect(up.requests.find((r) => r.line === 'POST /one HTTP/1.1')!.body.toString()).toBe('abc');
  });

  it('accepts HTTP/1.0 without Host (routes by /e/{name}/ only)', async () => {
    const res = await rawSend(gw.port, 'GET /e/pub/x HTTP/1.0\r\n\r\n');
    expect(res.responses.map((r) => r.status)).toEqual([200]);
    expect(up.requests.map((r) => r.line)).toEqual(['GET /x HTTP/1.1']);
  });

  it('an upstream that answers with extra bytes cannot answer the next request', async () => {
    const splitter = await startRawUpstream({
      respond: (req) =>
        req.target === '/split'
          ? 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nPOISON'
          : 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nclean',
    });
    try {
      await gw.admin('PUT', '/v1/endpoints/split', { public: true, routes: [{ id: 's', url: splitter.url }] });
      const first = await rawSend(gw.port, 'GET /split HTTP/1.1\r\nHost: split.localhost\r\nConnection: close\r\n\r\n');
      expect(first.responses.map((r) => r.body)).toEqual(['ok']);
      for (let i = 0; i < 3; i++) {
        const next = await rawSend(gw.port, 'GET /next HTTP/1.1\r\nHost: split.localhost\r\nConnection: close\r\n\r\n');
        expect(next.text).not.toContain('POISON');
        expect(next.responses[0]?.status).not.toBe(200 + 1);
        if (next.responses[0]?.status === 200) expect(next.responses[0].body).toBe('clean');
      }
    } finally {
      await splitter.close();
    }
  });
});
