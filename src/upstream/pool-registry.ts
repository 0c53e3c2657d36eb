import { rootCertificates } from 'node:tls';
import { Pool } from 'undici';
import type { RouteProtocol } from '../schema/route-table.js';

export interface PoolOptions {
  connections: number;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  /** PEM text of UPSTREAM_CA_FILE: trusted for https:// routes besides the system CAs. */
  extraCa?: string;
}

interface Entry {
  pool: Pool;
  refs: number;
}

/**
 * One keep-alive undici Pool per upstream origin (and connect timeout), shared by every route
 * that points there and closed when the last route referring to it is gone.
 */
export class PoolRegistry {
  readonly #entries = new Map<string, Entry>();
  /** System CAs plus UPSTREAM_CA_FILE (giving `ca` replaces the system list, so both go in). */
  readonly #ca: string[] | undefined;
  constructor(private readonly defaults: PoolOptions) {
    this.#ca = defaults.extraCa ? [...rootCertificates, defaults.extraCa] : undefined;
  }

  acquire(origin: string, connectTimeoutMs = this.defaults.connectTimeoutMs, protocol: RouteProtocol = 'http1'): Pool {
    let key = connectTimeoutMs === this.defaults.connectTimeoutMs ? origin : `${origin}|${connectTimeoutMs}`;
    if (protocol !== 'http1') key += `|${protocol}`;
    let entry = this.#entries.get(key);
    if (!entry) {
      const pool = new Pool(origin, {
        connections: this.defaults.connections,
        pipelining: 1,
        keepAliveTimeout: 4_000,
        keepAliveMaxTimeout: 60_000,
        headersTimeout: this.defaults.headersTimeoutMs,
        bodyTimeout: this.defaults.bodyTimeoutMs,
        // https:// origins: certificates verified (undici's default), SNI = the route's host.
        // h2c rides in `connect`: Pool hands only those options to the connector it builds.
        connect: { timeout: connectTimeoutMs, ...(this.#ca ? { ca: this.#ca } : null), ...(protocol === 'h2c' ? { useH2c: true } : null) },
        // One HTTP/2 connection multiplexes; the stream cap per connection is the server's.
        ...(protocol === 'http1' ? null : { allowH2: true }),
        // The gateway enforces the client-side limits; the upstream may send large headers.
        maxHeaderSize: 64 * 1024,
      });
      // An idle socket dropped by the upstream must never surface as an unhandled error.
      pool.on('connectionError', () => {});
      entry = { pool, refs: 0 };
      this.#entries.set(key, entry);
    }
    entry.refs++;
    return entry.pool;
  }

  release(pool: Pool): void {
    for (const [key, entry] of this.#entries) {
      if (entry.pool !== pool) continue;
      if (--entry.refs <= 0) {
        this.#entries.delete(key);
        // close() lets in-flight requests finish before the sockets go.
        entry.pool.close().catch(() => {});
      }
      return;
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  async closeAll(): Promise<void> {
    const pools = [...this.#entries.values()].map((e) => e.pool);
    this.#entries.clear();
    await Promise.allSettled(pools.map((p) => p.close()));
  }

  destroyAll(): void {
    for (const entry of this.#entries.values()) entry.pool.destroy().catch(() => {});
    this.#entries.clear();
  }
}
