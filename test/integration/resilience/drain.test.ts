import { connect, type Socket } from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnGateway } from '../../support/gateway.js';
import { startUpstream, type TestUpstream } from '../../support/upstream.js';
import { call } from './support.js';
import { sleep } from '../../support/eventually.js';

/**
 * Graceful drain on SIGTERM/SIGINT, with the gateway as a real child process: /readyz turns 503 at
 * once, no new connections are accepted, in-flight streams finish (up to DRAIN_GRACE_MS), exit 0.
 */
describe('graceful drain', () => {
  let up: TestUpstream;

  beforeAll(async () => {
    up = await startUpstream(
      (req, res) => {
        const n = Number(new URL(req.url!, 'http://x').searchParams.get('n') ?? '10');
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        let i = 0;
        const timer = setInterval(() => {
          res.write(`data: ${i}\n\n`);
          if (++i === n) {
            clearInterval(timer);
            res.end('data: [DONE]\n\n');
          }
        }, 150);
        res.on('close', () => clearInterval(timer));
      },
      { streaming: true },
    );
  });
  afterAll(async () => {
    await up?.close();
  });

  /** A connection with a request half-written, so the server counts it as busy, not idle. */
  async function halfWrittenReadyz(port: number): Promise<{ socket: Socket; finish(): Promise<string> }> {
    const socket = connect(port, '127.0.0.1');
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    socket.write('GET /readyz HTTP/1.1\r\nHost: localhost\r\n');
    return {
      socket,
      finish: () =>
        new Promise((resolve, reject) => {
          let data = '';
          socket.on('data', (d) => (data += d.toString()));
          socket.once('error', reject);
          socket.once('close', () => resolve(data));
          socket.write('Connection: close\r\n\r\n');
        }),
    };
  }

  it('SIGTERM during a slow streamed response: /readyz 503 at once, stream completes, new connections refused, exit 0', async () => {
    const gw = await spawnGateway({ DRAIN_GRACE_MS: '15000' });
    try {
      await gw.admin('PUT', '/v1/endpoints/svc', { public: true, routes: [{ id: 'a', url: up.url }] });
      const pending = await halfWrittenReadyz(gw.port);
      const chunks: string[] = [];
      let firstChunk!: () => void;
      const gotFirst = new Promise<void>((r) => (firstChunk = r));
      const stream = call(gw.port, {
        path: '/generate?n=15', // ≈ 2.3 s
        onChunk: (c) => {
          chunks.push(c);
          firstChunk();
        },
      });
      await gotFirst;
      const signalledAt = Date.now();
      gw.child.kill('SIGTERM');
      await sleep(300);
      const readyz = await pending.finish();
      expect(readyz).toMatch(/^HTTP\/1\.1 503/);
      expect(readyz).toContain('"status":"draining"');
      // The listener is closed: nobody new gets in.
      const refused = await call(gw.port, { path: '/healthz' });
      expect(refused.status).toBe(-1);
      const r = await stream;
      expect(r.status).toBe(200);
      expect(r.truncated).toBe(false);
      expect(r.body.match(/data: \d+/g)?.length).toBe(15);
      expect(r.body.endsWith('data: [DONE]\n\n')).toBe(true);
      expect(await gw.exited).toBe(0);
      expect(Date.now() - signalledAt).toBeLessThan(10_000);
      expect(gw.lines.some((l) => l.includes('draining'))).toBe(true);
    } finally {
      await gw.stop('SIGKILL');
    }
  });

  it('SIGINT with a stream longer than DRAIN_GRACE_MS: cut at the grace period, still exit 0', async () => {
    const gw = await spawnGateway({ DRAIN_GRACE_MS: '800' });
    try {
      await gw.admin('PUT', '/v1/endpoints/svc', { public: true, routes: [{ id: 'a', url: up.url }] });
      let firstChunk!: () => void;
      const gotFirst = new Promise<void>((r) => (firstChunk = r));
      const stream = call(gw.port, { path: '/generate?n=100', onChunk: () => firstChunk() });
      await gotFirst;
      const t0 = Date.now();
      gw.child.kill('SIGINT');
      const r = await stream;
      expect(r.truncated).toBe(true);
      const cutAfter = Date.now() - t0;
      expect(cutAfter).toBeGreaterThanOrEqual(700);
      expect(cutAfter).toBeLessThan(5000);
      expect(await gw.exited).toBe(0);
    } finally {
      await gw.stop('SIGKILL');
    }
  });

  it('an uncaught exception drains like SIGTERM (the stream completes), then exits 1', async () => {
    const hook = pathToFileURL(fileURLToPath(new URL('../../fixtures/throw-on-sigusr2.mjs', import.meta.url))).href;
    const gw = await spawnGateway({ DRAIN_GRACE_MS: '15000', NODE_OPTIONS: `--import ${hook}` });
    try {
      await gw.admin('PUT', '/v1/endpoints/svc', { public: true, routes: [{ id: 'a', url: up.url }] });
      let firstChunk!: () => void;
      const gotFirst = new Promise<void>((r) => (firstChunk = r));
      const stream = call(gw.port, { path: '/generate?n=10', onChunk: () => firstChunk() });
      await gotFirst;
      gw.child.kill('SIGUSR2');
      const r = await stream;
      expect(r.status).toBe(200);
      expect(r.truncated).toBe(false);
      expect(r.body.endsWith('data: [DONE]\n\n')).toBe(true);
      expect(await gw.exited).toBe(1);
      expect(gw.lines.some((l) => l.includes('uncaught exception') && l.includes('test: thrown on SIGUSR2'))).toBe(true);
      expect(gw.lines.some((l) => l.includes('"msg":"stopped"'))).toBe(true);
    } finally {
      await gw.stop('SIGKILL');
    }
  });

  it('an idle gateway exits at once on SIGTERM', async () => {
    const gw = await spawnGateway({ DRAIN_GRACE_MS: '30000' });
    const t0 = Date.now();
    gw.child.kill('SIGTERM');
    expect(await gw.exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});
