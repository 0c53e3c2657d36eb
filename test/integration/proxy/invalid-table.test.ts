import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { startUpstream, type TestUpstream } from '../../support/upstream.js';
import { eventually } from '../../support/eventually.js';

/** A control plane writing Redis directly can make mistakes; the gateway must not follow them. */
describe('route tables written directly into Redis', () => {
  const prefix = `tinv-${randomBytes(4).toString('hex')}:`;
  let gw: TestGateway;
  let up: TestUpstream;
  let up2: TestUpstream;
  let redis: Redis;
  const warnings: string[] = [];

  beforeAll(async () => {
    redis = new Redis(inject('redisUrl'));
    const destination = new Writable({
      write(chunk: Buffer, _enc, done) {
        warnings.push(...chunk.toString().split('\n').filter(Boolean));
        done();
      },
    });
    gw = await startTestGateway(
      { REDIS_URL: inject('redisUrl'), REDIS_PREFIX: prefix, RESYNC_INTERVAL_MS: '200', LOG_LEVEL: 'warn' },
      { logDestination: destination },
    );
    up = await startUpstream(undefined, { name: 'good' });
    up2 = await startUpstream(undefined, { name: 'external' });
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
    await up2?.close();
    redis?.disconnect();
  });

  /** How often the gateway read `name`'s stored table and refused it (each refusal logs a warning). */
  const refusals = (name: string) => warnings.filter((l) => l.includes(`"endpoint":"${name}"`) && l.includes('ignoring')).length;
  const invalidTotal = async () => {
    const metrics = await (await fetch(`${gw.adminUrl}/metrics`)).text();
    return Number(/^modelgate_invalid_route_tables_total (\d+)/m.exec(metrics)?.[1] ?? NaN);
  };

  const who = async (name: string) => {
    const res = await fetch(`${gw.url}/e/${name}/`);
    return res.status === 200 ? (((await res.json()) as any).upstream as string) : res.status;
  };

  it('serves a valid table written and announced by another control plane', async () => {
    // Another control plane's own id scheme (not a UUID) and minimal route fields.
    const table = { id: 'ext-endpoint-1', name: 'ext', public: true, version: 1, routes: [{ id: 'x', url: up2.url }] };
    await redis.set(`${prefix}endpoint:ext`, JSON.stringify(table));
    await redis.sadd(`${prefix}endpoints`, 'ext');
    await redis.publish(`${prefix}events`, JSON.stringify({ kind: 'endpoint', name: 'ext', version: 1 }));
    await eventually(async () => (await who('ext')) === 'external', { timeoutMs: 2000 });
  });

  it('applies retry.on_reset from a table written directly: a reset request is replayed on the other route', async () => {
    const resetter = await startUpstream((req) => req.socket.destroy());
    try {
      const table = {
        id: 'ext-replay-1',
        name: 'extreplay',
        public: true,
        version: 1,
        retry: { on_reset: 'all' },
        balancer: 'round_robin',
        routes: [
          { id: 'bad', url: resetter.url },
          { id: 'good', url: up2.url },
        ],
      };
      await redis.set(`${prefix}endpoint:extreplay`, JSON.stringify(table));
      await redis.sadd(`${prefix}endpoints`, 'extreplay');
      await redis.publish(`${prefix}events`, JSON.stringify({ kind: 'endpoint', name: 'extreplay', version: 1 }));
      for (let i = 0; i < 4; i++) expect(await who('extreplay')).toBe('external');
      expect(resetter.received.length).toBe(2);
    } finally {
      await resetter.close();
    }
  });

  it.each([
    ['not JSON', '{"id": nope'],
    ['a route URL that is not http(s)', (t: any) => ({ ...t, version: t.version + 1, routes: [{ id: 'r', url: 'file:///etc/passwd' }] })],
    ['a missing id', (t: any) => ({ ...t, id: undefined, version: t.version + 1 })],
    ['another endpoint name', (t: any) => ({ ...t, name: 'other', version: t.version + 1 })],
    ['a wrong type', (t: any) => ({ ...t, public: 'yes', version: t.version + 1 })],
    ['an unknown retry.on_reset', (t: any) => ({ ...t, retry: { on_reset: 'sometimes' }, version: t.version + 1 })],
  ])('ignores a table with %s and keeps serving the last good one', async (_what, bad) => {
    const name = `inv${randomBytes(3).toString('hex')}`;
    const created = await gw.admin('PUT', `/v1/endpoints/${name}`, { public: true, routes: [{ id: 'g', url: up.url }] });
    expect(await who(name)).toBe('good');
    const before = await invalidTotal();
    const value = typeof bad === 'string' ? bad : JSON.stringify(bad(created.body));
    await redis.set(`${prefix}endpoint:${name}`, value);
    await redis.publish(`${prefix}events`, JSON.stringify({ kind: 'endpoint', name, version: created.body.version + 1 }));
    // Refused twice (the event's reload and a resync, or two resyncs): the bad table was read
    // and rejected, not merely not seen yet.
    await eventually(() => refusals(name) >= 2, { what: `two refusals of ${name}` });
    expect(await who(name)).toBe('good');
    expect(await invalidTotal()).toBeGreaterThanOrEqual(before + 2);
  });
});
