/** autocannon, closed loop: fixed connections, fixed duration. */
import autocannon from 'autocannon';

export interface Target {
  name: string;
  origin: string;
  path: string;
  headers: Record<string, string>;
}

export interface Sample {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

export async function closedLoop(t: Target, seconds: number, connections: number): Promise<Sample> {
  const r = await autocannon({ url: t.origin + t.path, connections, duration: seconds, headers: t.headers });
  return { rps: r['2xx'] / r.duration, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.non2xx + r.timeouts };
}
