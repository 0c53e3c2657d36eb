import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { GatewayError } from '../../src/errors/gateway-error.js';
import { silentLogger } from '../../src/obs/logger.js';
import { parseStoredRouteTable, type RouteTable } from '../../src/schema/route-table.js';
import { patchEndpoint, putEndpoint } from '../../src/control/endpoint-ops.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { RedisStore } from '../../src/store/redis-store.js';
import type { Store, StoreEvent, StoreHealth, TokenRecord } from '../../src/store/store.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';
import { eventually } from '../support/eventually.js';

/**
 * One contract, every Store implementation: what the admin API, the controller and the
 * gateways rely on must hold the same for the embedded store and for Redis.
 */

const logger = silentLogger();
const tempDirs: string[] = [];
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function uniquePrefix(): string {
  return `t${randomUUID().slice(0, 8)}:`;
}

interface Harness {
  name: string;
  create(): Promise<Store>;
}

const HARNESSES: Harness[] = [
  { name: 'MemoryStore (ephemeral)', create: () => MemoryStore.open({ dataDir: null, logger }) },
  {
    name: 'MemoryStore (durable)',
    create: () => {
      const dir = mkdtempSync(join(tmpdir(), 'mg-contract-'));
      tempDirs.push(dir);
      // A small compaction threshold so the suite also runs through snapshot rewrites.
      return MemoryStore.open({ dataDir: join(dir, 'data'), logger, compactBytes: 16 * 1024 });
    },
  },
  {
    name: 'RedisStore',
    create: async () => {
      const store = new RedisStore({ url: inject('redisUrl'), prefix: uniquePrefix(), logger });
      await store.start();
      expect(store.health().up).toBe(true);
      return store;
    },
  },
];

