import type { RouteTable } from '../schema/route-table.js';
import type { UsageIncrement, UsageQuery, UsageReport } from './usage.js';
import type { LoadReport } from './load-board.js';

export type { LoadReport } from './load-board.js';

/**
 * The state shared by every gateway instance. Two implementations pass one contract suite
 * (test/integration/store-contract.test.ts): MemoryStore (embedded, durable in DATA_DIR unless
 * ephemeral) and RedisStore (layout in docs/redis-schema.md).
 */

export type StoreEvent =
  | { kind: 'endpoint'; name: string; version: number }
  | { kind: 'revoke'; jti: string; exp?: number }
  | { kind: 'service'; name: string }
  /** A request waits for a service at zero replicas: its controller should start one. */
  | { kind: 'wake'; name: string }
  /**
   * The store may have missed events (Redis came back after being unreachable; pub/sub is
   * at-most-once): subscribers should re-read everything they cache.
   */
  | { kind: 'resync' };

export interface TokenRecord {
  jti: string;
  endpoint: string;
  /** Endpoint id the token was issued for (its `aud`). */
  endpoint_id: string;
  sub: string;
  /** Epoch seconds. */
  exp: number;
  /** RFC 3339. */
  created_at: string;
  /** As issued (also in the token's claims, where the data plane reads them). */
  priority?: number;
  rate_limit?: { requests_per_minute?: number; tokens_per_minute?: number };
}

export interface RevokedToken {
  jti: string;
  /** Epoch seconds; the marker can be forgotten after it. */
  exp: number;
}

/** A model service's desired state, owned by the controller (see src/controller/). */
export interface ServiceRecord {
  name: string;
  /** Opaque to the store: the controller's own validated JSON. */
  spec: unknown;
  updated_at: string;
}

/** Computes the next table from the current one; throw a GatewayError to refuse. */
export type TableUpdate = (current: RouteTable | null) => Omit<RouteTable, 'version'>;

export interface UpdateOptions {
  /** Compare-and-set: fail with ADM_CONFLICT unless the stored version equals this. */
  expectedVersion?: number;
  /**
   * The controller lease value the writer holds (leadership.ts): the write is refused with
   * ADM_CONFLICT when the lease has moved on, so a paused old leader cannot overwrite the new
   * one's tables. Ignored by the embedded store, where the single process always leads.
   */
  fence?: string;
}

export interface StoreHealth {
  up: boolean;
  /** Why it is down, for /readyz and logs. */
  reason?: string;
}

export interface Store {
  readonly kind: 'memory' | 'redis';

  /** Connects / loads state. Resolves even if Redis is down at start-up (health says so). */
  start(): Promise<void>;
  close(): Promise<void>;
  health(): StoreHealth;
  /** Called on every up/down transition. */
  onHealthChange(listener: (health: StoreHealth) => void): void;

  /** Raw stored route table text (validated by the reader), or null when absent. */
  getEndpointRaw(name: string): Promise<string | null>;
  /** Raw tables for many names at once (MGET); missing names are null. */
  getEndpointsRaw(names: string[]): Promise<(string | null)[]>;
  listEndpointNames(): Promise<string[]>;
  /**
   * Atomically reads, updates, bumps `version` (current + 1, or 1 when new) and publishes an
   * endpoint event. Returns the stored table and whether it was created.
   */
  updateEndpoint(name: string, update: TableUpdate, opts?: UpdateOptions): Promise<{ table: RouteTable; created: boolean }>;
  /** Deletes the table, its token records, and publishes an endpoint event with version 0. */
  deleteEndpoint(name: string): Promise<boolean>;

  putToken(record: TokenRecord): Promise<void>;
  getToken(jti: string): Promise<TokenRecord | null>;
  listTokens(endpoint: string): Promise<TokenRecord[]>;
  /** Marks the jti revoked until exp and publishes a revoke event. */
  revokeToken(jti: string, exp: number): Promise<void>;
  listRevoked(): Promise<RevokedToken[]>;

  putService(record: ServiceRecord): Promise<void>;
  getService(name: string): Promise<ServiceRecord | null>;
  listServices(): Promise<ServiceRecord[]>;
  deleteService(name: string): Promise<boolean>;

  /** Adds metered LLM usage (a batch from one gateway instance); minute buckets expire after USAGE_RETENTION_MS. */
  addUsage(increments: UsageIncrement[]): Promise<void>;
  /** Sums the minute buckets of an endpoint in [fromMinute, toMinute], optionally per token or sub. */
  queryUsage(query: UsageQuery): Promise<UsageReport>;
  /**
   * Load of autoscaled endpoints (autoscaling): each gateway instance publishes its counts at
   * least once a second; a report expires after `ttlMs` so a dead instance's counts vanish.
   */
  publishLoad(reports: LoadReport[], ttlMs: number): Promise<void>;
  /** The live (unexpired) reports of one endpoint, one per instance. */
  readLoad(endpoint: string): Promise<LoadReport[]>;
  /** Publishes a wake event (a request is held for a service at zero replicas). */
  requestWake(name: string): Promise<void>;

  /** Subscribes to change events (at-most-once; readers also resync periodically). */
  subscribe(listener: (event: StoreEvent) => void): () => void;
}

/** What a store that several controllers share offers for leadership (RedisStore). */
export interface LeaseStore {
  /** Takes the lease if free (or renews it if already ours); the held value, or null. */
  acquireLease(holder: string, ttlMs: number): Promise<string | null>;
  /** True when still ours and extended. */
  renewLease(value: string, ttlMs: number): Promise<boolean>;
  releaseLease(value: string): Promise<void>;
  /** The current value and its remaining time, or null when nobody leads. */
  readLease(): Promise<{ value: string; ttl_ms: number } | null>;
  /** Writes the leader's observed state of a service; false when fenced out or the service is gone. */
  putServiceStatus(name: string, status: unknown, fence: string): Promise<boolean>;
  getServiceStatus(name: string): Promise<unknown>;
}

export function isLeaseStore(store: Store): store is Store & LeaseStore {
  return typeof (store as Partial<LeaseStore>).acquireLease === 'function';
}
