/**
 * Live load of autoscaled endpoints, as each gateway instance reports it (at least once a
 * second). A report lives `ttlMs`: the counts of an instance that died vanish by themselves
 * instead of holding a service up forever. The embedded store keeps them here; RedisStore
 * keeps the same thing in Redis (docs/redis-schema.md, `load:`).
 */

/** One instance's load of one endpoint over its last report interval. */
export interface LoadReport {
  /** The reporting data-plane process (a random id per process). */
  instance: string;
  endpoint: string;
  /** Requests being served by this instance now. */
  in_flight: number;
  /** Requests waiting on this instance now (hold queue). */
  queued: number;
  /** Requests finished during the interval. */
  requests: number;
  /** p99 latency of the requests finished during the interval; null without any. */
  p99_ms: number | null;
  /** Length of the interval the counts cover. */
  interval_ms: number;
  /** Requests in flight per route id (routes with none left out). */
  routes?: Record<string, number>;
}

export class LoadBoard {
  readonly #byEndpoint = new Map<string, Map<string, { report: LoadReport; expiresAt: number }>>();

  publish(reports: LoadReport[], ttlMs: number, now = Date.now()): void {
    for (const report of reports) {
      let instances = this.#byEndpoint.get(report.endpoint);
      if (instances === undefined) {
        instances = new Map();
        this.#byEndpoint.set(report.endpoint, instances);
      }
      instances.set(report.instance, { report, expiresAt: now + ttlMs });
    }
  }

  read(endpoint: string, now = Date.now()): LoadReport[] {
    const instances = this.#byEndpoint.get(endpoint);
    if (instances === undefined) return [];
    const out: LoadReport[] = [];
    for (const [instance, entry] of instances) {
      if (entry.expiresAt <= now) instances.delete(instance);
      else out.push(entry.report);
    }
    if (instances.size === 0) this.#byEndpoint.delete(endpoint);
    return out;
  }
}

/** A report from outside (IPC, Redis): only well-formed numbers are believed. */
export function parseLoadReport(value: unknown): LoadReport | null {
  if (typeof value !== 'object' || value === null) return null;
  const v = value as Record<string, unknown>;
  const num = (x: unknown) => typeof x === 'number' && Number.isFinite(x) && x >= 0;
  if (typeof v.instance !== 'string' || typeof v.endpoint !== 'string') return null;
  if (!num(v.in_flight) || !num(v.queued) || !num(v.requests) || !num(v.interval_ms)) return null;
  if (v.p99_ms !== null && !num(v.p99_ms)) return null;
  const report: LoadReport = {
    instance: v.instance,
    endpoint: v.endpoint,
    in_flight: v.in_flight as number,
    queued: v.queued as number,
    requests: v.requests as number,
    p99_ms: v.p99_ms as number | null,
    interval_ms: v.interval_ms as number,
  };
  if (typeof v.routes === 'object' && v.routes !== null && !Array.isArray(v.routes)) {
    const routes: Record<string, number> = {};
    let n = 0;
    for (const [id, count] of Object.entries(v.routes as Record<string, unknown>)) {
      if (++n > 10_000) break;
      if (num(count)) routes[id] = count as number;
    }
    report.routes = routes;
  }
  return report;
}
