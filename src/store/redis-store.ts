import { createHash } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { GatewayError, isGatewayError } from '../errors/gateway-error.js';
import { ENDPOINT_NAME_RE, type RouteTable } from '../schema/route-table.js';
import type { Logger } from '../obs/logger.js';
import { parseRedisUrl } from '../config/redis-url.js';
import { parseLoadReport, type LoadReport } from './load-board.js';
import { ACQUIRE_LEASE_LUA, DELETE_ENDPOINT_LUA, PUT_SERVICE_STATUS_LUA, RELEASE_LEASE_LUA, RENEW_LEASE_LUA, UPDATE_ENDPOINT_LUA } from './redis-scripts.js';
import { addFields, emptyReport, incrementFields, MINUTE, USAGE_RETENTION_MS, type UsageIncrement, type UsageQuery, type UsageReport } from './usage.js';
import {
  nowSeconds,
  parseServiceRecord,
  parseStoreEvent,
  parseTokenRecord,
  prepareUpdate,
  sleep,
  storeUnavailable,
} from './records.js';
import type {
  LeaseStore,
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
 * RedisStore: the shared store of many gateway instances. Layout in docs/redis-schema.md.
 *
 * Two connections: one for commands, one subscribed to `{p}events`. Commands never queue while
 * Redis is unreachable (enableOfflineQueue off): an admin call fails at once with a clear error
 * instead of hanging, and the data plane keeps serving its last good tables.
 */

export interface RedisStoreOptions {
  /** `redis://`, `rediss://` or `redis+sentinel://` (redis-connection.ts). */
  url: string;
  /**
   * Replicas that must confirm a write (Redis WAIT) before it is acknowledged, so a failover
   * cannot lose an admin write the caller was told succeeded. 0 = don't wait.
   */
  waitReplicas?: number;
  waitTimeoutMs?: number;
  prefix?: string;
  logger: Logger;
  /** Upper bound of the reconnect backoff. */
  maxBackoffMs?: number;
  /** A command that gets no reply within this fails (a hung server must not hang callers). */
  commandTimeoutMs?: number;
  /** How long start() waits for the first connection before resolving with health down. */
  startTimeoutMs?: number;
}

/** Bound on optimistic retries when concurrent writers race on one endpoint. */
const MAX_UPDATE_ATTEMPTS = 200;
const SCAN_COUNT = 1000;
/** Minute buckets read per pipeline by a usage query. */
const USAGE_QUERY_BATCH = 1440;

class Script {
  readonly sha: string;
  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }
}
const UPDATE_SCRIPT = new Script(UPDATE_ENDPOINT_LUA);
const DELETE_SCRIPT = new Script(DELETE_ENDPOINT_LUA);
const ACQUIRE_SCRIPT = new Script(ACQUIRE_LEASE_LUA);
const RENEW_SCRIPT = new Script(RENEW_LEASE_LUA);
const RELEASE_SCRIPT = new Script(RELEASE_LEASE_LUA);
const STATUS_SCRIPT = new Script(PUT_SERVICE_STATUS_LUA);

