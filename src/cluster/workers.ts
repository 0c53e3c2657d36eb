import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { MetricObjectWithValues, MetricValue, Registry } from 'prom-client';
import type { EndpointStats } from '../obs/endpoint-stats.js';
import type { Logger } from '../obs/logger.js';
import { serveStoreOverIpc } from '../store/ipc-store.js';
import { PrimaryLimits, serveLimitsOverIpc } from '../traffic/ipc-limits.js';
import type { Store } from '../store/store.js';

/**
 * WORKERS with node:cluster. The primary runs the admin API, the controller and (embedded
 * store) the store itself; it forks workers that each run the data plane with their own
 * route-table snapshot, fed by store events: over their own Redis connections with REDIS_URL,
 * else over the cluster IPC channel (store/ipc-store.ts). Workers share the gateway port
 * (cluster hands accepted connections round-robin to them).
 *
 * Messages: worker → primary `worker.hello` (listening for messages), primary → worker
 * `worker.init` (secrets, once), worker → primary `worker.ready` (its gateway port), primary →
 * worker `worker.drain`, primary → worker `metrics.get` / worker → primary `metrics.reply`
 * (the admin listener's /metrics sums every worker's data-plane metrics), and `stats.get` /
 * `stats.reply` for one endpoint's console numbers (GET /v1/endpoints/{name}/stats).
 */

type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];
interface MetricsGet {
  mg: 'metrics.get';
  id: number;
}
interface MetricsReply {
  mg: 'metrics.reply';
  id: number;
  metrics: MetricsJson;
}

interface StatsGet {
  mg: 'stats.get';
  id: number;
  endpoint: string;
}
interface StatsReply {
  mg: 'stats.reply';
  id: number;
  stats: EndpointStats | null;
}

/** WORKERS → number of data-plane processes (0 = one per core; 1 = no cluster). */
export function workerCount(setting: number): number {
  return setting === 0 ? availableParallelism() : setting;
}

export interface WorkerInit {
  mg: 'worker.init';
  tokenSecret: string;
  /** The primary took REDIS_URL (it may hold a password) out of the environment workers inherit. */
  redisUrl?: string;
}
interface WorkerReady {
  mg: 'worker.ready';
  port: number;
}
interface WorkerDrain {
  mg: 'worker.drain';
}

function isMsg<T extends { mg: string }>(m: unknown, kind: T['mg']): m is T {
  return typeof m === 'object' && m !== null && (m as { mg?: unknown }).mg === kind;
}

export interface WorkerPoolOptions {
  count: number;
  tokenSecret: string;
  redisUrl?: string;
  /** The embedded store to serve to workers over IPC; null when they use Redis themselves. */
  store: Store | null;
  logger: Logger;
  /** How long start() waits for every worker to listen. */
  startTimeoutMs?: number;
}

const RESTART_BASE_MS = 500;
const RESTART_MAX_MS = 30_000;

/** The primary's side: forks, restarts crashed workers (with backoff), drains them all on shutdown. */
export class WorkerPool {
  readonly #opts: WorkerPoolOptions;
  readonly #workers = new Map<number, { worker: Worker; detach: (() => void) | null; startedAt: number }>();
  #port = 0;
  #draining = false;
  #metricsRequest = 0;
  #restartDelayMs = RESTART_BASE_MS;
  readonly #limits = new PrimaryLimits();

  constructor(opts: WorkerPoolOptions) {
    this.#opts = opts;
  }

  get size(): number {
    return this.#workers.size;
  }

  /** Forks every worker and resolves with the gateway port once all of them listen. */
  async start(): Promise<number> {
    const ready: Promise<number>[] = [];
    for (let i = 0; i < this.#opts.count; i++) ready.push(this.#fork());
    const timeoutMs = this.#opts.startTimeoutMs ?? 60_000;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`data-plane workers did not start within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const ports = await Promise.race([Promise.all(ready), timeout]);
      this.#port = ports[0];
      return this.#port;
    } finally {
      clearTimeout(timer);
    }
  }

