import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnGateway, type SpawnedGateway } from '../../support/gateway.js';
import { startRedis, type RedisServer } from '../../support/redis-server.js';
import { startUpstream, type TestUpstream } from '../../support/upstream.js';
import { call, errorCode, startTcpRelay, type TcpRelay } from './support.js';
import { eventually, sleep } from '../../support/eventually.js';

/**
 * Redis outages, with this file's own redis-server behind a TCP relay the test can cut: the
 * gateway loses Redis while the test can still write to it directly (a change it must pick up
 * by a full resync, since the pub/sub message is lost).
 */
describe('store outage (Redis)', () => {
  let redis: RedisServer;
  let direct: Redis;
  let a: TestUpstream;
  let b: TestUpstream;

  beforeAll(async () => {
    redis = await startRedis();
    direct = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    a = await startUpstream(undefined, { name: 'a' });
    b = await startUpstream(undefined, { name: 'b' });
  });
  afterAll(async () => {
    direct?.disconnect();
    await redis?.stop();
    await a?.close();
    await b?.close();
  });

  async function readyz(gw: SpawnedGateway) {
    const r = await call(gw.port, { path: '/readyz', host: 'localhost' });
    return { status: r.status, body: JSON.parse(r.body) };
  }
  const upstreamOf = (body: string) => JSON.parse(body).upstream;
  const count = (gw: SpawnedGateway, text: string) => gw.lines.filter((l) => l.includes(text)).length;

  it('lost later: keeps serving the last good tables (degraded), reconnects, resyncs in full, logs each transition once', async () => {
    const relay: TcpRelay = await startTcpRelay(redis.port);
    const prefix = `outage-${randomUUID().slice(0, 8)}:`;
    const gw = await spawnGateway({ REDIS_URL: relay.url, REDIS_PREFIX: prefix, RESYNC_INTERVAL_MS: '600000' });
    try {
      const put = await gw.admin('PUT', '/v1/endpoints/svc', { public: true, routes: [{ id: 'a', url: a.url }] });
      expect(put.status).toBe(201);
      expect(upstreamOf((await call(gw.port)).body)).toBe('a');
      expect((await readyz(gw)).body).toMatchObject({ status: 'ready', store: 'up' });

      await relay.cut();
      await eventually(async () => (await readyz(gw)).body.status === 'degraded', { timeoutMs: 5000 });
      const ready = await readyz(gw);
      expect(ready.status).toBe(200);
      expect(ready.body.store).toBe('down');
      // Many requests while down: all served from the last good table, nothing logged per request.
      for (let i = 0; i < 50; i++) {
        const r = await call(gw.port);
        expect(r.status).toBe(200);
        expect(upstreamOf(r.body)).toBe('a');
      }

      // A change made while this gateway is cut off (its pub/sub message is lost).
      const key = `${prefix}endpoint:svc`;
      const table = JSON.parse((await direct.get(key))!);
      table.version += 1;
      table.routes = [{ id: 'b', url: b.url, weight: 1, status: 'healthy' }];
      await direct.set(key, JSON.stringify(table));
      await direct.publish(`${prefix}events`, JSON.stringify({ kind: 'endpoint', name: 'svc', version: table.version }));
      await sleep(1500); // several reconnect attempts with backoff
      expect(upstreamOf((await call(gw.port)).body)).toBe('a');

      await relay.restore();
      await eventually(async () => (await readyz(gw)).body.status === 'ready', { timeoutMs: 10_000 });
      await eventually(async () => upstreamOf((await call(gw.port)).body) === 'b', { timeoutMs: 5000 });

      expect(count(gw, 'redis store down')).toBe(1);
      expect(count(gw, 'redis store connected')).toBe(2); // start-up + reconnect
    } finally {
      await gw.stop('SIGKILL');
      await relay.close();
    }
  });

  it('Redis down at start-up: the gateway still starts, /readyz unavailable until the store is back, then serves', async () => {
    const relay: TcpRelay = await startTcpRelay(redis.port);
    const prefix = `cold-${randomUUID().slice(0, 8)}:`;
    // The table exists in Redis, but the gateway cannot reach it.
    const table = { id: randomUUID(), name: 'svc', public: true, version: 1, routes: [{ id: 'a', url: a.url, weight: 1, status: 'healthy' }] };
    await direct.set(`${prefix}endpoint:svc`, JSON.stringify(table));
    await direct.sadd(`${prefix}endpoints`, 'svc');
    await relay.cut();
    const gw = await spawnGateway({ REDIS_URL: relay.url, REDIS_PREFIX: prefix });
    try {
      const r0 = await readyz(gw);
      expect(r0.status).toBe(503);
      expect(r0.body).toMatchObject({ status: 'unavailable', store: 'down' });
      expect(typeof r0.body.reason).toBe('string');
      const healthz = await call(gw.port, { path: '/healthz', host: 'localhost' });
      expect(healthz.status).toBe(200);
      // Unknown to this instance and the store unreachable: a retryable 503, never a false 404.
      const early = await call(gw.port);
      expect(early.status).toBe(503);
      expect(early.headers['retry-after']).toBeDefined();
      expect(errorCode(early)).not.toBe('GW_ENDPOINT_NOT_FOUND');
      for (let i = 0; i < 20; i++) await call(gw.port);
      expect(count(gw, 'redis unreachable at start-up')).toBe(1);

      await relay.restore();
      await eventually(async () => (await readyz(gw)).status === 200, { timeoutMs: 10_000 });
      expect((await readyz(gw)).body.status).toBe('ready');
      const r = await call(gw.port);
      expect(r.status).toBe(200);
      expect(upstreamOf(r.body)).toBe('a');
    } finally {
      await gw.stop('SIGKILL');
      await relay.close();
    }
  });

  it('redis-server itself stopped and restarted (empty): the gateway reconnects and picks up what is written again', async () => {
    const prefix = `restart-${randomUUID().slice(0, 8)}:`;
    const gw = await spawnGateway({ REDIS_URL: redis.url, REDIS_PREFIX: prefix, RESYNC_INTERVAL_MS: '600000' });
    try {
      await gw.admin('PUT', '/v1/endpoints/svc', { public: true, routes: [{ id: 'a', url: a.url }] });
      expect((await call(gw.port)).status).toBe(200);
      await redis.kill();
      await eventually(async () => (await readyz(gw)).body.status === 'degraded', { timeoutMs: 5000 });
      expect((await call(gw.port)).status).toBe(200);
      await redis.start();
      direct.disconnect();
      direct = new Redis(redis.url, { maxRetriesPerRequest: 1 });
      await eventually(async () => (await readyz(gw)).body.status === 'ready', { timeoutMs: 10_000 });
      // The admin API works again through the same store connection.
      const put = await gw.admin('PUT', '/v1/endpoints/svc', { public: true, routes: [{ id: 'b', url: b.url }] });
      expect(put.status).toBeLessThan(300);
      await eventually(async () => upstreamOf((await call(gw.port)).body) === 'b', { timeoutMs: 5000 });
    } finally {
      await gw.stop('SIGKILL');
    }
  });
});
