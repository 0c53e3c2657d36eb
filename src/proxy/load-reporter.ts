import { randomUUID } from 'node:crypto';
import type { Logger } from '../obs/logger.js';
import type { LoadReport } from '../store/load-board.js';
import type { Store } from '../store/store.js';
import type { EndpointRuntime, EndpointShared } from './endpoint-runtime.js';

/**
 * The autoscaler's signal from this data-plane process: once a second, the in-flight and held
 * requests of every autoscaled endpoint it knows, with the requests finished since the last
 * report and their p99, go to the store with a short TTL (a dead process's counts vanish).
 * The controller sums every instance's reports (store.readLoad). A request held for an
 * endpoint with no replica also asks the controller to wake the service (a store event: a
 * direct in-process call with the embedded store, pub/sub across Redis instances).
 */

export const LOAD_REPORT_INTERVAL_MS = 1_000;
export const LOAD_REPORT_TTL_MS = 3_000;
/** Wake requests per endpoint at most this often: 20 held requests are one wake. */
const WAKE_EVERY_MS = 500;

export class LoadReporter {
  readonly instance = randomUUID();
  /** Autoscaled endpoints by name, their current runtime (maintained by the runtime compiler). */
  readonly endpoints = new Map<string, EndpointRuntime>();
  readonly #store: Store;
  readonly #logger: Logger;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | null = null;
  #lastAt = performance.now();
  #failing = false;

  constructor(opts: { store: Store; logger: Logger; intervalMs?: number }) {
    this.#store = opts.store;
    this.#logger = opts.logger;
    this.#intervalMs = opts.intervalMs ?? LOAD_REPORT_INTERVAL_MS;
  }

  start(): void {
    this.#timer ??= setInterval(() => void this.report(), this.#intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Publishes every autoscaled endpoint's counts now. */
  async report(): Promise<void> {
    if (this.endpoints.size === 0) return;
    const now = performance.now();
    const interval = Math.max(1, now - this.#lastAt);
    this.#lastAt = now;
    const reports: LoadReport[] = [];
    for (const [name, runtime] of this.endpoints) {
      const shared = runtime.shared;
      const meter = shared.load;
      if (meter === null) continue;
      const { requests, p99_ms } = meter.take();
      // Per route, so the controller knows when a draining replica has finished its requests.
      const routes: Record<string, number> = {};
      for (const route of runtime.routes) if (route.outstanding > 0) routes[route.id] = (routes[route.id] ?? 0) + route.outstanding;
      reports.push({ instance: this.instance, endpoint: name, in_flight: shared.inFlight, queued: shared.heldCount, requests, p99_ms, interval_ms: Math.round(interval), routes });
    }
    try {
      await this.#store.publishLoad(reports, LOAD_REPORT_TTL_MS);
      if (this.#failing) this.#logger.info('load reports reach the store again');
      this.#failing = false;
    } catch (err) {
      // Once per outage: the autoscaler sees no load from here until the store is back.
      if (!this.#failing) this.#logger.warn({ err_message: (err as Error).message }, 'cannot publish load reports');
      this.#failing = true;
    }
  }

  /** A request is held for this autoscaled endpoint: report at once and ask for a wake. */
  wake(name: string, shared: EndpointShared): void {
    const now = performance.now();
    if (now - shared.lastWakeAt < WAKE_EVERY_MS) return;
    shared.lastWakeAt = now;
    void this.report()
      .then(() => this.#store.requestWake(name))
      .catch((err: unknown) => this.#logger.warn({ endpoint: name, err_message: (err as Error).message }, 'cannot request a wake'));
  }
}
