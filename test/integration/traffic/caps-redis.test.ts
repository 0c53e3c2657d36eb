import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { spawnGateway, startTestGateway, type SpawnedGateway, type TestGateway } from '../../support/gateway.js';
import { startOpenAiUpstream, type OpenAiUpstream } from '../../support/openai-upstream.js';
import { eventually } from '../../support/eventually.js';
import { chat, metric } from './support.js';

describe('max_in_flight_per_route across two gateway instances on one Redis', () => {
  let a: TestGateway;
  let b: TestGateway;
  let up: OpenAiUpstream;
  let env: Record<string, string>;

  beforeAll(async () => {
    env = { REDIS_URL: inject('redisUrl'), REDIS_PREFIX: `tcap-${randomBytes(4).toString('hex')}:` };
    a = await startTestGateway(env);
    b = await startTestGateway(env);
    up = await startOpenAiUpstream();
  });
  afterAll(async () => {
    up.holding = false;
    up.release();
    await a?.stop();
    await b?.stop();
    await up?.close();
  });

  it('counts the cap across instances: the replica never sees more than the cap in total', async () => {
    await a.admin('PUT', '/v1/endpoints/shared-cap', { public: true, routes: [{ id: 'r1', url: up.url }], limits: { max_in_flight_per_route: 3 } });
    up.holding = true;
    const all = [
      ...Array.from({ length: 5 }, () => chat(a.url, 'shared-cap')),
      ...Array.from({ length: 5 }, () => chat(b.url, 'shared-cap')),
    ];
    await eventually(() => up.inFlight === 3);
    await eventually(async () => (await metric(a, 'modelgate_traffic_queued_requests')) + (await metric(b, 'modelgate_traffic_queued_requests')) === 7);
    // Held long enough for the other instance's queue to poll Redis several times.
    await new Promise((r) => setTimeout(r, 300));
    expect(up.inFlight).toBe(3);
    up.holding = false;
    up.release();
    const results = await Promise.all(all);
    expect(results.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(up.maxInFlight).toBe(3);
  });

  it("gives a crashed instance's slots back within 10 s", async () => {
    await a.admin('PUT', '/v1/endpoints/crash-cap', { public: true, routes: [{ id: 'r1', url: up.url }], limits: { max_in_flight_per_route: 1, queue: { max_wait_ms: 20_000 } } });
    let victim: SpawnedGateway | undefined;
    try {
      victim = await spawnGateway(env);
      up.holding = true;
      const before = up.requests;
      const stuck = fetch(`${victim.url}/e/crash-cap/v1/chat/completions`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } }).catch(() => null);
      await eventually(() => up.requests === before + 1, 10_000);
      up.holding = false;
      // The slot is leased to the victim; kill it without a chance to release.
      victim.child.kill('SIGKILL');
      await victim.exited;
      void stuck;
      const started = Date.now();
      const res = await chat(a.url, 'crash-cap');
      expect(res.status).toBe(200);
      expect(Date.now() - started).toBeLessThan(10_500);
    } finally {
      up.release();
      if (victim && victim.child.exitCode === null) victim.child.kill('SIGKILL');
    }
  }, 30_000);
});
