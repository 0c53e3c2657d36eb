/**
 * What an autoscaled endpoint's requests add on top of the usual counters: finished requests
 * and their latencies since the last load report (for `rps` and `p99_latency_ms`). Endpoints
 * without autoscaling have no meter (EndpointShared.load is null) and pay one null check.
 */

/** Latencies kept per report interval; beyond this the newest overwrite the oldest. */
const LATENCY_SAMPLES = 1024;

export class LoadMeter {
  finished = 0;
  readonly #latencies = new Float64Array(LATENCY_SAMPLES);
  #count = 0;

  record(seconds: number): void {
    this.finished++;
    this.#latencies[this.#count % LATENCY_SAMPLES] = seconds * 1000;
    this.#count++;
  }

  /** Finished requests and their p99 (ms) since the previous call; resets both. */
  take(): { requests: number; p99_ms: number | null } {
    const requests = this.finished;
    const n = Math.min(this.#count, LATENCY_SAMPLES);
    let p99: number | null = null;
    if (n > 0) {
      const sorted = this.#latencies.slice(0, n).sort();
      p99 = Math.round(sorted[Math.max(0, Math.ceil(n * 0.99) - 1)] * 1000) / 1000;
    }
    this.finished = 0;
    this.#count = 0;
    return { requests, p99_ms: p99 };
  }
}
