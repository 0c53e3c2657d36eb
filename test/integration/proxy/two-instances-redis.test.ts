import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { eventually, startUpstream, type TestUpstream } from '../../support/upstream.js';

async function whoAnswers(gw: TestGateway, name: string): Promise<string | number> {
  const res = await fetch(`${gw.url}/e/${name}/`);
  if (res.status !== 200) return res.status;
  return ((await res.json()) as any).upstream;
}

describe('two gateway instances on one Redis', () => {
  let a: TestGateway;
  let b: TestGateway;
  let up1: TestUpstream;
  let up2: TestUpstream;

  beforeAll(async () => {
    const env = { REDIS_URL: inject('redisUrl'), REDIS_PREFIX: `t2i-${randomBytes(4).toString('hex')}:`, RESYNC_INTERVAL_MS: '60000' };
    a = await startTestGateway(env);
    b = await startTestGateway(env);
    up1 = await startUpstream(undefined, { name: 'one' });
    up2 = await startUpstream(undefined, { name: 'two' });
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await up1?.close();
    await up2?.close();
  });

  it('serves on B what was created through A, and follows changes within 1 s', async () => {
    const created = await a.admin('PUT', '/v1/endpoints/shared', { public: true, routes: [{ id: 'r1', url: up1.url }] });
    expect(created.status).toBe(201);
    expect(await whoAnswers(b, 'shared')).toBe('one');

    // B now holds the table in memory; a change through A must reach it by event, not resync (60 s).
    const started = Date.now();
    await a.admin('PUT', '/v1/endpoints/shared/routes', { routes: [{ id: 'r2', url: up2.url }] });
    await eventually(async () => (await whoAnswers(b, 'shared')) === 'two', 1000, 10);
    expect(Date.now() - started).toBeLessThan(1000);

    // And the other way round.
    await b.admin('PATCH', '/v1/endpoints/shared', { routes: [{ id: 'r1', url: up1.url }] });
    await eventually(async () => (await whoAnswers(a, 'shared')) === 'one', 1000, 10);
  });

  it('forgets a deleted endpoint on every instance within 1 s', async () => {
    await a.admin('PUT', '/v1/endpoints/temp', { public: true, routes: [{ url: up1.url }] });
    expect(await whoAnswers(b, 'temp')).toBe('one');
    await a.admin('DELETE', '/v1/endpoints/temp');
    await eventually(async () => (await whoAnswers(b, 'temp')) === 404, 1000, 10);
  });

  it('sees an endpoint created after B cached it as unknown (negative entry cleared by the event)', async () => {
    expect(await whoAnswers(b, 'late')).toBe(404);
    await a.admin('PUT', '/v1/endpoints/late', { public: true, routes: [{ url: up2.url }] });
    await eventually(async () => (await whoAnswers(b, 'late')) === 'two', 1000, 10);
  });
});
