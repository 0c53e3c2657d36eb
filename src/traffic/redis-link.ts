import { createHash } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { parseRedisUrl } from '../config/redis-url.js';
import type { Logger } from '../obs/logger.js';

/** A Lua script run by EVALSHA, loaded on first NOSCRIPT. */
export class LuaScript {
  readonly sha: string;
  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }
}

export interface RedisLinkOptions {
  url: string;
  prefix: string;
  logger: Logger;
  /** A limiter call slower than this fails over to the local limiter for that request. */
  commandTimeoutMs?: number;
}

/**
 * The traffic limits' own Redis connection: never queues while Redis is away (callers fall back
 * to their local limiter at once instead of waiting), and fails a slow command quickly so a
 * hung server cannot hold requests.
 */
export class RedisLink {
  readonly redis: Redis;
  readonly prefix: string;
  readonly #logger: Logger;
  #closed = false;

  constructor(opts: RedisLinkOptions) {
    this.prefix = opts.prefix;
    this.#logger = opts.logger;
    const common: RedisOptions = {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: opts.commandTimeoutMs ?? 1000,
      connectTimeout: 5000,
      connectionName: 'modelgate-traffic',
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 12), 5000),
      reconnectOnError: (err) => err.message.startsWith('READONLY'),
    };
    // REDIS_URL may name Sentinels (config/redis-url.ts): then the master is asked for there, on
    // every reconnect. No failoverDetector here: a second client subscribed to +switch-master
    // kept the store's own clients from following a failover (test/integration/redis-sentinel),
    // and the limits fall back to local counting for the moment it takes to notice.
    const connection = parseRedisUrl(opts.url);
    this.redis =
      connection.kind === 'single'
        ? new Redis(connection.url, common)
        : new Redis({ ...connection.options, ...common, sentinelRetryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 12), 5000) });
    // Errors surface as failed commands (and the local fallback); the store logs the outage.
    this.redis.on('error', () => {});
  }

  get ready(): boolean {
    return this.redis.status === 'ready';
  }

  start(): void {
    this.redis.connect().catch((err: Error) => this.#logger.debug({ err_message: err.message }, 'traffic redis connect failed'));
  }

  async run(script: LuaScript, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await this.redis.evalsha(script.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('NOSCRIPT')) return this.redis.eval(script.source, keys.length, ...keys, ...args);
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.redis.disconnect();
  }
}

/**
 * "Limits are per instance now": logged once per transition, shown by a gauge, so an operator
 * sees the degraded mode without a log line per request.
 */
export class FallbackFlag {
  #on = false;
  constructor(
    private readonly what: string,
    private readonly logger: Logger,
    private readonly gauge: { set(v: number): void },
  ) {
    gauge.set(0);
  }

  get on(): boolean {
    return this.#on;
  }

  set(on: boolean, err?: unknown): void {
    if (on === this.#on) return;
    this.#on = on;
    this.gauge.set(on ? 1 : 0);
    if (on) {
      this.logger.warn(
        { limiter: this.what, err_message: err instanceof Error ? err.message : undefined },
        'traffic limits fall back to per-instance counting: Redis is unreachable',
      );
    } else {
      this.logger.info({ limiter: this.what }, 'traffic limits shared through Redis again');
    }
  }
}
