import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { startUpstream, type TestUpstream } from '../../support/upstream.js';
import { eventually } from '../../support/eventually.js';

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
    await eventually(async () => (await whoAnswers(b, 'shared')) === 'two', { timeoutMs: 1000, stepMs: 10 });
    expect(Date.now() - started).toBeLessThan(1000);

    // And the other way round.
    await b.admin('PATCH', '/v1/endpoints/shared', { routes: [{ id: 'r1', url: up1.url }] });
    await eventually(async () => (await whoAnswers(a, 'shared')) === 'one', { timeoutMs: 1000, stepMs: 10 });
  });

  it('forgets a deleted endpoint on every instance within 1 s', async () => {
    await a.admin('PUT', '/v1/endpoints/temp', { public: true, routes: [{ url: up1.url }] });
    expect(await whoAnswers(b, 'temp')).toBe('one');
    await a.admin('DELETE', '/v1/endpoints/temp');
    await eventually(async () => (await whoAnswers(b, 'temp')) === 404, { timeoutMs: 1000, stepMs: 10 });
  });

  it('sees an endpoint created after B cached it as unknown (negative entry cleared by the event)', async () => {
    expect(await whoAnswers(b, 'late')).toBe(404);
    await a.admin('PUT', '/v1/endpoints/late', { public: true, routes: [{ url: up2.url }] });
    await eventually(async () => (await whoAnswers(b, 'late')) === 'two', { timeoutMs: 1000, stepMs: 10 });
  });
});

describe('tokens across two instances on one Redis', () => {
  let a: TestGateway;
  let b: TestGateway;
  let up: TestUpstream;

  beforeAll(async () => {
    const env = { REDIS_URL: inject('redisUrl'), REDIS_PREFIX: `t2t-${randomBytes(4).toString('hex')}:`, RESYNC_INTERVAL_MS: '60000' };
    a = await startTestGateway(env);
    b = await startTestGateway(env);
    up = await startUpstream(undefined, { name: 'private' });
    await a.admin('PUT', '/v1/endpoints/priv', { routes: [{ url: up.url }] });
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await up?.close();
  });

  const callWith = (gw: TestGateway, token?: string) =>
    fetch(`${gw.url}/e/priv/`, { headers: token ? { authorization: `BackendAI ${token}` } : {} }).then(async (r) => ({
      status: r.status,
      code: r.status === 200 ? null : (((await r.json()) as any).error.code as string),
    }));

  it('a token issued on A works on B; revoking it on A stops it on B within 1 s', async () => {
    const issued = (await a.admin('POST', '/v1/endpoints/priv/tokens', { ttl_seconds: 600 })).body;
    expect((await callWith(b, issued.token)).status).toBe(200); // now cached on B
    const started = Date.now();
    expect((await a.admin('DELETE', `/v1/endpoints/priv/tokens/${issued.jti}`)).status).toBe(204);
    await eventually(async () => (await callWith(b, issued.token)).code === 'GW_AUTH_REVOKED', { timeoutMs: 1000, stepMs: 10 });
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('deleting the endpoint stops its tokens everywhere, even if it is recreated under the same name', async () => {
    const issued = (await a.admin('POST', '/v1/endpoints/priv/tokens', { ttl_seconds: 600 })).body;
    expect((await callWith(b, issued.token)).status).toBe(200);
    await a.admin('DELETE', '/v1/endpoints/priv');
    await eventually(async () => (await callWith(b, issued.token)).status === 404, { timeoutMs: 1000, stepMs: 10 });
    await a.admin('PUT', '/v1/endpoints/priv', { routes: [{ url: up.url }] });
    await eventually(async () => (await callWith(b, issued.token)).code === 'GW_AUTH_FORBIDDEN', { timeoutMs: 1000, stepMs: 10 });
  });

  it('toggling public takes effect on the other instance within 1 s', async () => {
    expect((await callWith(b)).code).toBe('GW_AUTH_MISSING');
    await a.admin('PATCH', '/v1/endpoints/priv', { public: true });
    await eventually(async () => (await callWith(b)).status === 200, { timeoutMs: 1000, stepMs: 10 });
    await a.admin('PATCH', '/v1/endpoints/priv', { public: false });
    await eventually(async () => (await callWith(b)).code === 'GW_AUTH_MISSING', { timeoutMs: 1000, stepMs: 10 });
  });
});
