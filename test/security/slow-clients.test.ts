import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { rawRequest, rawSend } from '../support/raw-client.js';
import { startRawUpstream, type RawUpstream } from '../support/raw-upstream.js';

/**
 * Slowloris and friends: header, body and keep-alive idle timeouts close dribbling connections
 * (short settings here; defaults in docs/security.md), a few hundred slow sockets do not stop
 * normal requests, and MAX_CONNECTIONS caps the sockets of one instance.
 */

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
  });
}

/** ms until the gateway closes the socket (rejects after maxMs). */
function closedWithin(s: Socket, maxMs: number): Promise<{ ms: number; text: string }> {
  const start = Date.now();
  let text = '';
  s.on('data', (c: Buffer) => (text += c.toString('latin1')));
  return new Promise((resolve, reject) => {
    if (s.destroyed) return resolve({ ms: 0, text });
    const timer = setTimeout(() => reject(new Error(`socket still open after ${maxMs} ms`)), maxMs);
    s.once('close', () => {
      clearTimeout(timer);
      resolve({ ms: Date.now() - start, text });
    });
    s.on('error', () => {});
  });
}

describe('security: slow and idle clients', () => {
  let gw: TestGateway;
  let up: RawUpstream;

  beforeAll(async () => {
    gw = await startTestGateway({ HEADERS_TIMEOUT_MS: '600', REQUEST_BODY_TIMEOUT_MS: '1200', KEEP_ALIVE_TIMEOUT_MS: '300' });
    up = await startRawUpstream();
    await gw.admin('PUT', '/v1/endpoints/pub', { public: true, routes: [{ id: 'a', url: up.url }] });
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });

  it('closes a connection that sends nothing (HEADERS_TIMEOUT_MS)', async () => {
    const s = await open(gw.port);
    const { ms } = await closedWithin(s, 3000);
    expect(ms).toBeLessThan(2000);
  });

  it('closes a connection that dribbles its headers, even while bytes keep coming', async () => {
    const s = await open(gw.port);
    const head = 'GET / HTTP/1.1\r\nHost: pub.localhost\r\n' + 'X-Slow: a\r\n'.repeat(100);
    let i = 0;
    const timer = setInterval(() => {
      if (!s.destroyed && i < head.length) s.write(head[i++]);
    }, 20);
    try {
      const { ms, text } = await closedWithin(s, 3000);
      expect(ms).toBeLessThan(2000);
      expect(text).toMatch(/^HTTP\/1\.1 408 /);
    } finally {
      clearInterval(timer);
    }
    expect(up.requests.length).toBe(0);
  });

  it('closes a connection that dribbles its body (REQUEST_BODY_TIMEOUT_MS)', async () => {
    const s = await open(gw.port);
    s.write('POST / HTTP/1.1\r\nHost: pub.localhost\r\nContent-Length: 10000\r\n\r\n');
    const timer = setInterval(() => {
      if (!s.destroyed) s.write('x');
    }, 50);
    try {
      const { ms } = await closedWithin(s, 4000);
      expect(ms).toBeLessThan(2500);
    } finally {
      clearInterval(timer);
    }
  });

  it('closes an idle keep-alive connection after KEEP_ALIVE_TIMEOUT_MS', async () => {
    const s = await open(gw.port);
    s.write(rawRequest('GET', '/', ['Host: pub.localhost']));
    const { ms, text } = await closedWithin(s, 3000);
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    // node arms the idle timer at keepAliveTimeout plus its own ~1 s grace.
    expect(ms).toBeLessThan(2500);
  });

  it('serves normal requests while 300 slow sockets dribble, then sheds them all', async () => {
    const slow: Socket[] = [];
    for (let i = 0; i < 300; i++) {
      const s = await open(gw.port);
      s.on('error', () => {});
      s.write('GET / HTTP/1.1\r\nHost: pub.localhost\r\nX-A: ');
      slow.push(s);
    }
    const drip = setInterval(() => {
      for (const s of slow) if (!s.destroyed) s.write('a');
    }, 100);
    try {
      const started = Date.now();
      const results = await Promise.all(
        Array.from({ length: 20 }, () => rawSend(gw.port, rawRequest('GET', '/', ['Host: pub.localhost', 'Connection: close']), { idleMs: 2000 })),
      );
      expect(results.map((r) => r.responses[0]?.status)).toEqual(Array(20).fill(200));
      expect(Date.now() - started).toBeLessThan(1500);
      const closed = await Promise.all(slow.map((s) => closedWithin(s, 4000)));
      expect(closed.every((c) => c.ms < 4000)).toBe(true);
    } finally {
      clearInterval(drip);
      for (const s of slow) s.destroy();
    }
  });

  it('caps connections per instance at MAX_CONNECTIONS and recovers when they go', async () => {
    const capped = await startTestGateway({ MAX_CONNECTIONS: '20' });
    const held: Socket[] = [];
    try {
      await capped.admin('PUT', '/v1/endpoints/pub', { public: true, routes: [{ id: 'a', url: up.url }] });
      for (let i = 0; i < 20; i++) held.push(await open(capped.port));
      await new Promise((r) => setTimeout(r, 100));
      const over = await open(capped.port);
      const { ms, text } = await closedWithin(over, 2000);
      expect(ms).toBeLessThan(1000);
      // The design's answer for a full connection limit, not a silent close.
      expect(text).toContain('HTTP/1.1 503');
      expect(text).toContain('GW_OVERLOADED');
      expect(text.toLowerCase()).toContain('retry-after: 1');
      for (const s of held.splice(0, 5)) s.destroy();
      await new Promise((r) => setTimeout(r, 100));
      const res = await rawSend(capped.port, rawRequest('GET', '/', ['Host: pub.localhost', 'Connection: close']), { idleMs: 2000 });
      expect(res.responses[0]?.status).toBe(200);
    } finally {
      for (const s of held) s.destroy();
      await capped.stop();
    }
  });
});
