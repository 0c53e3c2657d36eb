import { afterEach, describe, expect, it } from 'vitest';
import { putEndpoint } from '../../../src/control/endpoint-ops.js';
import type { GatewayError } from '../../../src/errors/gateway-error.js';
import { silentLogger } from '../../../src/obs/logger.js';
import { EndpointCache, type EndpointCompiler } from '../../../src/routing/endpoint-cache.js';
import type { RouteTable } from '../../../src/schema/route-table.js';
import { MemoryStore } from '../../../src/store/memory-store.js';
import type { Store } from '../../../src/store/store.js';
import { eventually } from '../../support/eventually.js';

/**
 * EndpointCache against the real embedded store. The compiler is the smallest real one (a
 * table in, a box out) that counts its calls; `GatedReads` holds the store's batch reads
 * (resync) so a test can decide what lands first, the way a slow store does.
 */

interface Compiled {
  table: RouteTable;
}

class CountingCompiler implements EndpointCompiler<Compiled> {
  compiled: RouteTable[] = [];
  disposed: RouteTable[] = [];
  compile(table: RouteTable): Compiled {
    this.compiled.push(table);
    return { table };
  }
  dispose(value: Compiled): void {
    this.disposed.push(value.table);
  }
  tableOf(value: Compiled): RouteTable {
    return value.table;
  }
}

/** The real store; single reads are counted, and reads can be held after they read (a slow store). */
class GatedReads {
  reads = 0;
  #held: (() => void)[] = [];
  #holding: 'single' | 'batch' | null = null;

  constructor(readonly inner: Store) {}

