import type { RouteTable } from '../schema/route-table.js';
import type { Logger } from '../obs/logger.js';
import { Journal } from './journal.js';
import { addFields, emptyReport, incrementFields, usageBucketKey, type UsageIncrement, type UsageQuery, type UsageReport } from './usage.js';
import { LoadBoard, type LoadReport } from './load-board.js';
import { MemoryState, type StateOp } from './memory-state.js';
import { nowSeconds, prepareUpdate, storeUnavailable } from './records.js';
import type {
  RevokedToken,
  ServiceRecord,
  Store,
  StoreEvent,
  StoreHealth,
  TableUpdate,
  TokenRecord,
  UpdateOptions,
} from './store.js';

/**
 * MemoryStore: the embedded store of a single gateway process. State lives in memory and,
 * unless ephemeral, in DATA_DIR (journal + snapshot, see journal.ts). A write resolves only
 * once it is on disk; its event is delivered afterwards and asynchronously, as pub/sub would.
 */

export interface MemoryStoreOptions {
  /** null = ephemeral (memory only). */
  dataDir: string | null;
  logger: Logger;
  /** Journal size that triggers compaction into a new snapshot. */
  compactBytes?: number;
}

const PURGE_INTERVAL_MS = 60_000;

export class MemoryStore implements Store {
  readonly kind = 'memory' as const;
  readonly #logger: Logger;
  readonly #state = new MemoryState();
  readonly #journal: Journal | null;
  readonly #listeners = new Set<(event: StoreEvent) => void>();
  /** Load reports live in memory only: they expire within seconds anyway. */
  readonly #load = new LoadBoard();
  readonly #healthListeners = new Set<(health: StoreHealth) => void>();
  #purgeTimer: NodeJS.Timeout | null = null;
  #started = false;
  #closed = false;
  #wasUp = true;

  constructor(opts: MemoryStoreOptions) {
    this.#logger = opts.logger.child({ component: 'memory-store' });
    this.#journal = opts.dataDir ? new Journal({ dir: opts.dataDir, logger: this.#logger, compactBytes: opts.compactBytes }) : null;
  }

  /** Constructs and starts: the lock is held and the state loaded when this resolves. */
  static async open(opts: MemoryStoreOptions): Promise<MemoryStore> {
    const store = new MemoryStore(opts);
    await store.start();
    return store;
  }

  get dataDir(): string | null {
    return this.#journal?.dir ?? null;
  }

  async start(): Promise<void> {
    if (this.#started) return;
    if (this.#journal) {
      await this.#journal.open(this.#state);
      this.#logger.info(
        { data_dir: this.#journal.dir, endpoints: this.#state.endpoints.size, services: this.#state.services.size },
        'embedded store loaded',
      );
    } else {
      this.#logger.info('embedded store is ephemeral: state is kept in memory only and lost on exit');
    }
    this.#started = true;
    this.#purgeTimer = setInterval(() => this.#state.purgeExpired(nowSeconds()), PURGE_INTERVAL_MS);
    this.#purgeTimer.unref();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#purgeTimer) clearInterval(this.#purgeTimer);
    this.#listeners.clear();
    this.#healthListeners.clear();
    await this.#journal?.close();
  }

  health(): StoreHealth {
    const failure = this.#journal?.failure;
    return failure ? { up: false, reason: failure.message } : { up: true };
  }

  onHealthChange(listener: (health: StoreHealth) => void): void {
    this.#healthListeners.add(listener);
  }

  subscribe(listener: (event: StoreEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #checkWritable(): void {
    if (!this.#started || this.#closed) throw storeUnavailable(this.#closed ? 'the embedded store is closed' : 'the embedded store is not started');
    const failure = this.#journal?.failure;
    if (failure) throw storeUnavailable(failure.message, failure);
  }

  /** Applies in memory at once (so updates are atomic in-process), then waits for the disk. */
  async #commit(op: StateOp, event: StoreEvent | null): Promise<void> {
    this.#state.apply(op);
    if (this.#journal) {
      try {
        await this.#journal.append(op);
      } catch (err) {
        this.#reportHealth();
        throw storeUnavailable((err as Error).message, err);
      }
    }
    if (event) setImmediate(() => this.#emit(event));
  }

  #reportHealth(): void {
    const health = this.health();
    if (health.up === this.#wasUp) return;
    this.#wasUp = health.up;
    for (const listener of this.#healthListeners) {
      try {
        listener(health);
      } catch (err) {
        this.#logger.error({ err }, 'store health listener threw');
      }
    }
  }

  #emit(event: StoreEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (err) {
        this.#logger.error({ err, event_kind: event.kind }, 'store event listener threw');
      }
    }
  }

  async getEndpointRaw(name: string): Promise<string | null> {
    return this.#state.endpoints.get(name) ?? null;
  }

