import { request, type ClientRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { startUpstream, type TestUpstream } from '../../support/upstream.js';
import { eventually } from '../../support/eventually.js';

const BUFFER_MAX = 1024;

/** A POST whose body the client sends in two parts, `pauseMs` apart; resolves with the status. */
function postInTwoParts(port: number, first: string, second: string, pauseMs: number, onPause: (req: ClientRequest) => void = () => {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/e/buf/upload', method: 'POST', headers: { 'content-length': String(first.length + second.length), 'content-type': 'text/plain' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      },
    );
    req.on('error', reject);
    req.flushHeaders();
    req.write(first);
    setTimeout(() => {
      onPause(req);
      req.end(second);
    }, pauseMs);
  });
}

describe('small request bodies are sent upstream whole (REQUEST_BUFFER_MAX_BYTES)', () => {
  let gw: TestGateway;
  let up: TestUpstream;
  /** When the upstream saw each request's head, and when its body was complete. */
  const seen: { headAt: number; bodyAt: number; body: string; contentLength: string | undefined }[] = [];

  beforeAll(async () => {
    gw = await startTestGateway({ REQUEST_BUFFER_MAX_BYTES: String(BUFFER_MAX) });
    up = await startUpstream(
      (req, res) => {
        const entry = { headAt: Date.now(), bodyAt: 0, body: '', contentLength: req.headers['content-length'] };
        seen.push(entry);
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          entry.bodyAt = Date.now();
          entry.body = Buffer.concat(chunks).toString();
          res.end('ok');
        });
      },
      { streaming: true },
    );
    await gw.admin('PUT', '/v1/endpoints/buf', { public: true, routes: [{ url: up.url }] });
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });

  it('reads a body up to the bound whole before the upstream sees the request, and sends it intact', async () => {
    seen.length = 0;
    let secondSentAt = 0;
    const status = await postInTwoParts(gw.port, 'a'.repeat(300), 'b'.repeat(300), 200, () => (secondSentAt = Date.now()));
    expect(status).toBe(200);
    expect(seen).toHaveLength(1);
    // The upstream got the head only once the client had sent all of the body.
    expect(seen[0].headAt).toBeGreaterThanOrEqual(secondSentAt);
    expect(seen[0].body).toBe('a'.repeat(300) + 'b'.repeat(300));
    expect(seen[0].contentLength).toBe('600');
  });

  it('streams a body over the bound as it arrives', async () => {
    seen.length = 0;
    let secondSentAt = 0;
    const first = 'c'.repeat(BUFFER_MAX);
    const status = await postInTwoParts(gw.port, first, 'd'.repeat(500), 300, () => (secondSentAt = Date.now()));
    expect(status).toBe(200);
    expect(seen).toHaveLength(1);
    // The upstream had the request (and started on the body) before the client sent the rest.
    expect(seen[0].headAt).toBeLessThan(secondSentAt);
    expect(seen[0].body).toBe(first + 'd'.repeat(500));
  });

  it('sends nothing upstream for a client that leaves mid-body, and goes on serving', async () => {
    seen.length = 0;
    await new Promise<void>((resolve) => {
      const req = request({ host: '127.0.0.1', port: gw.port, path: '/e/buf/upload', method: 'POST', headers: { 'content-length': '500' } });
      req.on('error', () => resolve());
      req.on('close', () => resolve());
      req.flushHeaders();
      req.write('x'.repeat(100));
      setTimeout(() => req.destroy(), 100);
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(seen).toHaveLength(0);
    const status = await postInTwoParts(gw.port, 'e', 'f', 10);
    expect(status).toBe(200);
    await eventually(() => seen.length === 1);
    expect(seen[0].body).toBe('ef');
  });
});

describe('REQUEST_BUFFER_MAX_BYTES=0', () => {
  let gw: TestGateway;
  let up: TestUpstream;
  let headAt = 0;

  beforeAll(async () => {
    gw = await startTestGateway({ REQUEST_BUFFER_MAX_BYTES: '0' });
    up = await startUpstream(
      (req, res) => {
        headAt = Date.now();
        req.resume();
        req.on('end', () => res.end('ok'));
      },
      { streaming: true },
    );
    await gw.admin('PUT', '/v1/endpoints/buf', { public: true, routes: [{ url: up.url }] });
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });

  it('streams every body, however small', async () => {
    let secondSentAt = 0;
    const status = await postInTwoParts(gw.port, 'g'.repeat(10), 'h'.repeat(10), 300, () => (secondSentAt = Date.now()));
    expect(status).toBe(200);
    expect(headAt).toBeGreaterThan(0);
    expect(headAt).toBeLessThan(secondSentAt);
  });
});