  /** From now on, reads of this kind (single: a load; batch: a resync) wait for release(). */
  hold(kind: 'single' | 'batch'): void {
    this.#holding = kind;
  }
  release(): void {
    this.#holding = null;
    for (const go of this.#held.splice(0)) go();
  }
  get heldCount(): number {
    return this.#held.length;
  }

  async #gate(kind: 'single' | 'batch'): Promise<void> {
    if (this.#holding === kind) await new Promise<void>((resolve) => this.#held.push(resolve));
  }

  store(): Store {
    return new Proxy(this.inner, {
      get: (target, key, receiver) => {
        if (key === 'getEndpointRaw') {
          return async (name: string) => {
            this.reads++;
            const raw = await target.getEndpointRaw(name);
            await this.#gate('single');
            return raw;
          };
        }
        if (key === 'getEndpointsRaw') {
          return async (names: string[]) => {
            const raws = await target.getEndpointsRaw(names);
            await this.#gate('batch');
            return raws;
          };
        }
        const value = Reflect.get(target, key, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  }
}

const caches: EndpointCache<Compiled>[] = [];
const stores: Store[] = [];
afterEach(async () => {
  for (const c of caches.splice(0)) c.stop();
  for (const s of stores.splice(0)) await s.close();
});

async function setup(opts: { negativeTtlMs?: number; maxConcurrentLoads?: number } = {}) {
  const inner = await MemoryStore.open({ dataDir: null, logger: silentLogger() });
  stores.push(inner);
  const reads = new GatedReads(inner);
  const compiler = new CountingCompiler();
  const cache = new EndpointCache<Compiled>({
    store: reads.store(),
    compiler,
    logger: silentLogger(),
    max: 100,
    negativeTtlMs: opts.negativeTtlMs ?? 60_000,
    // Resyncs run when a test calls resync(), never on their own.
    resyncIntervalMs: 3_600_000,
    maxConcurrentLoads: opts.maxConcurrentLoads,
  });
  cache.start();
  caches.push(cache);
  const updates: { name: string; version: number | null }[] = [];
  cache.onUpdate((name, value) => updates.push({ name, version: value?.table.version ?? null }));
  return { store: inner, reads, compiler, cache, updates };
}

const route = (id: string) => ({ id, url: `http://127.0.0.1:9/${id}` });

describe('EndpointCache: single-flight loads', () => {
  it('concurrent loads of one name share one store read and one compile', async () => {
    const { store, reads, compiler, cache } = await setup();
    await putEndpoint(store, 'a', { routes: [route('r1')] });
    const loads = Array.from({ length: 5 }, () => cache.load('a'));
    expect(new Set(loads).size).toBe(1);
    const values = await Promise.all(loads);
    expect(values.every((v) => v === values[0])).toBe(true);
    expect(values[0]?.table.version).toBe(1);
    expect(reads.reads).toBe(1);
    expect(compiler.compiled).toHaveLength(1);
    // Cached now: a lookup is synchronous and reads nothing.
    expect(cache.get('a')).toBe(values[0]);
    expect(reads.reads).toBe(1);
  });

  it('a load after the first one finished reads again', async () => {
    const { store, reads, cache } = await setup();
    await putEndpoint(store, 'a', {});
    const first = cache.load('a');
    await first;
    const second = cache.load('a');
    expect(second).not.toBe(first);
    await second;
    expect(reads.reads).toBe(2);
  });

  it('refuses more distinct loads in flight than maxConcurrentLoads with GW_OVERLOADED', async () => {
    const { cache } = await setup({ maxConcurrentLoads: 2 });
    const inFlight = [cache.load('x1'), cache.load('x2')];
    const third = cache.load('x3');
    // The same name joins its load instead of counting again.
    expect(cache.load('x1')).toBe(inFlight[0]);
    await expect(third).rejects.toMatchObject({ code: 'GW_OVERLOADED' } satisfies Partial<GatewayError>);
    await Promise.all(inFlight);
    await expect(cache.load('x3')).resolves.toBeNull();
  });

  it('an event that arrives during a load reloads once that load is done', async () => {
    const { store, reads, cache, updates } = await setup();
    await putEndpoint(store, 'a', {});
    await cache.load('a');
    reads.hold('single');
    const slow = cache.load('a'); // has read v1, not yet applied it
    await eventually(() => reads.heldCount === 1);
    await putEndpoint(store, 'a', { public: true }); // v2's event finds the load in flight
    reads.release();
    await slow;
    await eventually(() => cache.get('a')?.table.version === 2);
    expect(cache.get('a')?.table.public).toBe(true);
    expect(reads.reads).toBe(3);
    expect(updates.map((u) => u.version)).toEqual([1, 2]);
  });
});

describe('EndpointCache: version guard', () => {
  it('a resync that read an older version before an event applied a newer one keeps the newer', async () => {
    const { store, reads, compiler, cache, updates } = await setup();
    await putEndpoint(store, 'a', { routes: [route('r1')] });
    await cache.load('a');
    reads.hold('batch');
    const resync = cache.resync(); // reads v1, then waits
    await eventually(() => reads.heldCount === 1);
    await putEndpoint(store, 'a', { routes: [route('r2')] }); // v2, announced by an event
    await eventually(() => cache.get('a')?.table.version === 2);
    reads.release();
    await resync;
    expect(cache.get('a')?.table.version).toBe(2);
    expect(cache.get('a')?.table.routes.map((r) => r.id)).toEqual(['r2']);
    expect(compiler.compiled.map((t) => t.version)).toEqual([1, 2]);
    expect(updates.map((u) => u.version)).toEqual([1, 2]);
  });

  it('a table re-created under the same name (new id) replaces the cached one at any version', async () => {
    const { store, cache, updates } = await setup();
    await putEndpoint(store, 'a', {});
    await putEndpoint(store, 'a', {});
    const first = await cache.load('a');
    expect(first?.table.version).toBe(2);
    await store.deleteEndpoint('a');
    await eventually(() => cache.get('a') === null);
    await putEndpoint(store, 'a', {});
    const again = await cache.load('a');
    expect(again?.table.version).toBe(1);
    expect(again?.table.id).not.toBe(first?.table.id);
    expect(updates.map((u) => u.version)).toEqual([2, null, 1]);
  });
});

describe('EndpointCache: negative entries', () => {
  it('remembers an unknown name: the next lookups read nothing', async () => {
    const { reads, cache } = await setup();
    expect(cache.get('nope')).toBeUndefined();
    expect(await cache.load('nope')).toBeNull();
    expect(cache.get('nope')).toBeNull();
    expect(cache.get('nope')).toBeNull();
    expect(reads.reads).toBe(1);
  });

  it('forgets it after NEGATIVE_CACHE_TTL_MS', async () => {
    const { cache } = await setup({ negativeTtlMs: 50 });
    await cache.load('nope');
    expect(cache.get('nope')).toBeNull();
    await eventually(() => cache.get('nope') === undefined);
  });

  it('forgets it at once when the endpoint is created (its event)', async () => {
    const { store, cache } = await setup({ negativeTtlMs: 600_000 });
    expect(await cache.load('late')).toBeNull();
    await putEndpoint(store, 'late', {});
    await eventually(() => cache.get('late') === undefined);
    expect((await cache.load('late'))?.table.version).toBe(1);
  });

  it('keeps none with a TTL of 0', async () => {
    const { cache } = await setup({ negativeTtlMs: 0 });
    expect(await cache.load('nope')).toBeNull();
    expect(cache.get('nope')).toBeUndefined();
  });

  it('a deleted endpoint is dropped, disposed and then remembered as missing', async () => {
    const { store, compiler, cache, updates } = await setup();
    await putEndpoint(store, 'gone', {});
    await cache.load('gone');
    await store.deleteEndpoint('gone');
    await eventually(() => cache.get('gone') === null);
    expect(compiler.disposed.map((t) => t.name)).toEqual(['gone']);
    expect(updates).toEqual([
      { name: 'gone', version: 1 },
      { name: 'gone', version: null },
    ]);
  });
});
