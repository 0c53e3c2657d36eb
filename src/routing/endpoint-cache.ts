import { LRUCache } from 'lru-cache';
import { GatewayError } from '../errors/gateway-error.js';
import type { Logger } from '../obs/logger.js';
import type { Metrics } from '../obs/metrics.js';
import type { Store, StoreEvent } from '../store/store.js';
import { parseStoredRouteTable, type RouteTable } from '../schema/route-table.js';

/** Turns a validated route table into what the data plane serves (pools, balancer state...). */
export interface EndpointCompiler<T> {
  compile(table: RouteTable, previous: T | undefined): T;
  /** The value left the cache (deleted, evicted, replaced by `compile`'s result is NOT disposal). */
  dispose(value: T): void;
  tableOf(value: T): RouteTable;
}

export interface EndpointCacheOptions<T> {
  store: Store;
  compiler: EndpointCompiler<T>;
  logger: Logger;
  metrics?: Metrics;
  /** Hot endpoints kept in memory; cold ones are loaded on first use. */
  max: number;
  /** How long "no such endpoint" is remembered (events clear it sooner). */
  negativeTtlMs: number;
  resyncIntervalMs: number;
  /** Cap on concurrent store reads for unknown names, so a flood of random hosts can't hammer the store. */
  maxConcurrentLoads?: number;
  /**
   * Tables to serve before their first request (the gateway probes their routes): a change event
   * for a name not in the snapshot reads it (one store read) and keeps it when this says so.
   */
  eagerLoad?: (raw: string) => boolean;
}

const RESYNC_BATCH = 1000;

/**
 * Each gateway instance's snapshot of route tables: a bounded LRU of compiled endpoints with
 * negative entries for unknown names, updated by store events and a periodic full resync
 * (pub/sub is at-most-once). Lookups for cached names are synchronous and never touch the store.
 * A table that fails validation is logged and ignored; the last good one stays.
 */
export class EndpointCache<T> {
  readonly #opts: EndpointCacheOptions<T>;
  readonly #entries: LRUCache<string, { value: T }>;
  readonly #missing: LRUCache<string, true>;
  readonly #loading = new Map<string, Promise<T | null>>();
  readonly #reloadAgain = new Set<string>();
  readonly #listeners: ((name: string, value: T | null, previous: T | undefined) => void)[] = [];
  #unsubscribe: (() => void) | null = null;
  #timer: NodeJS.Timeout | null = null;
  #resyncing: Promise<void> | null = null;
  #lastResyncOk = 0;

