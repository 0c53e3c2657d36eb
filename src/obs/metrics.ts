import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { LabeledCounter, LabeledHistogram } from './fast-metrics.js';

/**
 * Every metric of modelgate, in one place. Labels are bounded: endpoint labels go through
 * `EndpointLabeler`, which folds endpoints past the cap into `other`.
 */
export class Metrics {
  readonly registry = new Registry();

  /** Per-request series: plain additions on the hot path (obs/fast-metrics.ts). */
  readonly requests = new LabeledCounter('modelgate_requests_total', 'Data-plane requests by endpoint and status class', ['endpoint', 'status_class'], this.registry);

  readonly requestDuration = new LabeledHistogram(
    'modelgate_request_duration_seconds',
    'Time from request start to response end, by endpoint and status class',
    ['endpoint', 'status_class'],
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    this.registry,
  );

  readonly gatewayErrors = new Counter({
    name: 'modelgate_gateway_errors_total',
    help: 'Errors produced by the gateway itself, by code',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });

  readonly endpointErrors = new Counter({
    name: 'modelgate_endpoint_errors_total',
    help: 'Errors the gateway answered itself, by endpoint and code (requests that reached an endpoint)',
    labelNames: ['endpoint', 'code'] as const,
    registers: [this.registry],
  });

  readonly upstreamErrors = new Counter({
    name: 'modelgate_upstream_errors_total',
    help: 'Upstream failures by endpoint and kind (connect, reset, timeout)',
    labelNames: ['endpoint', 'kind'] as const,
    registers: [this.registry],
  });

  /** Where the in-flight count comes from (the data plane's own counter, read at scrape time). */
  inFlightSource: () => number = () => 0;

  readonly inFlight: Gauge = new Gauge({
    name: 'modelgate_in_flight_requests',
    help: 'Requests being proxied now',
    registers: [this.registry],
    collect: () => {
      this.inFlight.set(this.inFlightSource());
    },
  });

  readonly held = new Gauge({
    name: 'modelgate_held_requests',
    help: 'Requests waiting for a healthy route',
    registers: [this.registry],
  });

  readonly retries = new Counter({
    name: 'modelgate_retries_total',
    help: 'Requests retried on another route after a connect failure',
    labelNames: ['endpoint'] as const,
    registers: [this.registry],
  });

  readonly replays = new Counter({
    name: 'modelgate_upstream_replays_total',
    help: 'Requests sent again after their upstream closed or reset before any response byte (retry.on_reset)',
    labelNames: ['endpoint'] as const,
    registers: [this.registry],
  });

  readonly healthCheckRoutes = new Gauge({
    name: 'modelgate_health_check_routes',
    help: 'Routes under the gateway\'s own health checks (endpoint health_check), by endpoint and state (healthy, unhealthy)',
    labelNames: ['endpoint', 'state'] as const,
    registers: [this.registry],
  });

  readonly healthCheckFailures = new Counter({
    name: 'modelgate_health_check_failures_total',
    help: 'Failed gateway health-check probes of pushed routes, by endpoint',
    labelNames: ['endpoint'] as const,
    registers: [this.registry],
  });

  readonly ejections = new Counter({
    name: 'modelgate_route_ejections_total',
    help: 'Routes ejected by passive outlier detection',
    labelNames: ['endpoint'] as const,
    registers: [this.registry],
  });

  readonly routeTableVersion = new Gauge({
    name: 'modelgate_route_table_version',
    help: 'Version of the route table this instance serves, per endpoint',
    labelNames: ['endpoint'] as const,
    registers: [this.registry],
  });

  readonly serviceDesiredReplicas = new Gauge({
    name: 'modelgate_service_desired_replicas',
    help: 'Replicas a model service should run (the autoscaler decision, or its fixed count)',
    labelNames: ['service'] as const,
    registers: [this.registry],
  });

  readonly serviceCurrentReplicas = new Gauge({
    name: 'modelgate_service_current_replicas',
    help: 'Replicas of a model service running or starting (draining ones excluded)',
    labelNames: ['service'] as const,
    registers: [this.registry],
  });

  readonly endpointsCached = new Gauge({
    name: 'modelgate_endpoints_cached',
    help: 'Route tables held in memory',
    registers: [this.registry],
  });

  readonly storeUp = new Gauge({
    name: 'modelgate_store_up',
    help: '1 when the store is reachable, 0 when degraded',
    registers: [this.registry],
  });

