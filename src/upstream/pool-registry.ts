import { Pool } from 'undici';

export interface PoolOptions {
  connections: number;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
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
  readonly #defaults: PoolOptions;

  constructor(defaults: PoolOptions) {
    this.#defaults = defaults;
  }

  acquire(origin: string, connectTimeoutMs = this.#defaults.connectTimeoutMs): Pool {
    const key = connectTimeoutMs === this.#defaults.connectTimeoutMs ? origin : `${origin}|${connectTimeoutMs}`;
    let entry = this.#entries.get(key);
    if (!entry) {
      const pool = new Pool(origin, {
        connections: this.#defaults.connections,
        pipelining: 1,
        keepAliveTimeout: 4_000,
        keepAliveMaxTimeout: 60_000,
        headersTimeout: this.#defaults.headersTimeoutMs,
        bodyTimeout: this.#defaults.bodyTimeoutMs,
        connect: { timeout: connectTimeoutMs },
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
