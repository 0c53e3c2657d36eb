import type { EndpointStats } from '../../src/obs/endpoint-stats.js';

/**
 * From two cumulative samples of GET /v1/endpoints/{name}/stats to one chart point: rates over
 * the interval and the latency quantiles of the requests finished in it. No DOM, so it is unit
 * tested (test/unit/console/stats-math.test.ts).
 */

export interface Point {
  at: number;
  rps: number;
  p50: number;
  p99: number;
  errors: Record<string, number>;
  inFlight: Record<string, number>;
}

export const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);

/** histogram_quantile over the requests between two samples (linear within a bucket). */
export function quantile(q: number, le: number[], counts: number[], total: number): number {
  if (total <= 0) return NaN;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (let i = 0; i < le.length; i++) {
    if (counts[i] >= rank) {
      const inBucket = counts[i] - prevCount;
      return inBucket <= 0 ? le[i] : prevLe + ((le[i] - prevLe) * (rank - prevCount)) / inBucket;
    }
    prevLe = le[i];
    prevCount = counts[i];
  }
  return le.length > 0 ? le[le.length - 1] : NaN; // beyond the last bucket
}

export function derive(prev: EndpointStats, cur: EndpointStats): Point {
  const dt = Math.max(0.001, (cur.at - prev.at) / 1000);
  // A restarted gateway starts its counters at zero again: a negative difference counts as 0.
  const d = (a: number, b: number) => Math.max(0, a - b);
  const requests = d(sum(cur.requests), sum(prev.requests));
  const prevByLe = new Map(prev.latency.le.map((le, i) => [le, prev.latency.counts[i]]));
  const counts = cur.latency.le.map((le, i) => d(cur.latency.counts[i], prevByLe.get(le) ?? 0));
  const total = d(cur.latency.count, prev.latency.count);
  const errors: Record<string, number> = {};
  for (const [code, n] of Object.entries(cur.errors)) errors[code] = d(n, prev.errors[code] ?? 0) / dt;
  const fiveXx = d(cur.requests['5xx'] ?? 0, prev.requests['5xx'] ?? 0) / dt;
  if (fiveXx > 0 || '5xx' in cur.requests) errors['HTTP 5xx'] = fiveXx;
  const inFlight: Record<string, number> = {};
  for (const r of cur.routes) inFlight[r.id] = r.in_flight;
  return { at: cur.at, rps: requests / dt, p50: quantile(0.5, cur.latency.le, counts, total), p99: quantile(0.99, cur.latency.le, counts, total), errors, inFlight };
}
