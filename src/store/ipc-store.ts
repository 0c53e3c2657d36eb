import { GatewayError, isGatewayError, type GatewayErrorCode } from '../errors/gateway-error.js';
import type { RouteTable } from '../schema/route-table.js';
import { storeUnavailable } from './records.js';
import type { UsageIncrement, UsageQuery, UsageReport } from './usage.js';
import { parseLoadReport, type LoadReport } from './load-board.js';
import type { RevokedToken, ServiceRecord, Store, StoreEvent, StoreHealth, TokenRecord } from './store.js';

/**
 * The embedded store across node:cluster processes. The primary owns the MemoryStore (it alone
 * writes DATA_DIR); each worker talks to it through an IpcStore: calls go over the cluster IPC
 * channel as requests with ids, replies come back, and the primary forwards every store event
 * and health change. Workers only run the data plane, so `updateEndpoint` (which takes a
 * function) is not available over IPC.
 */

/** The ends of a cluster IPC channel: `process` in a worker, a `Worker` in the primary. */
export interface IpcChannel {
  /** Optional on `process` (absent when not forked). */
  send?(message: unknown): unknown;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

type RemoteOp =
  | 'getEndpointRaw'
  | 'getEndpointsRaw'
  | 'listEndpointNames'
  | 'deleteEndpoint'
  | 'putToken'
  | 'getToken'
  | 'listTokens'
  | 'revokeToken'
  | 'listRevoked'
  | 'putService'
  | 'getService'
  | 'listServices'
  | 'deleteService'
  | 'addUsage'
  | 'publishLoad'
  | 'readLoad'
  | 'requestWake';

const REMOTE_OPS: ReadonlySet<string> = new Set<RemoteOp>([
  'getEndpointRaw',
  'getEndpointsRaw',
  'listEndpointNames',
  'deleteEndpoint',
  'putToken',
  'getToken',
  'listTokens',
  'revokeToken',
  'listRevoked',
  'putService',
  'getService',
  'listServices',
  'deleteService',
  'addUsage',
  'publishLoad',
  'readLoad',
  'requestWake',
]);

type Call = { mg: 'store.call'; id: number; op: RemoteOp; args: unknown[] };
type Reply = { mg: 'store.reply'; id: number; ok: true; value: unknown } | { mg: 'store.reply'; id: number; ok: false; code?: string; message: string };
type EventMessage = { mg: 'store.event'; event: StoreEvent };
type HealthMessage = { mg: 'store.health'; health: StoreHealth };

function isMessage<T extends { mg: string }>(m: unknown, kind: T['mg']): m is T {
  return typeof m === 'object' && m !== null && (m as { mg?: unknown }).mg === kind;
}

/**
 * Primary side: answers one worker's calls against the real store and forwards events and
 * health changes to it. Returns a function that detaches it (call it when the worker exits).
 */
export function serveStoreOverIpc(store: Store, channel: IpcChannel): () => void {
  let open = true;
  const send = (m: Reply | EventMessage | HealthMessage) => {
    if (!open) return;
    try {
      channel.send?.(m);
    } catch {
      // The worker is gone; its exit handler detaches us.
    }
  };
  const onMessage = (m: unknown) => {
    if (!isMessage<Call>(m, 'store.call')) return;
    if (!REMOTE_OPS.has(m.op)) {
      send({ mg: 'store.reply', id: m.id, ok: false, message: `store operation ${String(m.op)} is not available over IPC` });
      return;
    }
    if (m.op === 'publishLoad') {
      // A worker's reports are believed only as well-formed numbers.
      const reports = Array.isArray(m.args[0]) ? m.args[0].map(parseLoadReport).filter((r): r is LoadReport => r !== null) : [];
      m.args = [reports, typeof m.args[1] === 'number' ? m.args[1] : 3_000];
    }
    const fn = (store as unknown as Record<RemoteOp, (...args: unknown[]) => Promise<unknown>>)[m.op];
    fn.apply(store, m.args).then(
      (value) => send({ mg: 'store.reply', id: m.id, ok: true, value: value === undefined ? null : value }),
      (err: unknown) =>
        send({ mg: 'store.reply', id: m.id, ok: false, code: isGatewayError(err) ? err.code : undefined, message: err instanceof Error ? err.message : String(err) }),
    );
  };
  channel.on('message', onMessage);
  const unsubscribe = store.subscribe((event) => send({ mg: 'store.event', event }));
  store.onHealthChange((health) => send({ mg: 'store.health', health }));
  send({ mg: 'store.health', health: store.health() });
  return () => {
    open = false;
    channel.off('message', onMessage);
    unsubscribe();
  };
}

export interface IpcStoreOptions {
  channel: IpcChannel;
  /** A call with no reply within this fails as "store unavailable". */
  callTimeoutMs?: number;
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/** Worker side: a Store whose every call is answered by the primary's store. */
export class IpcStore implements Store {
  readonly kind = 'memory' as const;
  readonly #channel: IpcChannel;
  readonly #timeoutMs: number;
  readonly #pending = new Map<number, Pending>();
  readonly #listeners = new Set<(event: StoreEvent) => void>();
  readonly #healthListeners = new Set<(health: StoreHealth) => void>();
  #health: StoreHealth = { up: true };
  #nextId = 1;
  #closed = false;

