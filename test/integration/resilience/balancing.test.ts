import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { startUpstream, type TestUpstream } from '../../support/upstream.js';
import { call } from './support.js';
import { sleep } from '../../support/eventually.js';

/** Weighted p2c by default, weighted round-robin on request; weight 0 / non-healthy routes drain. */
describe('balancing', () => {
  let gw: TestGateway;
  const ups: TestUpstream[] = [];
  let slowRelease: (() => void) | null = null;

  beforeAll(async () => {
    gw = await startTestGateway();
    for (const name of ['a', 'b', 'c']) {
      ups.push(
        await startUpstream(
          (req, res) => {
            if (req.url === '/slow') {
              res.writeHead(200, { 'content-type': 'text/plain' });
              res.write('start;');
              slowRelease = () => res.end('end');
              return;
            }
            res.end(name);
          },
          { name },
        ),
      );
    }
  });
  afterAll(async () => {
    await gw?.stop();
    for (const u of ups) await u.close();
  });

  async function tally(n: number, concurrency = 1): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < n) {
          next++;
          const r = await call(gw.port);
          expect(r.status).toBe(200);
          counts[r.body] = (counts[r.body] ?? 0) + 1;
        }
      }),
    );
    return counts;
  }

  it('round-robin follows the weights exactly', async () => {
    await gw.admin('PUT', '/v1/endpoints/svc', {
      public: true,
      balancer: 'round_robin',
      routes: [
        { id: 'a', url: ups[0].url, weight: 3 },
        { id: 'b', url: ups[1].url, weight: 1 },
        { id: 'c', url: ups[2].url, weight: 0 },
      ],
    });
    expect(await tally(40)).toEqual({ a: 30, b: 10 });
  });

  it('p2c (default) spreads by weight and never picks weight 0 or non-healthy routes', async () => {
    await gw.admin('PUT', '/v1/endpoints/svc', {
      public: true,
      routes: [
        { id: 'a', url: ups[0].url, weight: 1 },
        { id: 'b', url: ups[1].url, weight: 4 },
        { id: 'c', url: ups[2].url, weight: 5, status: 'unhealthy' },
      ],
    });
    const counts = await tally(400, 8);
    expect(counts.c).toBeUndefined();
    expect(counts.a + counts.b).toBe(400);
    // Weighted 1:4 (the tie-breaking on outstanding counts pushes it towards even, never past it).
    expect(counts.b).toBeGreaterThan(counts.a * 1.5);
    for (const status of ['terminating', 'provisioning', 'failed_to_start']) {
      await gw.admin('PATCH', '/v1/endpoints/svc/routes/b', { status });
      const only = await tally(20, 4);
      expect(only).toEqual({ a: 20 });
    }
  });

  it('a slow in-flight request to a route that becomes weight 0 completes; new requests avoid it', async () => {
    await gw.admin('PUT', '/v1/endpoints/svc', {
      public: true,
      routes: [{ id: 'a', url: ups[0].url }],
    });
    const chunks: string[] = [];
    const slow = call(gw.port, { path: '/slow', onChunk: (c) => chunks.push(c) });
    while (slowRelease === null) await sleep(10);
    await gw.admin('PUT', '/v1/endpoints/svc/routes', {
      routes: [
        { id: 'a', url: ups[0].url, weight: 0 },
        { id: 'b', url: ups[1].url },
      ],
    });
    expect(await tally(10)).toEqual({ b: 10 });
    // Also remove the route entirely: its pool must not cut the in-flight request.
    await gw.admin('PUT', '/v1/endpoints/svc/routes', { routes: [{ id: 'b', url: ups[1].url }] });
    expect(await tally(5)).toEqual({ b: 5 });
    await sleep(100);
    slowRelease!();
    const r = await slow;
    expect(r.status).toBe(200);
    expect(r.truncated).toBe(false);
    expect(r.body).toBe('start;end');
  });
});