/** Collects events; `waitFor` resolves with the first one (past or future) that matches. */
function eventLog(store: Store) {
  const events: StoreEvent[] = [];
  const waiters: { match: (e: StoreEvent) => boolean; resolve: (e: StoreEvent) => void }[] = [];
  store.subscribe((event) => {
    events.push(event);
    for (const w of waiters.splice(0)) {
      if (w.match(event)) w.resolve(event);
      else waiters.push(w);
    }
  });
  return {
    events,
    waitFor(match: (e: StoreEvent) => boolean, timeoutMs = 2000): Promise<StoreEvent> {
      const seen = events.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching event within ${timeoutMs} ms; got ${JSON.stringify(events)}`)), timeoutMs);
        waiters.push({
          match,
          resolve: (e) => {
            clearTimeout(timer);
            resolve(e);
          },
        });
      });
    },
  };
}

function token(endpoint: string, overrides: Partial<TokenRecord> = {}): TokenRecord {
  return {
    jti: randomUUID(),
    endpoint,
    endpoint_id: randomUUID(),
    sub: 'tester',
    exp: Math.floor(Date.now() / 1000) + 3600,
    created_at: new Date().toISOString(),
    ...overrides,
  };
}

function parse(raw: string | null): RouteTable | null {
  if (raw === null) return null;
  const result = parseStoredRouteTable(raw);
  if (!result.ok) throw new Error(result.error);
  return result.table;
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<GatewayError> {
  const err = await promise.then(
    () => {
      throw new Error(`expected ${code}, it succeeded`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GatewayError);
  expect((err as GatewayError).code).toBe(code);
  return err as GatewayError;
}

describe.each(HARNESSES)('Store contract: $name', (harness) => {
  let store: Store;

  beforeEach(async () => {
    store = await harness.create();
  });
  afterEach(async () => {
    await store.close();
  });

  it('creates with version 1, replaces with version 2, keeps the id', async () => {
    const created = await putEndpoint(store, 'alpha', { routes: [{ url: 'http://127.0.0.1:9001' }] });
    expect(created.created).toBe(true);
    expect(created.table.version).toBe(1);
    expect(created.table.routes).toHaveLength(1);

    const replaced = await putEndpoint(store, 'alpha', { public: true, routes: [] });
    expect(replaced.created).toBe(false);
    expect(replaced.table.version).toBe(2);
    expect(replaced.table.id).toBe(created.table.id);

    const stored = parse(await store.getEndpointRaw('alpha'));
    // routes: [] must survive storage as an array (cjson would have made it an object).
    expect(stored).toMatchObject({ name: 'alpha', version: 2, public: true, routes: [] });
    expect(JSON.parse((await store.getEndpointRaw('alpha'))!).routes).toEqual([]);
    expect(await store.listEndpointNames()).toEqual(['alpha']);
  });

  it('refuses a stale expectedVersion with ADM_CONFLICT and accepts the current one', async () => {
    await putEndpoint(store, 'beta', {});
    await patchEndpoint(store, 'beta', { public: true }); // version 2
    const err = await expectCode(patchEndpoint(store, 'beta', { public: false }, 1), 'ADM_CONFLICT');
    expect(err.message).toMatch(/expected 1/);
    expect(parse(await store.getEndpointRaw('beta'))!.public).toBe(true);
    const table = await patchEndpoint(store, 'beta', { public: false }, 2);
    expect(table.version).toBe(3);
  });

  it('gives ADM_NOT_FOUND for a patch of a missing endpoint, and writes nothing', async () => {
    await expectCode(patchEndpoint(store, 'ghost', { public: true }), 'ADM_NOT_FOUND');
    expect(await store.getEndpointRaw('ghost')).toBeNull();
    expect(await store.listEndpointNames()).toEqual([]);
  });

  it('refuses a table that would not validate (ADM_INVALID) and keeps the old one', async () => {
    await putEndpoint(store, 'gamma', {});
    await expectCode(
      store.updateEndpoint('gamma', (cur) => ({ ...cur!, routes: [{ id: 'x', url: 'ftp://nope', weight: 1, status: 'healthy' }] })),
      'ADM_INVALID',
    );
    expect(parse(await store.getEndpointRaw('gamma'))!.version).toBe(1);
  });

  it('never loses a version under 50 concurrent patches', async () => {
    await putEndpoint(store, 'busy', {});
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => patchEndpoint(store, 'busy', { routes: [{ id: `r${i}`, url: `http://127.0.0.1:${10000 + i}` }] })),
    );
    const versions = results.map((t) => t.version).sort((a, b) => a - b);
    expect(versions).toEqual(Array.from({ length: 50 }, (_, i) => i + 2));
    expect(parse(await store.getEndpointRaw('busy'))!.version).toBe(51);
  });

  it('deletes an endpoint with its tokens and publishes version 0', async () => {
    const log = eventLog(store);
    await putEndpoint(store, 'doomed', {});
    const t = token('doomed');
    await store.putToken(t);
    expect(await store.deleteEndpoint('doomed')).toBe(true);
    expect(await store.getEndpointRaw('doomed')).toBeNull();
    expect(await store.listEndpointNames()).toEqual([]);
    expect(await store.getToken(t.jti)).toBeNull();
    expect(await store.listTokens('doomed')).toEqual([]);
    await log.waitFor((e) => e.kind === 'endpoint' && e.name === 'doomed' && e.version === 0);
    expect(await store.deleteEndpoint('doomed')).toBe(false);
    // A recreated endpoint starts again at version 1.
    expect((await putEndpoint(store, 'doomed', {})).table.version).toBe(1);
  });

  it('stores, lists and expires tokens', async () => {
    const a = token('tok');
    const b = token('tok', { sub: 'other', created_at: new Date(Date.now() + 1).toISOString() });
    const short = token('tok', { exp: Date.now() / 1000 + 1 });
    const elsewhere = token('other-endpoint');
    for (const t of [a, b, short, elsewhere]) await store.putToken(t);
    expect(await store.getToken(a.jti)).toEqual(a);
    expect((await store.listTokens('tok')).map((t) => t.jti).sort()).toEqual([a.jti, b.jti, short.jti].sort());
    await new Promise((r) => setTimeout(r, 1100));
    expect(await store.getToken(short.jti)).toBeNull();
    expect((await store.listTokens('tok')).map((t) => t.jti).sort()).toEqual([a.jti, b.jti].sort());
    expect(await store.getToken('no-such-jti')).toBeNull();
  });

  it('revokes until exp, lists revocations, publishes a revoke event', async () => {
    const log = eventLog(store);
    const exp = Math.floor(Date.now() / 1000) + 600;
    await store.revokeToken('jti-1', exp);
    await store.revokeToken('jti-short', Date.now() / 1000 + 1);
    await log.waitFor((e) => e.kind === 'revoke' && e.jti === 'jti-1' && e.exp === exp);
    const revoked = await store.listRevoked();
    expect(revoked.map((r) => r.jti).sort()).toEqual(['jti-1', 'jti-short']);
    expect(revoked.find((r) => r.jti === 'jti-1')!.exp).toBe(exp);
    await new Promise((r) => setTimeout(r, 1100));
    expect((await store.listRevoked()).map((r) => r.jti)).toEqual(['jti-1']);
  });

  it('stores, lists and deletes services with events', async () => {
    const log = eventLog(store);
    const spec = { replicas: 2, model_folder: '/models/x', env: { A: '1' }, nested: { list: [] as number[] } };
    await store.putService({ name: 'svc-b', spec, updated_at: '2024-01-01T00:00:00Z' });
    await store.putService({ name: 'svc-a', spec: { replicas: 1 }, updated_at: '2024-01-01T00:00:00Z' });
    spec.replicas = 99; // the store keeps its own copy
    expect(await store.getService('svc-b')).toEqual({
      name: 'svc-b',
      spec: { replicas: 2, model_folder: '/models/x', env: { A: '1' }, nested: { list: [] } },
      updated_at: '2024-01-01T00:00:00Z',
    });
    expect((await store.listServices()).map((s) => s.name)).toEqual(['svc-a', 'svc-b']);
    await log.waitFor((e) => e.kind === 'service' && e.name === 'svc-a');
    expect(await store.deleteService('svc-a')).toBe(true);
    expect(await store.deleteService('svc-a')).toBe(false);
    expect(await store.getService('svc-a')).toBeNull();
    expect((await store.listServices()).map((s) => s.name)).toEqual(['svc-b']);
  });

  it('keeps load reports per instance until their TTL, and publishes wake events', async () => {
    const report = (instance: string, in_flight: number) => ({ instance, endpoint: 'svc', in_flight, queued: 1, requests: 10, p99_ms: 12.5, interval_ms: 1000 });
    await store.publishLoad([report('a', 2), report('b', 3)], 60_000);
    await store.publishLoad([report('a', 4)], 60_000);
    await store.publishLoad([report('c', 9)], 150);
    const live = (await store.readLoad('svc')).sort((x, y) => x.instance.localeCompare(y.instance));
    expect(live.map((r) => [r.instance, r.in_flight])).toEqual([
      ['a', 4],
      ['b', 3],
      ['c', 9],
    ]);
    expect(live[0]).toEqual(report('a', 4));
    // A dead instance's counts vanish by themselves.
    await new Promise((r) => setTimeout(r, 400));
    expect((await store.readLoad('svc')).map((r) => r.instance).sort()).toEqual(['a', 'b']);
    expect(await store.readLoad('other')).toEqual([]);
    const log = eventLog(store);
    await store.requestWake('svc');
    await log.waitFor((e) => e.kind === 'wake' && e.name === 'svc');
  });

  it('delivers endpoint events to a subscriber, and not after unsubscribe', async () => {
    const seen: StoreEvent[] = [];
    const off = store.subscribe((e) => seen.push(e));
    const log = eventLog(store);
    await putEndpoint(store, 'evt', {});
    await patchEndpoint(store, 'evt', { public: true });
    await log.waitFor((e) => e.kind === 'endpoint' && e.name === 'evt' && e.version === 2);
    expect(seen.filter((e) => e.kind === 'endpoint')).toEqual([
      { kind: 'endpoint', name: 'evt', version: 1 },
      { kind: 'endpoint', name: 'evt', version: 2 },
    ]);
    off();
    await patchEndpoint(store, 'evt', { public: false });
    await log.waitFor((e) => e.kind === 'endpoint' && e.version === 3);
    expect(seen.filter((e) => e.kind === 'endpoint')).toHaveLength(2);
  });

  it('reads many tables at once, null for missing names', async () => {
    await putEndpoint(store, 'one', {});
    await putEndpoint(store, 'two', {});
    const raws = await store.getEndpointsRaw(['one', 'missing', 'two']);
    expect(raws).toHaveLength(3);
    expect(parse(raws[0])!.name).toBe('one');
    expect(raws[1]).toBeNull();
    expect(parse(raws[2])!.name).toBe('two');
    expect(await store.getEndpointsRaw([])).toEqual([]);
  });

  it('reports healthy', () => {
    expect(store.health()).toEqual({ up: true });
  });

  it('adds usage per minute bucket and sums it by range, token and sub', async () => {
    const now = Math.floor(Date.now() / 60_000);
    const inc = (minute: number, token: string, sub: string, p: number, c: number, r = 1) => ({
      endpoint: 'llm',
      minute,
      token,
      sub,
      prompt_tokens: p,
      completion_tokens: c,
      requests: r,
    });
    await store.addUsage([inc(now, 'j1', 'alice', 10, 5), inc(now, 'j2', 'bob:x', 1, 2, 3), inc(now - 2, 'j1', 'alice', 100, 50)]);
    await store.addUsage([inc(now, 'j1', 'alice', 1, 1), { ...inc(now, 'j9', 'eve', 7, 7), endpoint: 'other' }]);
    const all = await store.queryUsage({ endpoint: 'llm', fromMinute: now - 5, toMinute: now });
    expect(all).toEqual({ total: { prompt_tokens: 112, completion_tokens: 58, requests: 6 } });
    const recent = await store.queryUsage({ endpoint: 'llm', fromMinute: now - 1, toMinute: now, groupBy: 'sub' });
    expect(recent.total).toEqual({ prompt_tokens: 12, completion_tokens: 8, requests: 5 });
    expect(Object.fromEntries(recent.groups!)).toEqual({
      alice: { prompt_tokens: 11, completion_tokens: 6, requests: 2 },
      'bob:x': { prompt_tokens: 1, completion_tokens: 2, requests: 3 },
    });
    const byToken = await store.queryUsage({ endpoint: 'llm', fromMinute: now - 5, toMinute: now, groupBy: 'token' });
    expect(byToken.groups!.get('j1')).toEqual({ prompt_tokens: 111, completion_tokens: 56, requests: 3 });
    expect((await store.queryUsage({ endpoint: 'none', fromMinute: now - 5, toMinute: now })).total.requests).toBe(0);
  });
});

