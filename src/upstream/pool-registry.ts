import { rootCertificates } from 'node:tls';
import { Pool, type Dispatcher } from 'undici';
import type { RouteProtocol } from '../schema/route-table.js';
import { H1Pool, type H1PoolOptions } from './h1-client.js';
import { registerGatewayHeaderNames } from './known-header-names.js';

export interface PoolOptions {
  connections: number;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  /** PEM text of UPSTREAM_CA_FILE: trusted for https:// routes besides the system CAs. */
  extraCa?: string;
  /** UPSTREAM_CLIENT: `modelgate` sends bodiless and buffered requests to http:// HTTP/1.1 origins with h1-client.ts. */
  client?: 'modelgate' | 'undici';
}

/**
 * A route's handle on its origin's pool. The undici Pool is built at the first dispatch: a
 * table of 10,000 routes with distinct origins used to build 10,000 pools up front (~18 KiB of
 * heap each, ~176 MiB in all) although most routes never take a request on a given instance.
 */
export class LazyPool {
  #pool: Pool | null = null;
  #fast: H1Pool | null = null;
  #closed = false;
  readonly #options: Pool.Options;
  /** Options of the gateway's own client, for an http:// HTTP/1.1 origin (null: undici only). */
  readonly #fastOptions: H1PoolOptions | null;

  constructor(
    readonly origin: string,
    options: Pool.Options,
    fastOptions: H1PoolOptions | null = null,
  ) {
    this.#options = options;
    this.#fastOptions = fastOptions;
  }

  get created(): boolean {
    return this.#pool !== null || this.#fast !== null;
  }

  /**
   * Sends a request: through the gateway's own HTTP/1.1 client when the origin allows it and the
   * body is absent or a Buffer (no upgrade); through undici otherwise.
   */
  dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (this.#fastOptions !== null && opts.upgrade == null && (opts.body == null || Buffer.isBuffer(opts.body))) {
      return (this.#fast ?? this.#createFast()).dispatch(opts, handler);
    }
    return (this.#pool ?? this.#create()).dispatch(opts, handler);
  }

  #createFast(): H1Pool {
    const fast = new H1Pool(this.origin, this.#fastOptions!);
    if (this.#closed) void fast.close();
    this.#fast = fast;
    return fast;
  }

  /** undici's promise API, for the gateway's health-check probes (route-prober.ts). */
  request(opts: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData> {
    return (this.#pool ?? this.#create()).request(opts);
  }

  #create(): Pool {
    const pool = new Pool(this.origin, this.#options);
    // An idle socket dropped by the upstream must never surface as an unhandled error.
    pool.on('connectionError', () => {});
    // A dispatch after close (a request that outlived its route) gets undici's ClientClosedError.
    if (this.#closed) pool.close().catch(() => {});
    this.#pool = pool;
    return pool;
  }

  /** close() lets in-flight requests finish before the sockets go. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([this.#pool?.close().catch(() => {}), this.#fast?.close()]);
  }

  async destroy(): Promise<void> {
    this.#closed = true;
    await Promise.all([this.#pool?.destroy().catch(() => {}), this.#fast?.destroy()]);
  }
}

interface Entry {
  pool: LazyPool;
  refs: number;
}

/**
 * One keep-alive pool per upstream origin (and connect timeout), shared by every route that
 * points there, built on first use and closed when the last route referring to it is gone.
 */
export class PoolRegistry {
  readonly #entries = new Map<string, Entry>();
  readonly #byPool = new Map<LazyPool, string>();
  /** System CAs plus UPSTREAM_CA_FILE (giving `ca` replaces the system list, so both go in). */
  readonly #ca: string[] | undefined;
  readonly #defaults: PoolOptions;

  constructor(defaults: PoolOptions) {
    this.#defaults = defaults;
    registerGatewayHeaderNames();
    this.#ca = defaults.extraCa ? [...rootCertificates, defaults.extraCa] : undefined;
  }

  acquire(origin: string, connectTimeoutMs = this.#defaults.connectTimeoutMs, protocol: RouteProtocol = 'http1'): LazyPool {
    let key = connectTimeoutMs === this.#defaults.connectTimeoutMs ? origin : `${origin}|${connectTimeoutMs}`;
    if (protocol !== 'http1') key += `|${protocol}`;
    let entry = this.#entries.get(key);
    if (!entry) {
      const pool = new LazyPool(origin, {
        connections: this.#defaults.connections,
        pipelining: 1,
        keepAliveTimeout: 4_000,
        keepAliveMaxTimeout: 60_000,
        headersTimeout: this.#defaults.headersTimeoutMs,
        bodyTimeout: this.#defaults.bodyTimeoutMs,
        // https:// origins: certificates verified (undici's default), SNI = the route's host.
        // h2c rides in `connect`: Pool hands only those options to the connector it builds.
        connect: { timeout: connectTimeoutMs, ...(this.#ca ? { ca: this.#ca } : null), ...(protocol === 'h2c' ? { useH2c: true } : null) },
        // One HTTP/2 connection multiplexes; the stream cap per connection is the server's.
        ...(protocol === 'http1' ? null : { allowH2: true }),
        // The gateway enforces the client-side limits; the upstream may send large headers
        // (their count is bounded separately: UPSTREAM_MAX_HEADER_COUNT).
        maxHeaderSize: 64 * 1024,
      }, this.#fastOptionsFor(origin, connectTimeoutMs, protocol));
      entry = { pool, refs: 0 };
      this.#entries.set(key, entry);
      this.#byPool.set(pool, key);
    }
    entry.refs++;
    return entry.pool;
  }

  #fastOptionsFor(origin: string, connectTimeoutMs: number, protocol: RouteProtocol): H1PoolOptions | null {
    if ((this.#defaults.client ?? 'modelgate') !== 'modelgate' || protocol !== 'http1' || !origin.startsWith('http:')) return null;
    return { connections: this.#defaults.connections, connectTimeoutMs, keepAliveTimeoutMs: 4_000, keepAliveMaxTimeoutMs: 60_000 };
  }

  release(pool: LazyPool): void {
    const key = this.#byPool.get(pool);
    const entry = key === undefined ? undefined : this.#entries.get(key);
    if (!entry || key === undefined) return;
    if (--entry.refs <= 0) {
      this.#entries.delete(key);
      this.#byPool.delete(pool);
      void entry.pool.close();
    }
  }

  /** Origins referenced by some route. */
  get size(): number {
    return this.#entries.size;
  }

  /** undici pools actually built (origins that carried traffic). */
  get open(): number {
    let n = 0;
    for (const entry of this.#entries.values()) if (entry.pool.created) n++;
    return n;
  }

  async closeAll(): Promise<void> {
    const pools = [...this.#entries.values()].map((e) => e.pool);
    this.#entries.clear();
    this.#byPool.clear();
    await Promise.allSettled(pools.map((p) => p.close()));
  }

  destroyAll(): void {
    for (const entry of this.#entries.values()) void entry.pool.destroy();
    this.#entries.clear();
    this.#byPool.clear();
  }
}
