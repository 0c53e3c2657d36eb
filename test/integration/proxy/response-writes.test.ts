import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { startUpstream, type TestUpstream } from '../../support/upstream.js';

/**
 * The shortcuts on the response path (docs/performance.md, "Response writes"): a checked head
 * stored without node's second validation, a Content-Length body's last piece sent with the end
 * (a small one as one string with the head), a bodiless request's stream left unread, and the
 * 'drain' listener added only when the client's socket is full. None may change a byte the
 * client receives, the connection's reuse, or backpressure.
 */

/** Every byte value, repeated: a latin1 round trip that lost or changed a byte shows here. */
function pattern(size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = (i * 7 + 3) & 0xff;
  return b;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  reused: boolean;
}

function call(port: number, path: string, opts: { method?: string; body?: Buffer; agent?: Agent } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', agent: opts.agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks), reused: req.reusedSocket }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe('response writes through the gateway', () => {
  let gw: TestGateway;
  let up: TestUpstream;

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startUpstream((req, res, body) => {
      const url = new URL(req.url!, 'http://x');
      if (url.pathname === '/bytes') {
        const size = Number(url.searchParams.get('size'));
        const data = pattern(size);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size), 'x-size': String(size) });
        // In two writes when asked: the body's last piece then arrives in a read of its own.
        if (url.searchParams.get('split') === '1' && size > 1) {
          res.write(data.subarray(0, size >> 1));
          setTimeout(() => res.end(data.subarray(size >> 1)), 20);
        } else res.end(req.method === 'HEAD' ? undefined : data);
        return;
      }
      if (url.pathname === '/echo') {
        res.writeHead(200, { 'content-length': String(body.length) });
        res.end(body);
        return;
      }
      if (url.pathname === '/empty') {
        res.writeHead(204, { 'x-empty': '1' });
        res.end();
        return;
      }
      res.writeHead(404, { 'content-length': '0' });
      res.end();
    });
    const put = await gw.admin('PUT', '/v1/endpoints/bytes', { public: true, routes: [{ id: 'a', url: up.url }] });
    expect(put.status).toBe(201);
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });

  it('delivers Content-Length bodies byte for byte around the small-body bound, in one read or two', async () => {
    for (const size of [1, 100, 4095, 4096, 4097, 16 * 1024, 256 * 1024]) {
      for (const split of ['0', '1']) {
        const got = await call(gw.port, `/e/bytes/bytes?size=${size}&split=${split}`);
        expect(got.status).toBe(200);
        expect(got.headers['content-length']).toBe(String(size));
        expect(got.headers['x-size']).toBe(String(size));
        expect(got.headers['x-request-id']).toBeTruthy();
        expect(got.body.equals(pattern(size)), `size ${size} split ${split}`).toBe(true);
      }
    }
  });

  it('keeps one client connection through bodiless and bodied requests alike', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const steps: Answer[] = [];
      steps.push(await call(gw.port, '/e/bytes/bytes?size=10', { agent }));
      steps.push(await call(gw.port, '/e/bytes/echo', { method: 'POST', body: Buffer.from('prompt'), agent }));
      steps.push(await call(gw.port, '/e/bytes/bytes?size=20', { method: 'HEAD', agent }));
      steps.push(await call(gw.port, '/e/bytes/empty', { agent }));
      steps.push(await call(gw.port, '/e/bytes/echo', { method: 'POST', body: pattern(9000), agent }));
      steps.push(await call(gw.port, '/e/bytes/bytes?size=30', { agent }));
      expect(steps.map((s) => s.status)).toEqual([200, 200, 200, 204, 200, 200]);
      expect(steps[1].body.toString()).toBe('prompt');
      expect(steps[4].body.equals(pattern(9000))).toBe(true);
      expect(steps[5].body.equals(pattern(30))).toBe(true);
      expect(steps.slice(1).every((s) => s.reused)).toBe(true);
    } finally {
      agent.destroy();
    }
  });

  it('answers pipelined requests in order on one connection', async () => {
    const socket = connect(gw.port, '127.0.0.1');
    const received: Buffer[] = [];
    socket.on('data', (d: Buffer) => received.push(d));
    await new Promise<void>((r) => socket.once('connect', () => r()));
    const get = (size: number) => `GET /e/bytes/bytes?size=${size} HTTP/1.1\r\nHost: localhost\r\n\r\n`;
    socket.write(get(3) + get(5000) + `POST /e/bytes/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\nabcd` + get(7));
    const expected = [pattern(3), pattern(5000), Buffer.from('abcd'), pattern(7)];
    const deadline = Date.now() + 5000;
    let bodies: Buffer[] = [];
    while (Date.now() < deadline) {
      bodies = splitResponses(Buffer.concat(received));
      if (bodies.length === expected.length) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    socket.destroy();
    expect(bodies.length).toBe(expected.length);
    bodies.forEach((b, i) => expect(b.equals(expected[i]), `response ${i}`).toBe(true));
  });

  it('holds the upstream while a client reads slowly, then delivers the whole body', async () => {
    const size = 8 * 1024 * 1024;
    const got = await new Promise<{ body: Buffer; paused: number }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: gw.port, path: `/e/bytes/bytes?size=${size}` }, (res) => {
        const chunks: Buffer[] = [];
        let paused = 0;
        res.on('data', (c: Buffer) => {
          chunks.push(c);
          // Reads in bursts with pauses, so the gateway's socket to this client fills up.
          if (chunks.length % 16 === 0) {
            paused++;
            res.pause();
            setTimeout(() => res.resume(), 5);
          }
        });
        res.on('end', () => resolve({ body: Buffer.concat(chunks), paused }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(got.body.length).toBe(size);
    expect(got.body.equals(pattern(size))).toBe(true);
    expect(got.paused).toBeGreaterThan(0);
  });
});

/** The bodies of back-to-back HTTP/1.1 responses framed by Content-Length (stops at an incomplete one). */
function splitResponses(all: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (;;) {
    const end = all.indexOf('\r\n\r\n', at);
    if (end < 0) return out;
    const head = all.subarray(at, end).toString('latin1');
    const m = /content-length: (\d+)/i.exec(head);
    const length = m ? Number(m[1]) : 0;
    if (all.length < end + 4 + length) return out;
    out.push(all.subarray(end + 4, end + 4 + length));
    at = end + 4 + length;
  }
}