  #fork(): Promise<number> {
    const worker = cluster.fork();
    const entry = { worker, detach: null as (() => void) | null, startedAt: Date.now() };
    this.#workers.set(worker.id, entry);
    if (this.#opts.store) {
      const detachStore = serveStoreOverIpc(this.#opts.store, worker);
      // Caps and rate limits of all workers are counted here; a dead worker's slots free at once.
      const detachLimits = serveLimitsOverIpc(this.#limits, worker);
      entry.detach = () => {
        detachStore();
        detachLimits();
      };
    }
    const init: WorkerInit = { mg: 'worker.init', tokenSecret: this.#opts.tokenSecret, redisUrl: this.#opts.redisUrl };
    // The worker asks once its listener is in place (a message sent earlier could be lost).
    worker.on('message', (m: unknown) => {
      if (isMsg<{ mg: 'worker.hello' }>(m, 'worker.hello')) worker.send(init);
    });
    const ready = new Promise<number>((resolve, reject) => {
      const onMessage = (m: unknown) => {
        if (!isMsg<WorkerReady>(m, 'worker.ready')) return;
        worker.off('message', onMessage);
        this.#opts.logger.info({ worker: worker.id, pid: worker.process.pid }, 'data-plane worker listening');
        resolve(m.port);
      };
      worker.on('message', onMessage);
      worker.once('exit', (code, signal) => reject(new Error(`data-plane worker exited at start (code ${code}, signal ${signal})`)));
    });
    worker.once('exit', (code, signal) => this.#onExit(worker, code, signal));
    // A worker that dies at start must not leave an unhandled rejection behind.
    ready.catch(() => {});
    return ready;
  }

  #onExit(worker: Worker, code: number | null, signal: string | null): void {
    const entry = this.#workers.get(worker.id);
    this.#workers.delete(worker.id);
    entry?.detach?.();
    if (this.#draining) return;
    const lived = entry ? Date.now() - entry.startedAt : 0;
    // A worker that lived a while restarts at once; one that keeps crashing backs off.
    this.#restartDelayMs = lived > RESTART_MAX_MS ? RESTART_BASE_MS : Math.min(RESTART_MAX_MS, this.#restartDelayMs * 2);
    this.#opts.logger.error({ worker: worker.id, pid: worker.process.pid, code, signal, restart_in_ms: this.#restartDelayMs }, 'data-plane worker exited; restarting it');
    const timer = setTimeout(() => {
      if (!this.#draining) this.#fork().catch((err) => this.#opts.logger.error({ err }, 'data-plane worker failed to restart'));
    }, this.#restartDelayMs);
    timer.unref();
  }

  /** Every live worker's metrics (a worker that does not answer within timeoutMs is left out). */
  async collectMetrics(timeoutMs = 2_000): Promise<MetricsJson[]> {
    return this.#ask<MetricsJson>((id) => ({ mg: 'metrics.get', id }) satisfies MetricsGet, (m, id) => (isMsg<MetricsReply>(m, 'metrics.reply') && m.id === id ? m.metrics : undefined), timeoutMs);
  }

  /** Every live worker's numbers for one endpoint (console charts). */
  async collectEndpointStats(endpoint: string, timeoutMs = 2_000): Promise<EndpointStats[]> {
    const replies = await this.#ask<EndpointStats | null>(
      (id) => ({ mg: 'stats.get', id, endpoint }) satisfies StatsGet,
      (m, id) => (isMsg<StatsReply>(m, 'stats.reply') && m.id === id ? m.stats : undefined),
      timeoutMs,
    );
    return replies.filter((s): s is EndpointStats => s !== null);
  }

  /** Sends a request to every live worker and gathers the replies that come within timeoutMs. */
  async #ask<T>(request: (id: number) => object, reply: (m: unknown, id: number) => T | undefined, timeoutMs: number): Promise<T[]> {
    const replies = [...this.#workers.values()].map(({ worker }) => {
      if (worker.isDead()) return Promise.resolve<{ value: T } | null>(null);
      const id = ++this.#metricsRequest;
      return new Promise<{ value: T } | null>((resolve) => {
        const timer = setTimeout(() => finish(null), timeoutMs);
        const onMessage = (m: unknown) => {
          const value = reply(m, id);
          if (value !== undefined) finish({ value });
        };
        const finish = (value: { value: T } | null) => {
          clearTimeout(timer);
          worker.off('message', onMessage);
          resolve(value);
        };
        worker.on('message', onMessage);
        try {
          worker.send(request(id));
        } catch {
          finish(null);
        }
      });
    });
    const answered: T[] = [];
    for (const r of await Promise.all(replies)) if (r !== null) answered.push(r.value);
    return answered;
  }

  /** Asks every worker to drain (each finishes its in-flight requests), waits for them to exit. */
  async drain(graceMs: number): Promise<void> {
    this.#draining = true;
    const exits = [...this.#workers.values()].map(({ worker }) => {
      if (worker.isDead()) return Promise.resolve();
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      try {
        worker.send({ mg: 'worker.drain' } satisfies WorkerDrain);
      } catch {
        worker.process.kill('SIGTERM');
      }
      const killer = setTimeout(() => worker.process.kill('SIGKILL'), graceMs + 10_000);
      killer.unref();
      return exited.finally(() => clearTimeout(killer));
    });
    await Promise.all(exits);
  }
}

/** Worker side: waits for the primary's init message. */
export function waitForWorkerInit(): Promise<WorkerInit> {
  return new Promise((resolve) => {
    const onMessage = (m: unknown) => {
      if (!isMsg<WorkerInit>(m, 'worker.init')) return;
      process.off('message', onMessage);
      resolve(m);
    };
    process.on('message', onMessage);
    process.send?.({ mg: 'worker.hello' });
  });
}

/** Worker side: tells the primary this worker listens. */
export function reportWorkerReady(port: number): void {
  process.send?.({ mg: 'worker.ready', port } satisfies WorkerReady);
}

/** Worker side: calls `drain` once, on the primary's request, SIGTERM/SIGINT, or when the primary is gone. */
export function onWorkerDrain(drain: (reason: string) => void): void {
  process.on('message', (m: unknown) => {
    if (isMsg<WorkerDrain>(m, 'worker.drain')) drain('primary');
  });
  process.once('SIGTERM', () => drain('SIGTERM'));
  process.once('SIGINT', () => drain('SIGINT'));
  process.once('disconnect', () => drain('primary gone'));
}

/** Worker side: answers the primary's metrics requests with this worker's registry. */
export function serveMetricsToPrimary(registry: Registry): void {
  process.on('message', (m: unknown) => {
    if (!isMsg<MetricsGet>(m, 'metrics.get')) return;
    registry.getMetricsAsJSON().then(
      (metrics) => process.send?.({ mg: 'metrics.reply', id: m.id, metrics } satisfies MetricsReply),
      () => process.send?.({ mg: 'metrics.reply', id: m.id, metrics: [] } satisfies MetricsReply),
    );
  });
}

/** Worker side: answers the primary's per-endpoint stats requests. */
export function serveStatsToPrimary(collect: (endpoint: string) => Promise<EndpointStats>): void {
  process.on('message', (m: unknown) => {
    if (!isMsg<StatsGet>(m, 'stats.get') || typeof m.endpoint !== 'string') return;
    collect(m.endpoint).then(
      (stats) => process.send?.({ mg: 'stats.reply', id: m.id, stats } satisfies StatsReply),
      () => process.send?.({ mg: 'stats.reply', id: m.id, stats: null } satisfies StatsReply),
    );
  });
}
