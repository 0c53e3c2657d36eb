import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { AccessChecker } from '../auth/access.js';
import type { AccessLogSink } from '../obs/access-log.js';
import type { CounterSeries, HistogramSeries } from '../obs/fast-metrics.js';
import type { Settings } from '../config/settings.js';
import type { Logger } from '../obs/logger.js';
import type { Metrics } from '../obs/metrics.js';
import { NOOP_TRACER, type RequestTracer } from '../obs/tracing.js';
import type { EndpointCache } from '../routing/endpoint-cache.js';
import { OutlierDetector } from '../upstream/outlier-detector.js';
import type { TrafficControl } from '../traffic/traffic-control.js';
import { Addresser } from './addressing.js';
import { statusClass, type EndpointRuntime } from './endpoint-runtime.js';
import type { TunnelSet } from './tunnel.js';

/** Everything an Exchange needs from its gateway instance, built once at start-up. */
export interface ProxyContext {
  readonly addresser: Addresser;
  readonly endpoints: EndpointCache<EndpointRuntime>;
  readonly access: AccessChecker;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** NOOP_TRACER unless OTEL_EXPORTER_OTLP_ENDPOINT is set. */
  readonly tracer: RequestTracer;
  readonly outlier: OutlierDetector;
  readonly traffic: TrafficControl;
  readonly maxConcurrent: number;
  readonly bodyLimitBytes: number;
  /** REQUEST_BUFFER_MAX_BYTES: bodies of declared length up to this are read whole, then sent with the head. */
  readonly requestBufferMaxBytes: number;
  /** MAX_HEADER_COUNT: more header lines → 431. */
  readonly maxHeaderCount: number;
  /** UPSTREAM_MAX_HEADER_COUNT: an upstream response with more header lines → 502. */
  readonly maxUpstreamHeaderCount: number;
  readonly holdTimeoutMs: number;
  readonly retryMax: number;
  /** Requests one route may have outstanding: its pool's connections plus UPSTREAM_PENDING_MAX waiting. */
  readonly routeQueueMax: number;
  /** Open WebSocket tunnels (re-checked on endpoint changes and revocations, closed on drain). */
  readonly tunnels: TunnelSet;
  /** WS_IDLE_TIMEOUT_MS: a tunnel without traffic this long is closed (1001). */
  readonly wsIdleTimeoutMs: number;
  /** ACCESS_LOG, and the access log's level (info) enabled: checked once here, not per request. */
  readonly accessLog: boolean;
  /** Where access-log lines go (obs/access-log.ts; a pino logger in some tests). */
  readonly accessLogger: AccessLogSink;
  inFlight: number;
  draining: boolean;
  isTrustedProxy(address: string): boolean;
  newRequestId(): string;
  respondHealthz(res: ServerResponse): void;
  respondReadyz(res: ServerResponse): void;
  recordUnrouted(status: number, seconds: number): void;
  onRequestFinished(): void;
  /** A request is held for an autoscaled endpoint (its service may be at zero replicas). */
  wakeScaled(runtime: EndpointRuntime): void;
}

/** What the data plane is given by the composition root. */
export interface ProxyDeps {
  access: AccessChecker;
  metrics: Metrics;
  logger: Logger;
  /** Where access-log lines go (obs/access-log.ts); default: through `logger`. */
  accessLogger?: AccessLogSink;
  /** Whether a socket peer may set X-Forwarded-For (TRUSTED_PROXIES). */
  isTrustedProxy?: (address: string) => boolean;
  /** One span per request (obs/otel.ts when OTEL_EXPORTER_OTLP_ENDPOINT is set); no-op otherwise. */
  tracer?: RequestTracer;
}

/** The parts of a ProxyContext that belong to the server owning it. */
export interface ProxyServerHooks {
  respondReadyz(res: ServerResponse): void;
  onRequestFinished(): void;
  wakeScaled(runtime: EndpointRuntime): void;
}

const JSON_HEADERS = { 'content-type': 'application/json', 'cache-control': 'no-store' };

export function createProxyContext(
  s: Settings,
  deps: ProxyDeps & { accessLogger: AccessLogSink },
  endpoints: EndpointCache<EndpointRuntime>,
  tunnels: TunnelSet,
  traffic: TrafficControl,
  hooks: ProxyServerHooks,
): ProxyContext {
  const { metrics, logger } = deps;
  // Requests that never reached an endpoint (404, refused heads): series bound on first use.
  const unrouted: { requests: CounterSeries; durations: HistogramSeries }[] = [];
  return {
    addresser: new Addresser(s.APPS_DOMAIN),
    endpoints,
    access: deps.access,
    metrics,
    logger,
    tracer: deps.tracer ?? NOOP_TRACER,
    traffic,
    outlier: new OutlierDetector({ failuresToEject: s.EJECT_AFTER_FAILURES, baseMs: s.EJECT_BASE_MS, maxMs: s.EJECT_MAX_MS }),
    maxConcurrent: s.MAX_CONCURRENT_REQUESTS,
    bodyLimitBytes: s.BODY_LIMIT_BYTES,
    requestBufferMaxBytes: Math.min(s.REQUEST_BUFFER_MAX_BYTES, s.BODY_LIMIT_BYTES),
    maxHeaderCount: s.MAX_HEADER_COUNT,
    maxUpstreamHeaderCount: s.UPSTREAM_MAX_HEADER_COUNT,
    holdTimeoutMs: s.HOLD_TIMEOUT_MS,
    retryMax: s.RETRY_MAX,
    routeQueueMax: s.UPSTREAM_POOL_CONNECTIONS + s.UPSTREAM_PENDING_MAX,
    tunnels,
    wsIdleTimeoutMs: s.WS_IDLE_TIMEOUT_MS,
    accessLog: s.ACCESS_LOG && deps.accessLogger.enabled,
    accessLogger: deps.accessLogger,
    inFlight: 0,
    draining: false,
    isTrustedProxy: deps.isTrustedProxy ?? (() => false),
    newRequestId: randomUUID,
    respondHealthz(res) {
      res.writeHead(200, JSON_HEADERS);
      res.end('{"status":"ok"}');
    },
    respondReadyz: hooks.respondReadyz,
    recordUnrouted(status, seconds) {
      const i = Math.min(5, (status / 100) | 0);
      const series = (unrouted[i] ??= { requests: metrics.requests.labels('none', statusClass(status)), durations: metrics.requestDuration.labels('none', statusClass(status)) });
      series.requests.inc();
      series.durations.observe(seconds);
    },
    onRequestFinished: hooks.onRequestFinished,
    wakeScaled: hooks.wakeScaled,
  };
}
