import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { startUpstream, type TestUpstream } from '../../support/upstream.js';
import { call, metric } from './support.js';
import { eventually, sleep } from '../../support/eventually.js';

/** A caller that disconnects aborts the upstream request at once; nothing is left in a bad state. */
describe('client gone', () => {
  let gw: TestGateway;
  let up: TestUpstream;
  const upstreamClosedAt: Record<string, number> = {};
  let streamTicks = 0;

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startUpstream(
      (req, res) => {
        const id = String(req.headers['x-test-id'] ?? '');
        res.on('close', () => {
          if (!res.writableFinished) upstreamClosedAt[id] = Date.now();
        });
        if (req.url === '/stream') {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          const timer = setInterval(() => {
            streamTicks++;
            res.write(`data: token\n\n`);
          }, 50);
          res.on('close', () => clearInterval(timer));
          return;
        }
        if (req.url === '/think') return; // generating; headers not sent yet
        res.end('ok');
      },
      { streaming: true },
    );
    await gw.admin('PUT', '/v1/endpoints/svc', { public: true, routes: [{ id: 'a', url: up.url }] });
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });

  function startAndAbort(path: string, id: string, afterFirstChunk: boolean): Promise<number> {
    return new Promise((resolve) => {
      const req = request({ host: '127.0.0.1', port: gw.port, path, headers: { host: 'svc.localhost', 'x-test-id': id } }, (res) => {
        res.once('data', () => {
          if (afterFirstChunk) {
            const at = Date.now();
            req.destroy();
            resolve(at);
          }
        });
      });
      req.on('error', () => {});
      req.end();
      if (!afterFirstChunk) {
        setTimeout(() => {
          const at = Date.now();
          req.destroy();
          resolve(at);
        }, 200);
      }
    });
  }

  it('disconnect mid-stream aborts the upstream request at once (the upstream sees its socket close)', async () => {
    const abortedAt = await startAndAbort('/stream', 's1', true);
    await eventually(() => upstreamClosedAt.s1 !== undefined, { timeoutMs: 2000 });
    // "At once": one event-loop turn or so; the bound is loose because client, gateway and upstream share this busy process.
    expect(upstreamClosedAt.s1 - abortedAt).toBeLessThan(1000);
    // The generation stopped: no more tokens are produced.
    const ticks = streamTicks;
    await sleep(300);
    expect(streamTicks).toBe(ticks);
    expect(await metric(gw.adminUrl, 'modelgate_in_flight_requests')).toBe(0);
  });

  it('disconnect before the response started aborts the upstream request too', async () => {
    const abortedAt = await startAndAbort('/think', 't1', false);
    await eventually(() => upstreamClosedAt.t1 !== undefined, { timeoutMs: 2000 });
    // "At once": one event-loop turn or so; the bound is loose because client, gateway and upstream share this busy process.
    expect(upstreamClosedAt.t1 - abortedAt).toBeLessThan(1000);
    expect(await metric(gw.adminUrl, 'modelgate_in_flight_requests')).toBe(0);
  });

  it('the next requests work and never reuse an aborted upstream connection', async () => {
    for (let i = 0; i < 5; i++) {
      const at = await startAndAbort('/stream', `x${i}`, true);
      expect(at).toBeGreaterThan(0);
      const r = await call(gw.port, { path: '/ok' });
      expect(r.status).toBe(200);
      expect(r.body).toBe('ok');
    }
    const results = await Promise.all(Array.from({ length: 20 }, () => call(gw.port, { path: '/ok' })));
    for (const r of results) expect(r.status).toBe(200);
  });
});