  readonly storeEvents = new Counter({
    name: 'modelgate_store_events_total',
    help: 'Store change events received, by kind',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  readonly invalidTables = new Counter({
    name: 'modelgate_invalid_route_tables_total',
    help: 'Stored route tables that failed validation and were ignored',
    registers: [this.registry],
  });

  /** Counted on every private request: plain additions (obs/fast-metrics.ts), not prom-client's per-call label hashing. */
  readonly tokenCache = new LabeledCounter('modelgate_token_cache_total', 'Verified-token cache lookups by result (hit, miss)', ['result'], this.registry);

  readonly authFailures = new Counter({
    name: 'modelgate_auth_failures_total',
    help: 'Rejected data-plane requests by auth error code',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });

  readonly openWebSockets = new Gauge({
    name: 'modelgate_websockets_open',
    help: 'Open proxied WebSocket connections by endpoint',
    labelNames: ['endpoint'] as const,
    registers: [this.registry],
  });

  /**
   * Store events lag: time from a route-table write (its `updated_at`) to this instance serving
   * the new version. Events carry no timestamp, so the table's own write time is the reference;
   * an update missed by pub/sub and picked up by the periodic resync shows up as a long lag.
   */
  readonly storeEventLag = new Histogram({
    name: 'modelgate_store_event_lag_seconds',
    help: 'Time from a route-table write to this instance applying it',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });

  /** Lines the access log dropped because stdout fell behind (set by the data plane; obs/access-log.ts). */
  accessLogDroppedSource: () => number = () => 0;
  #accessLogDroppedSeen = 0;

  readonly accessLogDropped = new Counter({
    name: 'modelgate_access_log_dropped_lines_total',
    help: 'Access-log lines dropped because the log destination could not keep up (requests are never slowed for the log)',
    registers: [this.registry],
    collect: () => {
      const n = this.accessLogDroppedSource();
      if (n > this.#accessLogDroppedSeen) {
        this.accessLogDropped.inc(n - this.#accessLogDroppedSeen);
        this.#accessLogDroppedSeen = n;
      }
    },
  });

  /** Where the resync age comes from (set by the data plane; 0 = never resynced). */
  lastResyncAt: () => number = () => 0;

  readonly storeResyncAge = new Gauge({
    name: 'modelgate_store_resync_age_seconds',
    help: 'Seconds since the last full route-table resync that reached the store (-1: none yet)',
    registers: [this.registry],
    collect: () => {
      const at = this.lastResyncAt();
      this.storeResyncAge.set(at > 0 ? (Date.now() - at) / 1000 : -1);
    },
  });

  /** Per metered response: plain additions like the request series (obs/fast-metrics.ts). */
  readonly llmTokens = new LabeledCounter(
    'modelgate_llm_tokens_total',
    'LLM tokens metered from upstream usage, by endpoint and kind (prompt, completion)',
    ['endpoint', 'kind'],
    this.registry,
  );

  readonly llmTimeToFirstToken = new LabeledHistogram(
    'modelgate_llm_time_to_first_token_seconds',
    'Time from request start to the first streamed body byte of an LLM response',
    ['endpoint'],
    [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
    this.registry,
  );

  readonly llmOutputTokensPerSecond = new LabeledHistogram(
    'modelgate_llm_output_tokens_per_second',
    'Completion tokens per second of generation (first body byte to end), per response',
    ['endpoint'],
    [1, 5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560],
    this.registry,
  );

  readonly trafficQueued = new Gauge({
    name: 'modelgate_traffic_queued_requests',
    help: 'Requests waiting for a slot under max_in_flight_per_route',
    registers: [this.registry],
  });

  readonly trafficRejected = new Counter({
    name: 'modelgate_traffic_rejected_total',
    help: 'Requests refused by traffic control, by reason (queue_full, queue_timeout, rate_limited)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly trafficLocalFallback = new Gauge({
    name: 'modelgate_traffic_local_fallback',
    help: '1 while a shared limit (slots, rate) is counted per instance because Redis is unreachable',
    labelNames: ['limiter'] as const,
    registers: [this.registry],
  });

  readonly usageFlushFailures = new Counter({
    name: 'modelgate_usage_flush_failures_total',
    help: 'Failed writes of metered usage to the store (kept and retried)',
    registers: [this.registry],
  });

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'modelgate_' });
  }
}

/** Caps distinct endpoint label values so a flood of endpoints cannot blow up /metrics. */
export class EndpointLabeler {
  readonly #seen = new Set<string>();
  readonly #cap: number;

  constructor(cap: number) {
    this.#cap = cap;
  }

  label(name: string): string {
    if (this.#seen.has(name)) return name;
    if (this.#seen.size >= this.#cap) return 'other';
    this.#seen.add(name);
    return name;
  }
}