  constructor(opts: EndpointCacheOptions<T>) {
    this.#opts = opts;
    this.#entries = new LRUCache({
      max: opts.max,
      dispose: (entry, _name, reason) => {
        if (reason !== 'set') opts.compiler.dispose(entry.value);
      },
    });
    this.#missing = new LRUCache({ max: 10_000, ttl: Math.max(1, opts.negativeTtlMs), ttlAutopurge: false });
  }

  start(): void {
    this.#unsubscribe = this.#opts.store.subscribe((event) => this.#onEvent(event));
    this.#timer = setInterval(() => void this.resync(), this.#opts.resyncIntervalMs);
    this.#timer.unref();
  }

  stop(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Cached value, `null` when known to be missing, `undefined` when it must be loaded. */
  get(name: string): T | null | undefined {
    const entry = this.#entries.get(name);
    if (entry !== undefined) return entry.value;
    if (this.#opts.negativeTtlMs > 0 && this.#missing.get(name) !== undefined) return null;
    return undefined;
  }

  /** Loads a name from the store (single-flight per name). */
  load(name: string): Promise<T | null> {
    const pending = this.#loading.get(name);
    if (pending) return pending;
    const max = this.#opts.maxConcurrentLoads ?? 256;
    if (this.#loading.size >= max) {
      return Promise.reject(new GatewayError('GW_OVERLOADED', { retryAfterSeconds: 1, detail: 'too many concurrent route-table loads' }));
    }
    const promise = this.#fetch(name).finally(() => {
      this.#loading.delete(name);
      if (this.#reloadAgain.delete(name)) void this.load(name).catch(() => {});
    });
    this.#loading.set(name, promise);
    return promise;
  }

  /** Called with the new value (or null when deleted) whenever an endpoint changes. */
  onUpdate(listener: (name: string, value: T | null, previous: T | undefined) => void): void {
    this.#listeners.push(listener);
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Unix ms of the last resync that reached the store, 0 if none. */
  get lastResyncOk(): number {
    return this.#lastResyncOk;
  }

  /** Every cached endpoint (for readiness and tests). */
  values(): T[] {
    return [...this.#entries.values()].map((e) => e.value);
  }

  async #fetch(name: string): Promise<T | null> {
    let raw: string | null;
    try {
      raw = await this.#opts.store.getEndpointRaw(name);
    } catch (err) {
      const cached = this.#entries.peek(name);
      if (cached) return cached.value;
      throw new GatewayError('GW_NO_HEALTHY_ROUTE', { retryAfterSeconds: 1, cause: err, detail: 'route-table store unreachable' });
    }
    return this.#apply(name, raw);
  }

  /** Applies a stored value for `name`; returns what is served afterwards. */
  #apply(name: string, raw: string | null): T | null {
    const current = this.#entries.peek(name);
    if (raw === null) {
      if (current) {
        this.#entries.delete(name);
        this.#notify(name, null, current.value);
      }
      this.#missing.set(name, true);
      this.#opts.metrics?.endpointsCached.set(this.#entries.size);
      return null;
    }
    let doc: unknown;
    try {
      doc = JSON.parse(raw);
    } catch {
      doc = raw; // parseStoredRouteTable reports the syntax error below
    }
    if (current && typeof doc === 'object' && doc !== null) {
      // Resync re-reads every hot table; an unchanged one (same id, same version) skips validation.
      const prev = this.#opts.compiler.tableOf(current.value);
      const stored = doc as { id?: unknown; version?: unknown };
      if (stored.id === prev.id && stored.version === prev.version) return current.value;
    }
    const parsed = parseStoredRouteTable(doc);
    if (!parsed.ok) {
      this.#opts.metrics?.invalidTables.inc();
      this.#opts.logger.warn({ endpoint: name, problem: parsed.error }, 'ignoring invalid route table; keeping the last good one');
      return current ? current.value : null;
    }
    const table = parsed.table;
    if (table.name !== name) {
      this.#opts.metrics?.invalidTables.inc();
      this.#opts.logger.warn({ endpoint: name, stored_name: table.name }, 'ignoring route table stored under another name');
      return current ? current.value : null;
    }
    if (current) {
      const prev = this.#opts.compiler.tableOf(current.value);
      if (prev.version === table.version && prev.id === table.id) return current.value;
      if (prev.version > table.version && prev.id === table.id) return current.value;
    }
    const value = this.#opts.compiler.compile(table, current?.value);
    this.#missing.delete(name);
    this.#entries.set(name, { value });
    this.#opts.metrics?.endpointsCached.set(this.#entries.size);
    this.#notify(name, value, current?.value);
    return value;
  }

  #notify(name: string, value: T | null, previous: T | undefined): void {
    for (const listener of this.#listeners) {
      try {
        listener(name, value, previous);
      } catch (err) {
        this.#opts.logger.error({ err, endpoint: name }, 'endpoint update listener failed');
      }
    }
  }

  #onEvent(event: StoreEvent): void {
    this.#opts.metrics?.storeEvents.labels(event.kind).inc();
    if (event.kind === 'resync') {
      void this.resync();
      return;
    }
    if (event.kind !== 'endpoint') return;
    const name = event.name;
    this.#missing.delete(name);
    const current = this.#entries.peek(name);
    if (!current) {
      if (this.#opts.eagerLoad !== undefined && event.version > 0) this.#loadIfEager(name, this.#opts.eagerLoad);
      return;
    }
    if (event.version === 0) {
      this.#apply(name, null);
      return;
    }
    if (this.#opts.compiler.tableOf(current.value).version >= event.version) return;
    if (this.#loading.has(name)) {
      this.#reloadAgain.add(name);
      return;
    }
    this.load(name).catch((err) => this.#opts.logger.warn({ err, endpoint: name }, 'route-table reload failed; keeping the last good one'));
  }

  #loadIfEager(name: string, eager: (raw: string) => boolean): void {
    if (this.#loading.has(name)) return;
    this.#opts.store.getEndpointRaw(name).then(
      (raw) => {
        // A request may have loaded it meanwhile; its own events keep it current from there.
        if (raw === null || this.#entries.has(name) || this.#loading.has(name)) return;
        if (eager(raw)) this.#apply(name, raw);
      },
      (err) => this.#opts.logger.debug({ err, endpoint: name }, 'eager route-table load failed; it loads on its first request'),
    );
  }

  /** Re-reads every cached table from the store (also drops those deleted meanwhile). */
  resync(): Promise<void> {
    if (this.#resyncing) return this.#resyncing;
    this.#resyncing = this.#resyncAll().finally(() => {
      this.#resyncing = null;
    });
    return this.#resyncing;
  }

  async #resyncAll(): Promise<void> {
    const names = [...this.#entries.keys()];
    try {
      for (let i = 0; i < names.length; i += RESYNC_BATCH) {
        const batch = names.slice(i, i + RESYNC_BATCH);
        const raws = await this.#opts.store.getEndpointsRaw(batch);
        for (let j = 0; j < batch.length; j++) {
          if (this.#loading.has(batch[j])) continue;
          this.#apply(batch[j], raws[j]);
        }
      }
      this.#missing.clear();
      this.#lastResyncOk = Date.now();
    } catch (err) {
      this.#opts.logger.debug({ err }, 'route-table resync failed; serving the last good tables');
    }
  }
}