function isReplyError(err: unknown): err is Error {
  return err instanceof Error && err.name === 'ReplyError';
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

export class RedisStore implements Store, LeaseStore {
  readonly kind = 'redis' as const;
  readonly #prefix: string;
  readonly #logger: Logger;
  readonly #cmd: Redis;
  readonly #sub: Redis;
  readonly #channel: string;
  readonly #where: string;
  readonly #startTimeoutMs: number;
  readonly #waitReplicas: number;
  readonly #waitTimeoutMs: number;
  readonly #listeners = new Set<(event: StoreEvent) => void>();
  readonly #healthListeners = new Set<(health: StoreHealth) => void>();
  #cmdReady = false;
  #subReady = false;
  #health: StoreHealth = { up: false, reason: 'not started' };
  #lastError = 'connecting';
  #started = false;
  #closed = false;
  #warnedNoReplica = false;
  #startWaiter: (() => void) | null = null;

  constructor(opts: RedisStoreOptions) {
    this.#prefix = opts.prefix ?? 'mg:';
    this.#logger = opts.logger.child({ component: 'redis-store' });
    this.#channel = `${this.#prefix}events`;
    this.#startTimeoutMs = opts.startTimeoutMs ?? 3000;
    const maxBackoffMs = opts.maxBackoffMs ?? 5000;
    const common: RedisOptions = {
      lazyConnect: true,
      enableOfflineQueue: false,
      // A command in flight when the link drops fails instead of being replayed: replaying a
      // compare-and-set script after an unknown outcome could apply it twice.
      maxRetriesPerRequest: 0,
      commandTimeout: opts.commandTimeoutMs ?? 5000,
      connectTimeout: 5000,
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 12), maxBackoffMs),
      // A demoted master (after a failover it rejoins as a replica) answers writes with
      // READONLY: reconnect, which finds the new master (sentinel) or fails clearly.
      reconnectOnError: (err) => err.message.startsWith('READONLY'),
    };
    const connection = parseRedisUrl(opts.url);
    this.#waitReplicas = opts.waitReplicas ?? 0;
    this.#waitTimeoutMs = opts.waitTimeoutMs ?? 1000;
    this.#where = connection.where;
    const connect = (extra: RedisOptions): Redis =>
      connection.kind === 'single'
        ? new Redis(connection.url, { ...common, ...extra })
        : new Redis({
            ...connection.options,
            ...common,
            ...extra,
            // Sentinel announces +switch-master at once; without this ioredis learns of a
            // failover only when its connection to the old master breaks.
            failoverDetector: true,
            sentinelRetryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 12), maxBackoffMs),
          });
    this.#cmd = connect({ connectionName: 'modelgate' });
    // Subscriptions are redone by hand on every 'ready', so health says up only once the
    // subscriber really listens again.
    this.#sub = connect({ connectionName: 'modelgate-events', autoResubscribe: false });
    this.#wire();
  }

  #wire(): void {
    this.#cmd.on('ready', () => {
      this.#cmdReady = true;
      this.#updateHealth();
    });
    this.#sub.on('ready', () => {
      this.#sub.subscribe(this.#channel).then(
        () => {
          this.#subReady = true;
          this.#updateHealth();
        },
        (err: Error) => this.#onError(err),
      );
    });
    for (const [client, which] of [
      [this.#cmd, 'cmd'],
      [this.#sub, 'sub'],
    ] as const) {
      client.on('error', (err: Error) => this.#onError(err));
      client.on('close', () => {
        if (which === 'cmd') this.#cmdReady = false;
        else this.#subReady = false;
        this.#updateHealth();
        this.#startWaiter?.();
      });
    }
    this.#sub.on('message', (channel: string, message: string) => {
      if (channel !== this.#channel) return;
      const event = parseStoreEvent(message);
      if (!event) {
        this.#logger.warn({ channel }, 'ignored a malformed store event');
        return;
      }
      this.#emit(event);
    });
  }

  #onError(err: Error): void {
    const reason = (err as NodeJS.ErrnoException).code ?? err.message;
    if (reason !== this.#lastError) this.#logger.debug({ err_message: err.message }, 'redis connection error');
    this.#lastError = reason;
    this.#startWaiter?.();
  }

  #updateHealth(): void {
    if (this.#closed) return;
    const up = this.#cmdReady && this.#subReady;
    if (up === this.#health.up) return;
    this.#health = up ? { up: true } : { up: false, reason: `${this.#where} is unreachable (${this.#lastError})` };
    if (up) this.#logger.info('redis store connected');
    else this.#logger.warn({ reason: this.#health.reason }, 'redis store down; serving last known state');
    for (const listener of this.#healthListeners) {
      try {
        listener(this.#health);
      } catch (err) {
        this.#logger.error({ err }, 'store health listener threw');
      }
    }
    if (up) {
      this.#startWaiter?.();
      // Events published while we were away are lost (pub/sub is at-most-once).
      if (this.#started) this.#emit({ kind: 'resync' });
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

  async start(): Promise<void> {
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#startWaiter = null;
        resolve();
      };
      const timer = setTimeout(done, this.#startTimeoutMs);
      // Resolve on the first verdict either way: connected, or a failed attempt (health down).
      this.#startWaiter = () => {
        if (this.#health.up || !this.#cmdReady) done();
      };
      this.#cmd.connect().catch(() => {});
      this.#sub.connect().catch(() => {});
    });
    this.#started = true;
    if (!this.#health.up) this.#logger.warn({ reason: this.health().reason }, 'redis unreachable at start-up; will keep retrying');
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    this.#healthListeners.clear();
    await Promise.all(
      [this.#cmd, this.#sub].map(async (client) => {
        try {
          if (client.status === 'ready') await client.quit();
        } catch {}
        client.disconnect();
      }),
    );
  }

  health(): StoreHealth {
    if (!this.#health.up) return { up: false, reason: `${this.#where} is unreachable (${this.#lastError})` };
    return this.#health;
  }

  onHealthChange(listener: (health: StoreHealth) => void): void {
    this.#healthListeners.add(listener);
  }

  subscribe(listener: (event: StoreEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #key(kind: string, name: string): string {
    return `${this.#prefix}${kind}:${name}`;
  }

  /** Runs commands, turning every failure into a clear GatewayError. */
  async #run<T>(op: string, fn: (r: Redis) => Promise<T>): Promise<T> {
    if (!this.#cmdReady) throw storeUnavailable(`${this.#where} is unreachable (${this.#lastError}); ${op} not done`);
    try {
      return await fn(this.#cmd);
    } catch (err) {
      if (isGatewayError(err)) throw err;
      if (isReplyError(err)) throw new GatewayError('ADM_INTERNAL', { message: `store error during ${op}: ${err.message}`, cause: err });
      throw storeUnavailable(`${this.#where} failed during ${op} (${(err as Error).message})`, err);
    }
  }

  /**
   * Holds an acknowledgement until WAIT confirms the write reached enough replicas. Asks for no
   * more replicas than the master has connected: right after a failover the new master may have
   * none yet, and refusing every write until one rejoins would turn a failover into an outage.
   */
  async #confirmReplicated(op: string): Promise<void> {
    if (this.#waitReplicas === 0) return;
    const connected = await this.#run(op, async (r) => {
      const role = (await r.call('ROLE')) as [string, number, unknown[]?];
      return role[0] === 'master' && Array.isArray(role[2]) ? role[2].length : 0;
    });
    const wanted = Math.min(this.#waitReplicas, connected);
    if (wanted === 0) {
      if (!this.#warnedNoReplica) this.#logger.warn({ op }, 'no replica connected to the Redis master: writes are acknowledged without replica confirmation');
      this.#warnedNoReplica = true;
      return;
    }
    this.#warnedNoReplica = false;
    const acked = await this.#run(op, (r) => r.wait(wanted, this.#waitTimeoutMs));
    if (acked < wanted) {
      throw storeUnavailable(
        `${op}: written to the master but confirmed by ${acked} of ${wanted} replica(s) within ${this.#waitTimeoutMs} ms, so it could be lost in a failover; not acknowledged (REDIS_WAIT_REPLICAS)`,
      );
    }
  }

  async #evalScript(r: Redis, script: Script, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await r.evalsha(script.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!isReplyError(err) || !err.message.startsWith('NOSCRIPT')) throw err;
      return r.eval(script.source, keys.length, ...keys, ...args);
    }
  }

  async getEndpointRaw(name: string): Promise<string | null> {
    return this.#run('read endpoint', async (r) => {
      try {
        return await r.get(this.#key('endpoint', name));
      } catch (err) {
        if (!isReplyError(err) || !err.message.startsWith('WRONGTYPE')) throw err;
        this.#logger.warn({ endpoint: name }, 'endpoint key holds a non-string value; treating it as absent');
        return null;
      }
    });
  }

  async getEndpointsRaw(names: string[]): Promise<(string | null)[]> {
    if (names.length === 0) return [];
    // MGET answers nil for keys of the wrong type, so garbage reads as absent.
    return this.#run('read endpoints', (r) => r.mget(names.map((n) => this.#key('endpoint', n))));
  }

  async listEndpointNames(): Promise<string[]> {
    const names = await this.#run('list endpoints', (r) => r.smembers(`${this.#prefix}endpoints`));
    return names.filter((n) => ENDPOINT_NAME_RE.test(n)).sort();
  }

  async updateEndpoint(name: string, update: TableUpdate, opts?: UpdateOptions): Promise<{ table: RouteTable; created: boolean }> {
    const key = this.#key('endpoint', name);
    for (let attempt = 1; attempt <= MAX_UPDATE_ATTEMPTS; attempt++) {
      const raw = await this.getEndpointRaw(name);
      const prepared = prepareUpdate(name, raw, update, opts, this.#logger);
      const event = JSON.stringify({ kind: 'endpoint', name, version: prepared.table.version });
      const written = await this.#run('update endpoint', (r) =>
        this.#evalScript(r, UPDATE_SCRIPT, [key, `${this.#prefix}endpoints`, this.#leaseKey], [prepared.base, prepared.json, name, this.#channel, event, opts?.fence ?? '']),
      );
      if (written === -1) throw lostLease(`endpoint ${name} not written`);
      if (written === 1) {
        await this.#confirmReplicated('update endpoint');
        return { table: prepared.table, created: prepared.created };
      }
      if (opts?.expectedVersion !== undefined) {
        throw new GatewayError('ADM_CONFLICT', { message: `endpoint ${name}: version mismatch: it changed while being updated` });
      }
      // Lost a race: jittered pause so many writers on one endpoint do not stay in lockstep.
      if (attempt > 2) await sleep(Math.random() * Math.min(attempt, 20));
    }
    throw new GatewayError('ADM_CONFLICT', { message: `endpoint ${name}: too many concurrent updates, try again` });
  }

  async deleteEndpoint(name: string): Promise<boolean> {
    const event = JSON.stringify({ kind: 'endpoint', name, version: 0 });
    const result = await this.#run('delete endpoint', (r) =>
      this.#evalScript(
        r,
        DELETE_SCRIPT,
        [this.#key('endpoint', name), `${this.#prefix}endpoints`, this.#key('endpoint-tokens', name)],
        [`${this.#prefix}token:`, name, this.#channel, event],
      ),
    );
    await this.#confirmReplicated('delete endpoint');
    return result === 1;
  }

  async putToken(record: TokenRecord): Promise<void> {
    const key = this.#key('token', record.jti);
    await this.#run('store token', async (r) => {
      const results = await r
        .multi()
        .set(key, JSON.stringify(record))
        // PEXPIREAT rather than SET … PXAT keeps Redis < 6.2 working; an exp in the past deletes at once.
        .pexpireat(key, Math.round(record.exp * 1000))
        .sadd(this.#key('endpoint-tokens', record.endpoint), record.jti)
        .exec();
      throwExecErrors(results);
    });
    await this.#confirmReplicated('store token');
  }

  async getToken(jti: string): Promise<TokenRecord | null> {
    const raw = await this.#run('read token', (r) => r.get(this.#key('token', jti)).catch(nullOnWrongType));
    const record = parseTokenRecord(raw);
    return record && record.exp > nowSeconds() ? record : null;
  }

  async listTokens(endpoint: string): Promise<TokenRecord[]> {
    const setKey = this.#key('endpoint-tokens', endpoint);
    return this.#run('list tokens', async (r) => {
      const jtis = await r.smembers(setKey).catch(() => [] as string[]);
      if (jtis.length === 0) return [];
      const raws = await r.mget(jtis.map((j) => this.#key('token', j)));
      const now = nowSeconds();
      const out: TokenRecord[] = [];
      const gone: string[] = [];
      raws.forEach((raw, i) => {
        if (raw === null) gone.push(jtis[i]);
        const record = parseTokenRecord(raw);
        if (record && record.exp > now && record.endpoint === endpoint) out.push(record);
      });
      // Expired tokens vanish from their key by TTL; tidy the index while we are here.
      if (gone.length > 0) await r.srem(setKey, ...gone).catch(() => {});
      return out.sort((a, b) => a.created_at.localeCompare(b.created_at) || a.jti.localeCompare(b.jti));
    });
  }

  async revokeToken(jti: string, exp: number): Promise<void> {
    const key = this.#key('revoked', jti);
    const event = JSON.stringify({ kind: 'revoke', jti, exp });
    await this.#run('revoke token', async (r) => {
      const results = await r
        .multi()
        .set(key, JSON.stringify({ exp, revoked_at: new Date().toISOString() }))
        .pexpireat(key, Math.round(exp * 1000))
        .publish(this.#channel, event)
        .exec();
      throwExecErrors(results);
    });
    await this.#confirmReplicated('revoke token');
  }

  async listRevoked(): Promise<RevokedToken[]> {
    const keyPrefix = `${this.#prefix}revoked:`;
    return this.#run('list revoked tokens', async (r) => {
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, batch] = await r.scan(cursor, 'MATCH', `${escapeGlob(keyPrefix)}*`, 'COUNT', SCAN_COUNT);
        cursor = next;
        keys.push(...batch);
      } while (cursor !== '0');
      if (keys.length === 0) return [];
      const unique = [...new Set(keys)];
      const pipeline = r.pipeline();
      for (const key of unique) pipeline.get(key).pttl(key);
      const replies = (await pipeline.exec()) ?? [];
      const now = Date.now();
      const out: RevokedToken[] = [];
      unique.forEach((key, i) => {
        const [getErr, value] = replies[2 * i] ?? [];
        const [, pttl] = replies[2 * i + 1] ?? [];
        if (getErr || value === null || value === undefined) return;
        let exp: number | undefined;
        try {
          const parsed = JSON.parse(String(value)) as { exp?: unknown };
          if (typeof parsed?.exp === 'number') exp = parsed.exp;
        } catch {}
        // An external writer may store a bare marker ("1") with a TTL: derive exp from the TTL.
        if (exp === undefined && typeof pttl === 'number' && pttl > 0) exp = (now + pttl) / 1000;
        if (exp === undefined || exp * 1000 <= now) return;
        out.push({ jti: key.slice(keyPrefix.length), exp });
      });
      return out;
    });
  }

  async putService(record: ServiceRecord): Promise<void> {
    const event = JSON.stringify({ kind: 'service', name: record.name });
    await this.#run('store service', async (r) => {
      const results = await r
        .multi()
        .set(this.#key('service', record.name), JSON.stringify(record))
        .sadd(`${this.#prefix}services`, record.name)
        .publish(this.#channel, event)
        .exec();
      throwExecErrors(results);
    });
    await this.#confirmReplicated('store service');
  }

  async getService(name: string): Promise<ServiceRecord | null> {
    const raw = await this.#run('read service', (r) => r.get(this.#key('service', name)).catch(nullOnWrongType));
    return parseServiceRecord(raw);
  }

  async listServices(): Promise<ServiceRecord[]> {
    return this.#run('list services', async (r) => {
      const names = await r.smembers(`${this.#prefix}services`);
      if (names.length === 0) return [];
      const raws = await r.mget(names.map((n) => this.#key('service', n)));
      const out: ServiceRecord[] = [];
      raws.forEach((raw, i) => {
        const record = parseServiceRecord(raw);
        if (record && record.name === names[i]) out.push(record);
        else if (raw !== null) this.#logger.warn({ service: names[i] }, 'skipped an unreadable service record');
      });
      return out.sort((a, b) => a.name.localeCompare(b.name));
    });
  }

  async deleteService(name: string): Promise<boolean> {
    const event = JSON.stringify({ kind: 'service', name });
    const deleted = await this.#run('delete service', async (r) => {
      const results = await r
        .multi()
        .del(this.#key('service', name))
        .del(this.#key('service-status', name))
        .srem(`${this.#prefix}services`, name)
        .publish(this.#channel, event)
        .exec();
      throwExecErrors(results);
      return (results?.[0]?.[1] as number) === 1 || (results?.[1]?.[1] as number) === 1;
    });
    await this.#confirmReplicated('delete service');
    return deleted;
  }
  // ---------------------------------------------------------------- controller leadership

  get #leaseKey(): string {
    return `${this.#prefix}controller:lease`;
  }

  async acquireLease(holder: string, ttlMs: number): Promise<string | null> {
    const value = await this.#run('acquire controller lease', (r) => this.#evalScript(r, ACQUIRE_SCRIPT, [this.#leaseKey, `${this.#prefix}controller:fence`], [holder, ttlMs]));
    return typeof value === 'string' ? value : null;
  }

  async renewLease(value: string, ttlMs: number): Promise<boolean> {
    return (await this.#run('renew controller lease', (r) => this.#evalScript(r, RENEW_SCRIPT, [this.#leaseKey], [value, ttlMs]))) === 1;
  }

  async releaseLease(value: string): Promise<void> {
    await this.#run('release controller lease', (r) => this.#evalScript(r, RELEASE_SCRIPT, [this.#leaseKey], [value]));
  }

  async readLease(): Promise<{ value: string; ttl_ms: number } | null> {
    return this.#run('read controller lease', async (r) => {
      const [[, value], [, ttl]] = ((await r.multi().get(this.#leaseKey).pttl(this.#leaseKey).exec()) ?? [[], []]) as [unknown, unknown][];
      return typeof value === 'string' ? { value, ttl_ms: typeof ttl === 'number' ? Math.max(ttl, 0) : 0 } : null;
    });
  }

  async putServiceStatus(name: string, status: unknown, fence: string): Promise<boolean> {
    const result = await this.#run('store service status', (r) =>
      this.#evalScript(r, STATUS_SCRIPT, [this.#key('service-status', name), this.#leaseKey, this.#key('service', name)], [JSON.stringify(status), fence]),
    );
    if (result === -1) throw lostLease(`status of service ${name} not written`);
    return result === 1;
  }

  async getServiceStatus(name: string): Promise<unknown> {
    const raw = await this.#run('read service status', (r) => r.get(this.#key('service-status', name)).catch(nullOnWrongType));
    if (raw === null) return null;
    try {
      return JSON.parse(raw) as unknown;
    } catch {
      return null;
    }
  }

  async addUsage(increments: UsageIncrement[]): Promise<void> {
    if (increments.length === 0) return;
    const ttlSeconds = Math.ceil(USAGE_RETENTION_MS / 1000);
    await this.#run('add usage', async (r) => {
      const pipeline = r.pipeline();
      const touched = new Set<string>();
      for (const inc of increments) {
        const key = this.#usageKey(inc.endpoint, inc.minute);
        for (const [field, amount] of incrementFields(inc)) pipeline.hincrby(key, field, amount);
        touched.add(key);
      }
      for (const key of touched) pipeline.expire(key, ttlSeconds);
      throwExecErrors(await pipeline.exec());
    });
  }

  async queryUsage(query: UsageQuery): Promise<UsageReport> {
    const report = emptyReport(query.groupBy);
    const oldest = Math.floor((Date.now() - USAGE_RETENTION_MS) / MINUTE);
    const from = Math.max(query.fromMinute, oldest);
    return this.#run('read usage', async (r) => {
      for (let start = from; start <= query.toMinute; start += USAGE_QUERY_BATCH) {
        const pipeline = r.pipeline();
        const end = Math.min(query.toMinute, start + USAGE_QUERY_BATCH - 1);
        for (let m = start; m <= end; m++) pipeline.hgetall(this.#usageKey(query.endpoint, m));
        const results = await pipeline.exec();
        throwExecErrors(results);
        for (const [, value] of results!) addFields(report, Object.entries(value as Record<string, string>).map(([k, v]) => [k, Number(v)]), query.groupBy);
      }
      return report;
    });
  }

  #usageKey(endpoint: string, minute: number): string {
    return `${this.#prefix}usage:${endpoint}:${minute}`;
  }

  // Load reports: `{p}load:{endpoint}:{instance}` holds one instance's report (PX ttl, so a
  // dead instance's counts vanish); the sorted set `{p}load:{endpoint}` indexes the instances
  // by expiry so a reader never scans the keyspace.
  async publishLoad(reports: LoadReport[], ttlMs: number): Promise<void> {
    if (reports.length === 0) return;
    const expiresAt = Date.now() + ttlMs;
    await this.#run('publish load', async (r) => {
      const p = r.pipeline();
      for (const report of reports) {
        const index = this.#key('load', report.endpoint);
        p.set(`${index}:${report.instance}`, JSON.stringify(report), 'PX', ttlMs);
        p.zadd(index, expiresAt, report.instance);
        // The index outlives every report in it (reports with a shorter TTL must not cut it short).
        p.pexpire(index, Math.max(ttlMs * 2, 60_000));
      }
      throwExecErrors(await p.exec());
    });
  }

  async readLoad(endpoint: string): Promise<LoadReport[]> {
    const index = this.#key('load', endpoint);
    return this.#run('read load', async (r) => {
      // Index entries long past their expiry (with slack for clock skew between machines) go.
      await r.zremrangebyscore(index, '-inf', String(Date.now() - 10_000));
      const instances = await r.zrange(index, '0', '-1');
      if (instances.length === 0) return [];
      const raws = await r.mget(instances.map((i) => `${index}:${i}`));
      const out: LoadReport[] = [];
      for (const raw of raws) {
        if (raw === null) continue;
        let value: unknown;
        try {
          value = JSON.parse(raw);
        } catch {
          continue;
        }
        const report = parseLoadReport(value);
        if (report) out.push(report);
      }
      return out;
    });
  }

  async requestWake(name: string): Promise<void> {
    await this.#run('publish wake', (r) => r.publish(this.#channel, JSON.stringify({ kind: 'wake', name })));
  }
}

function lostLease(what: string): GatewayError {
  return new GatewayError('ADM_CONFLICT', { message: `${what}: this controller no longer holds the lease (another instance leads)` });
}

function throwExecErrors(results: [Error | null, unknown][] | null): void {
  if (results === null) throw new Error('transaction aborted');
  for (const [err] of results) if (err) throw err;
}

function nullOnWrongType(err: unknown): null {
  if (isReplyError(err) && err.message.startsWith('WRONGTYPE')) return null;
  throw err;
}
