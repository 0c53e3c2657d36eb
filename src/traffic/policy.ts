import type { RouteTable } from '../schema/route-table.js';

/** prom-client children of one endpoint label. */
export interface LlmMetrics {
  prompt: { inc(n: number): void };
  completion: { inc(n: number): void };
  ttft: { observe(v: number): void };
  tps: { observe(v: number): void };
}

/** Queue bounds when `limits.queue` leaves them out (docs/traffic-control.md). */
export const DEFAULT_QUEUE_MAX_LENGTH = 1000;
export const DEFAULT_QUEUE_MAX_WAIT_MS = 30_000;
export const MINUTE_MS = 60_000;

/**
 * An endpoint's traffic-control settings, compiled once per route-table version, so the hot path
 * reads plain fields and an endpoint that uses none of it pays one boolean test per request.
 */
export class TrafficPolicy {
  readonly endpointId: string;
  readonly endpoint: string;
  /** `limits.max_in_flight_per_route`; 0 = no cap. */
  readonly cap: number;
  readonly queueMax: number;
  readonly maxWaitMs: number;
  /** Endpoint-wide `rate_limit`; 0 = none. */
  readonly rpm: number;
  readonly tpm: number;
  /** Read `usage` from responses to POST requests (`usage.meter`, default on). */
  readonly meter: boolean;
  readonly requestInStream: boolean;
  /** Every request needs traffic control (a cap or an endpoint-wide limit). */
  readonly always: boolean;
  /** The endpoint's LLM metric children, attached on first use by TrafficControl. */
  metrics: LlmMetrics | undefined = undefined;

  constructor(table: RouteTable) {
    this.endpointId = table.id;
    this.endpoint = table.name;
    this.cap = table.limits?.max_in_flight_per_route ?? 0;
    this.queueMax = table.limits?.queue?.max_length ?? DEFAULT_QUEUE_MAX_LENGTH;
    this.maxWaitMs = table.limits?.queue?.max_wait_ms ?? DEFAULT_QUEUE_MAX_WAIT_MS;
    this.rpm = table.rate_limit?.requests_per_minute ?? 0;
    this.tpm = table.rate_limit?.tokens_per_minute ?? 0;
    this.meter = table.usage?.meter ?? true;
    this.requestInStream = this.meter && table.usage?.request_in_stream === true;
    this.always = this.cap > 0 || this.rpm > 0 || this.tpm > 0;
  }
}

const CHAT_SUFFIX = '/chat/completions';
const COMPLETIONS_SUFFIX = '/completions';

/** True for OpenAI-style completion paths (query string ignored), whose bodies the gateway may read. */
export function isCompletionPath(path: string): boolean {
  const q = path.indexOf('?');
  const p = q < 0 ? path : path.slice(0, q);
  return p.endsWith(CHAT_SUFFIX) || p.endsWith(COMPLETIONS_SUFFIX);
}