describe('RedisStore specifics', () => {
  let prefix: string;
  let raw: Redis;
  let store: RedisStore;

  beforeEach(async () => {
    prefix = uniquePrefix();
    raw = new Redis(inject('redisUrl'));
    store = new RedisStore({ url: inject('redisUrl'), prefix, logger });
    await store.start();
  });
  afterEach(async () => {
    await store.close();
    raw.disconnect();
  });

  it('uses the documented layout', async () => {
    const { table } = await putEndpoint(store, 'layout', {});
    const t = token('layout', { endpoint_id: table.id });
    await store.putToken(t);
    await store.revokeToken(t.jti, t.exp);
    expect(JSON.parse((await raw.get(`${prefix}endpoint:layout`))!)).toMatchObject({ name: 'layout', version: 1 });
    expect(await raw.smembers(`${prefix}endpoints`)).toEqual(['layout']);
    expect(JSON.parse((await raw.get(`${prefix}token:${t.jti}`))!)).toMatchObject({ endpoint: 'layout', sub: 'tester', exp: t.exp });
    const ttl = await raw.ttl(`${prefix}token:${t.jti}`);
    expect(ttl).toBeGreaterThan(3500);
    expect(ttl).toBeLessThanOrEqual(3600);
    expect(await raw.ttl(`${prefix}revoked:${t.jti}`)).toBeGreaterThan(3500);
    expect(await raw.smembers(`${prefix}endpoint-tokens:layout`)).toEqual([t.jti]);
  });

  it('survives garbage written by someone else', async () => {
    await putEndpoint(store, 'good', {});
    await raw.set(`${prefix}endpoint:notjson`, '{{{');
    await raw.sadd(`${prefix}endpoints`, 'notjson', 'wrongtype', 'Not A Name');
    await raw.hset(`${prefix}endpoint:wrongtype`, 'a', '1');
    await raw.set(`${prefix}token:bad`, 'nope');
    await raw.sadd(`${prefix}endpoint-tokens:good`, 'bad', 'vanished');
    await raw.set(`${prefix}service:broken`, '[]');
    await raw.sadd(`${prefix}services`, 'broken', 'missing');
    await raw.hset(`${prefix}revoked:hash`, 'a', '1');
    await raw.set(`${prefix}revoked:bare`, '1', 'EX', 100);

    expect(await store.getEndpointRaw('notjson')).toBe('{{{');
    expect(await store.getEndpointRaw('wrongtype')).toBeNull();
    expect(await store.getEndpointsRaw(['good', 'wrongtype', 'notjson'])).toEqual([expect.any(String), null, '{{{']);
    expect(await store.listEndpointNames()).toEqual(['good', 'notjson', 'wrongtype']);
    expect(await store.getToken('bad')).toBeNull();
    expect(await store.listTokens('good')).toEqual([]);
    expect(await store.listServices()).toEqual([]);
    expect(await store.getService('broken')).toBeNull();
    const revoked = await store.listRevoked();
    expect(revoked.map((r) => r.jti)).toEqual(['bare']);
    expect(revoked[0].exp).toBeGreaterThan(Date.now() / 1000 + 90);

    // A create overwrites an unreadable table; a patch treats it as absent.
    await expectCode(patchEndpoint(store, 'notjson', { public: true }), 'ADM_NOT_FOUND');
    const { table, created } = await putEndpoint(store, 'notjson', {});
    expect(created).toBe(true);
    expect(table.version).toBe(1);
  });

  it('continues from the version an invalid table claims', async () => {
    await raw.set(`${prefix}endpoint:claims`, JSON.stringify({ name: 'claims', version: 7, routes: 'bad' }));
    const { table } = await putEndpoint(store, 'claims', {});
    expect(table.version).toBe(8);
  });

  it('sees a table written directly to Redis by an external control plane', async () => {
    const log = eventLog(store);
    const table = { id: randomUUID(), name: 'external', public: true, version: 1, routes: [{ id: 'r1', url: 'http://10.0.0.5:8000', weight: 1, status: 'healthy' }] };
    await raw.set(`${prefix}endpoint:external`, JSON.stringify(table));
    await raw.sadd(`${prefix}endpoints`, 'external');
    await raw.publish(`${prefix}events`, JSON.stringify({ kind: 'endpoint', name: 'external', version: 1 }));
    await raw.publish(`${prefix}events`, 'not json at all');
    await log.waitFor((e) => e.kind === 'endpoint' && e.name === 'external' && e.version === 1);
    expect(parse(await store.getEndpointRaw('external'))).toMatchObject({ public: true, routes: [{ id: 'r1' }] });
    expect(await store.listEndpointNames()).toEqual(['external']);
    // And our next write continues its versions.
    expect((await patchEndpoint(store, 'external', { public: false })).version).toBe(2);
  });

  it('a write racing an external writer retries instead of overwriting it', async () => {
    await putEndpoint(store, 'race', {});
    const port = new URL(inject('redisUrl')).port;
    let calls = 0;
    const { table } = await store.updateEndpoint('race', (cur) => {
      calls++;
      if (calls === 1) {
        // Another control plane writes version 2 between our read and our compare-and-set
        // (redis-cli blocks, so the write has landed when this callback returns).
        const external = JSON.stringify({ ...cur!, version: 2, public: true });
        execFileSync('redis-cli', ['-p', port, 'SET', `${prefix}endpoint:race`, external]);
      }
      const { version: _v, ...rest } = cur!;
      return { ...rest, routes: [{ id: 'mine', url: 'http://127.0.0.1:1', weight: 1, status: 'healthy' as const }] };
    });
    expect(calls).toBe(2);
    expect(table.version).toBe(3);
    expect(table.public).toBe(true);
    expect(table.routes.map((r) => r.id)).toEqual(['mine']);
  });

  it('with expectedVersion, a racing write is a conflict, not a retry', async () => {
    await putEndpoint(store, 'race2', {});
    const port = new URL(inject('redisUrl')).port;
    await expectCode(
      store.updateEndpoint(
        'race2',
        (cur) => {
          execFileSync('redis-cli', ['-p', port, 'SET', `${prefix}endpoint:race2`, JSON.stringify({ ...cur!, version: 2 })]);
          const { version: _v, ...rest } = cur!;
          return rest;
        },
        { expectedVersion: 1 },
      ),
      'ADM_CONFLICT',
    );
    expect(parse(await store.getEndpointRaw('race2'))!.version).toBe(2);
  });
});