  async getEndpointsRaw(names: string[]): Promise<(string | null)[]> {
    return names.map((n) => this.#state.endpoints.get(n) ?? null);
  }

  async listEndpointNames(): Promise<string[]> {
    return [...this.#state.endpoints.keys()].sort();
  }

  async updateEndpoint(name: string, update: TableUpdate, opts?: UpdateOptions): Promise<{ table: RouteTable; created: boolean }> {
    this.#checkWritable();
    // Read, compute and apply happen in one synchronous stretch: nothing can interleave.
    const prepared = prepareUpdate(name, this.#state.endpoints.get(name) ?? null, update, opts, this.#logger);
    await this.#commit(
      { op: 'endpoint.put', name, table: prepared.table as unknown as Record<string, unknown> },
      { kind: 'endpoint', name, version: prepared.table.version },
    );
    return { table: prepared.table, created: prepared.created };
  }

  async deleteEndpoint(name: string): Promise<boolean> {
    this.#checkWritable();
    const existed = this.#state.endpoints.has(name);
    if (!existed && !this.#state.tokensByEndpoint.has(name)) return false;
    await this.#commit({ op: 'endpoint.del', name }, existed ? { kind: 'endpoint', name, version: 0 } : null);
    return existed;
  }

  async putToken(record: TokenRecord): Promise<void> {
    this.#checkWritable();
    await this.#commit({ op: 'token.put', record: { ...record } }, null);
  }

  async getToken(jti: string): Promise<TokenRecord | null> {
    const record = this.#state.tokens.get(jti);
    return record && record.exp > nowSeconds() ? { ...record } : null;
  }

  async listTokens(endpoint: string): Promise<TokenRecord[]> {
    const now = nowSeconds();
    const out: TokenRecord[] = [];
    for (const jti of this.#state.tokensByEndpoint.get(endpoint) ?? []) {
      const record = this.#state.tokens.get(jti);
      if (record && record.exp > now) out.push({ ...record });
    }
    return out.sort((a, b) => a.created_at.localeCompare(b.created_at) || a.jti.localeCompare(b.jti));
  }

  async revokeToken(jti: string, exp: number): Promise<void> {
    this.#checkWritable();
    await this.#commit({ op: 'revoke', jti, exp }, { kind: 'revoke', jti, exp });
  }

  async listRevoked(): Promise<RevokedToken[]> {
    const now = nowSeconds();
    const out: RevokedToken[] = [];
    for (const [jti, exp] of this.#state.revoked) if (exp > now) out.push({ jti, exp });
    return out;
  }

  async putService(record: ServiceRecord): Promise<void> {
    this.#checkWritable();
    // A JSON round trip gives the same copy semantics as Redis: later mutation of the
    // caller's object cannot change the store.
    const copy = JSON.parse(JSON.stringify(record)) as ServiceRecord;
    await this.#commit({ op: 'service.put', record: copy }, { kind: 'service', name: record.name });
  }

  async getService(name: string): Promise<ServiceRecord | null> {
    const record = this.#state.services.get(name);
    return record ? (JSON.parse(JSON.stringify(record)) as ServiceRecord) : null;
  }

  async listServices(): Promise<ServiceRecord[]> {
    return [...this.#state.services.values()]
      .map((r) => JSON.parse(JSON.stringify(r)) as ServiceRecord)
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  async deleteService(name: string): Promise<boolean> {
    this.#checkWritable();
    if (!this.#state.services.has(name)) return false;
    await this.#commit({ op: 'service.del', name }, { kind: 'service', name });
    return true;
  }

  async addUsage(increments: UsageIncrement[]): Promise<void> {
    this.#checkWritable();
    const ops: StateOp[] = [];
    const byBucket = new Map<string, { endpoint: string; minute: number; fields: Record<string, number> }>();
    for (const inc of increments) {
      const key = usageBucketKey(inc);
      let bucket = byBucket.get(key);
      if (bucket === undefined) byBucket.set(key, (bucket = { endpoint: inc.endpoint, minute: inc.minute, fields: {} }));
      const current = this.#state.usage.get(inc.endpoint)?.get(inc.minute);
      for (const [field, amount] of incrementFields(inc)) {
        bucket.fields[field] = (bucket.fields[field] ?? current?.get(field) ?? 0) + amount;
      }
    }
    for (const b of byBucket.values()) ops.push({ op: 'usage.set', endpoint: b.endpoint, minute: b.minute, fields: b.fields });
    await Promise.all(ops.map((op) => this.#commit(op, null)));
  }

  async queryUsage(query: UsageQuery): Promise<UsageReport> {
    const report = emptyReport(query.groupBy);
    const byMinute = this.#state.usage.get(query.endpoint);
    if (byMinute === undefined) return report;
    for (const [minute, fields] of byMinute) {
      if (minute >= query.fromMinute && minute <= query.toMinute) addFields(report, fields, query.groupBy);
    }
    return report;
  }

  async publishLoad(reports: LoadReport[], ttlMs: number): Promise<void> {
    this.#load.publish(reports, ttlMs);
  }

  async readLoad(endpoint: string): Promise<LoadReport[]> {
    return this.#load.read(endpoint);
  }

  async requestWake(name: string): Promise<void> {
    setImmediate(() => this.#emit({ kind: 'wake', name }));
  }
}
