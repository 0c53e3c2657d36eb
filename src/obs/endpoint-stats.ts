import type { Metrics } from './metrics.js';

/**
 * One endpoint's live numbers for the console's charts (GET /v1/endpoints/{name}/stats):
 * cumulative counters and histogram buckets read from this process's metrics registry, plus
 * the requests each route has outstanding right now. Cumulative, so the reader derives rates
 * and quantiles from two samples, and the gateway keeps no per-viewer state.
 */
export interface EndpointStats {
  endpoint: string;
  /** Sample time, epoch milliseconds. */
  at: number;
  /** Finished requests by status class (`2xx`, `4xx`, `5xx`, …), cumulative. */
  requests: Record<string, number>;
  /** Request duration histogram over every status class, cumulative: counts[i] are requests ≤ le[i] seconds. */
  latency: { le: number[]; counts: number[]; sum: number; count: number };
  /** Errors the gateway answered itself, by code (`GW_UPSTREAM_UNAVAILABLE`, …), cumulative. */
  errors: Record<string, number>;
  /** Requests being proxied for this endpoint now. */
  in_flight: number;
  /** Requests outstanding on each route (replica) now. */
  routes: { id: string; in_flight: number }[];
}

/** The data plane's side of the stats: what is in flight now, per route. */
export interface LoadSource {
  endpointLoad(name: string): { inFlight: number; routes: { id: string; in_flight: number }[] } | null;
}

type Values = { labels: Record<string, string | number | undefined>; value: number; metricName?: string }[];

/** Reads one endpoint's numbers from this process. */
export async function collectEndpointStats(name: string, metrics: Metrics, load: LoadSource | null, now = Date.now()): Promise<EndpointStats> {
  const stats: EndpointStats = { endpoint: name, at: now, requests: {}, latency: { le: [], counts: [], sum: 0, count: 0 }, errors: {}, in_flight: 0, routes: [] };
  for (const v of (await metrics.requests.get()).values as Values) {
    if (v.labels.endpoint !== name) continue;
    const cls = String(v.labels.status_class);
    stats.requests[cls] = (stats.requests[cls] ?? 0) + v.value;
  }
  const buckets = new Map<number, number>();
  for (const v of (await metrics.requestDuration.get()).values as Values) {
    if (v.labels.endpoint !== name) continue;
    if (v.metricName?.endsWith('_bucket')) {
      const le = v.labels.le === '+Inf' ? Infinity : Number(v.labels.le);
      buckets.set(le, (buckets.get(le) ?? 0) + v.value);
    } else if (v.metricName?.endsWith('_sum')) stats.latency.sum += v.value;
    else if (v.metricName?.endsWith('_count')) stats.latency.count += v.value;
  }
  for (const le of [...buckets.keys()].sort((a, b) => a - b)) {
    if (le === Infinity) continue; // the count is the +Inf bucket
    stats.latency.le.push(le);
    stats.latency.counts.push(buckets.get(le)!);
  }
  for (const v of (await metrics.endpointErrors.get()).values as Values) {
    if (v.labels.endpoint !== name) continue;
    const code = String(v.labels.code);
    stats.errors[code] = (stats.errors[code] ?? 0) + v.value;
  }
  const current = load?.endpointLoad(name);
  if (current) {
    stats.in_flight = current.inFlight;
    stats.routes = current.routes;
  }
  return stats;
}

/** Sums the samples of several processes (a cluster primary and its workers). */
export function mergeEndpointStats(parts: EndpointStats[], name: string, now = Date.now()): EndpointStats {
  const out: EndpointStats = { endpoint: name, at: now, requests: {}, latency: { le: [], counts: [], sum: 0, count: 0 }, errors: {}, in_flight: 0, routes: [] };
  const buckets = new Map<number, number>();
  const routes = new Map<string, number>();
  for (const p of parts) {
    for (const [k, v] of Object.entries(p.requests)) out.requests[k] = (out.requests[k] ?? 0) + v;
    for (const [k, v] of Object.entries(p.errors)) out.errors[k] = (out.errors[k] ?? 0) + v;
    p.latency.le.forEach((le, i) => buckets.set(le, (buckets.get(le) ?? 0) + p.latency.counts[i]));
    out.latency.sum += p.latency.sum;
    out.latency.count += p.latency.count;
    out.in_flight += p.in_flight;
    for (const r of p.routes) routes.set(r.id, (routes.get(r.id) ?? 0) + r.in_flight);
  }
  for (const le of [...buckets.keys()].sort((a, b) => a - b)) {
    out.latency.le.push(le);
    out.latency.counts.push(buckets.get(le)!);
  }
  out.routes = [...routes].map(([id, inFlight]) => ({ id, in_flight: inFlight }));
  return out;
}