  constructor(opts: IpcStoreOptions) {
    this.#channel = opts.channel;
    this.#timeoutMs = opts.callTimeoutMs ?? 5000;
  }

  readonly #onMessage = (m: unknown): void => {
    if (isMessage<Reply>(m, 'store.reply')) {
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.ok) p.resolve(m.value);
      else p.reject(m.code !== undefined ? new GatewayError(m.code as GatewayErrorCode, { message: m.message }) : new Error(m.message));
    } else if (isMessage<EventMessage>(m, 'store.event')) {
      for (const listener of this.#listeners) listener(m.event);
    } else if (isMessage<HealthMessage>(m, 'store.health')) {
      const changed = m.health.up !== this.#health.up;
      this.#health = m.health;
      if (changed) for (const listener of this.#healthListeners) listener(m.health);
    }
  };

  async start(): Promise<void> {
    this.#channel.on('message', this.#onMessage);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#channel.off('message', this.#onMessage);
    for (const [, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(storeUnavailable('the worker is shutting down'));
    }
    this.#pending.clear();
    this.#listeners.clear();
  }

  health(): StoreHealth {
    return this.#health;
  }

  onHealthChange(listener: (health: StoreHealth) => void): void {
    this.#healthListeners.add(listener);
  }

  subscribe(listener: (event: StoreEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #call<T>(op: RemoteOp, args: unknown[]): Promise<T> {
    if (this.#closed) return Promise.reject(storeUnavailable('the worker is shutting down'));
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(storeUnavailable(`no reply from the primary process within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
      timer.unref();
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      try {
        if (this.#channel.send === undefined) throw new Error('no IPC channel');
        this.#channel.send({ mg: 'store.call', id, op, args } satisfies Call);
      } catch (err) {
        this.#pending.delete(id);
        clearTimeout(timer);
        reject(storeUnavailable('the primary process is gone', err));
      }
    });
  }

  getEndpointRaw(name: string): Promise<string | null> {
    return this.#call('getEndpointRaw', [name]);
  }
  getEndpointsRaw(names: string[]): Promise<(string | null)[]> {
    return this.#call('getEndpointsRaw', [names]);
  }
  listEndpointNames(): Promise<string[]> {
    return this.#call('listEndpointNames', []);
  }
  updateEndpoint(): Promise<{ table: RouteTable; created: boolean }> {
    return Promise.reject(storeUnavailable('route tables are written by the primary process (admin API), not by workers'));
  }
  deleteEndpoint(name: string): Promise<boolean> {
    return this.#call('deleteEndpoint', [name]);
  }
  putToken(record: TokenRecord): Promise<void> {
    return this.#call('putToken', [record]);
  }
  getToken(jti: string): Promise<TokenRecord | null> {
    return this.#call('getToken', [jti]);
  }
  listTokens(endpoint: string): Promise<TokenRecord[]> {
    return this.#call('listTokens', [endpoint]);
  }
  revokeToken(jti: string, exp: number): Promise<void> {
    return this.#call('revokeToken', [jti, exp]);
  }
  listRevoked(): Promise<RevokedToken[]> {
    return this.#call('listRevoked', []);
  }
  putService(record: ServiceRecord): Promise<void> {
    return this.#call('putService', [record]);
  }
  getService(name: string): Promise<ServiceRecord | null> {
    return this.#call('getService', [name]);
  }
  listServices(): Promise<ServiceRecord[]> {
    return this.#call('listServices', []);
  }
  deleteService(name: string): Promise<boolean> {
    return this.#call('deleteService', [name]);
  }

  addUsage(increments: UsageIncrement[]): Promise<void> {
    return this.#call('addUsage', [increments]);
  }

  /** The usage API is served by the primary's admin API, never by a worker. */
  queryUsage(_query: UsageQuery): Promise<UsageReport> {
    return Promise.reject(new GatewayError('ADM_INTERNAL', { message: 'usage queries are not available over IPC' }));
  }

  publishLoad(reports: LoadReport[], ttlMs: number): Promise<void> {
    return this.#call('publishLoad', [reports, ttlMs]);
  }
  readLoad(endpoint: string): Promise<LoadReport[]> {
    return this.#call('readLoad', [endpoint]);
  }
  requestWake(name: string): Promise<void> {
    return this.#call('requestWake', [name]);
  }
}
