import type { Store } from '../../store/store.js';
import type { MetricsSnapshot } from './decide.js';
import { readPrometheusMetric } from './prometheus-text.js';
import { cpuPercent, readProcess, type ProcessReading } from './process-stats.js';
import type { AutoscalingSpec } from './spec.js';

/**
 * Collecting, the first of the autoscaler's three parts: the gateway instances' load reports
 * summed (store.readLoad), and, only when a rule asks for them, the replicas' CPU/memory from
 * /proc and named metrics scraped from their /metrics.
 */

export interface ReplicaTarget {
  id: string;
  pid: number | undefined;
  /** Base URL of the replica (http://host:port). */
  url: string;
}

export type CollectedMetrics = Omit<MetricsSnapshot, 'ready'>;

const SCRAPE_TIMEOUT_MS = 1_000;

export class MetricsCollector {
  readonly #store: Store;
  /** Last /proc reading per replica id, for CPU% between two collections. */
  readonly #readings = new Map<string, ProcessReading>();

  constructor(store: Store) {
    this.#store = store;
  }

  async collect(endpoint: string, spec: AutoscalingSpec, replicas: ReplicaTarget[]): Promise<CollectedMetrics> {
    const reports = await this.#store.readLoad(endpoint);
    let in_flight = 0;
    let queued = 0;
    let rps = 0;
    let p99: number | null = null;
    for (const r of reports) {
      in_flight += r.in_flight;
      queued += r.queued;
      rps += (r.requests * 1000) / Math.max(1, r.interval_ms);
      // Across instances the worst p99 stands for the service (percentiles do not add up).
      if (r.p99_ms !== null && (p99 === null || r.p99_ms > p99)) p99 = r.p99_ms;
    }
    const out: CollectedMetrics = { in_flight, queued, rps, p99_latency_ms: p99 };
    const wantsReplica = spec.rules.some((r) => r.metric_source === 'REPLICA');
    const scraped = [...new Set(spec.rules.filter((r) => r.metric_source === 'PROMETHEUS').map((r) => r.metric_name))];
    if (wantsReplica) out.replica = await this.#replicaStats(replicas);
    if (scraped.length > 0) out.prometheus = await scrape(replicas, scraped);
    return out;
  }

  /** Requests in flight on one route, summed over every gateway instance's live report. */
  async routeInFlight(endpoint: string, routeId: string): Promise<number> {
    let sum = 0;
    for (const r of await this.#store.readLoad(endpoint)) sum += r.routes?.[routeId] ?? 0;
    return sum;
  }

  /** Forgets readings of replicas that are gone. */
  forget(keep: Set<string>): void {
    for (const id of this.#readings.keys()) if (!keep.has(id)) this.#readings.delete(id);
  }

  async #replicaStats(replicas: ReplicaTarget[]): Promise<{ cpu_percent?: number; memory_bytes?: number }> {
    const cpu: number[] = [];
    const mem: number[] = [];
    await Promise.all(
      replicas.map(async (r) => {
        if (r.pid === undefined) return;
        const reading = await readProcess(r.pid);
        if (reading === null) return;
        const previous = this.#readings.get(r.id);
        this.#readings.set(r.id, reading);
        mem.push(reading.rssBytes);
        if (previous) {
          const pct = cpuPercent(previous, reading);
          if (pct !== null) cpu.push(pct);
        }
      }),
    );
    const out: { cpu_percent?: number; memory_bytes?: number } = {};
    if (cpu.length > 0) out.cpu_percent = cpu.reduce((a, b) => a + b, 0) / cpu.length;
    if (mem.length > 0) out.memory_bytes = mem.reduce((a, b) => a + b, 0) / mem.length;
    return out;
  }
}

/** Each named metric averaged over the replicas that expose it. */
async function scrape(replicas: ReplicaTarget[], names: string[]): Promise<Record<string, number>> {
  const texts = await Promise.all(
    replicas.map(async (r) => {
      try {
        const res = await fetch(`${r.url}/metrics`, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) });
        if (!res.ok) {
          await res.body?.cancel();
          return null;
        }
        return await res.text();
      } catch {
        return null;
      }
    }),
  );
  const out: Record<string, number> = {};
  for (const name of names) {
    let sum = 0;
    let count = 0;
    for (const text of texts) {
      if (text === null) continue;
      const value = readPrometheusMetric(text, name);
      if (value === null) continue;
      sum += value;
      count++;
    }
    if (count > 0) out[name] = sum / count;
  }
  return out;
}