describe('RedisStore with Redis going away', () => {
  let server: RedisServer;
  let store: RedisStore | null = null;

  beforeEach(async () => {
    server = await startRedis();
  });
  afterEach(async () => {
    await store?.close();
    store = null;
    await server.kill();
  });

  it('goes down and up once each, emits resync, fails writes fast while down', async () => {
    store = new RedisStore({ url: server.url, prefix: uniquePrefix(), logger, maxBackoffMs: 100 });
    const transitions: StoreHealth[] = [];
    store.onHealthChange((h) => transitions.push(h));
    const log = eventLog(store);
    await store.start();
    expect(store.health().up).toBe(true);
    await putEndpoint(store, 'before', {});
    transitions.length = 0;

    await server.stop();
    await eventually(() => !store!.health().up, { timeoutMs: 3000 });
    // Several failed reconnects happen while it is down; still one transition.
    await new Promise((r) => setTimeout(r, 500));
    expect(transitions).toHaveLength(1);
    expect(transitions[0].up).toBe(false);
    expect(store.health().reason).toMatch(/127\.0\.0\.1:\d+ is unreachable/);

    const started = Date.now();
    const err = await expectCode(putEndpoint(store, 'during', {}), 'ADM_STORE_UNAVAILABLE');
    expect(err.message).toMatch(/store unavailable/);
    expect(Date.now() - started).toBeLessThan(500);
    await expect(store.getEndpointRaw('before')).rejects.toThrow(/store unavailable/);

    await server.start();
    await log.waitFor((e) => e.kind === 'resync', 5000);
    expect(store.health().up).toBe(true);
    expect(transitions.map((t) => t.up)).toEqual([false, true]);
    expect(log.events.filter((e) => e.kind === 'resync')).toHaveLength(1);

    // Writes work again and the resubscribed channel carries their events.
    await putEndpoint(store, 'after', {});
    await log.waitFor((e) => e.kind === 'endpoint' && e.name === 'after');
  });

  it('starts with Redis down, then connects and asks for a resync', async () => {
    await server.stop();
    store = new RedisStore({ url: server.url, prefix: uniquePrefix(), logger, maxBackoffMs: 100 });
    const log = eventLog(store);
    const started = Date.now();
    await store.start();
    expect(Date.now() - started).toBeLessThan(3500);
    expect(store.health().up).toBe(false);
    await expectCode(store.listEndpointNames(), 'ADM_STORE_UNAVAILABLE');
    await server.start();
    await log.waitFor((e) => e.kind === 'resync', 5000);
    expect(store.health().up).toBe(true);
    expect(await store.listEndpointNames()).toEqual([]);
  });
});
