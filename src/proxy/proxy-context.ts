import type { ServerResponse } from 'node:http';
import type { AccessChecker } from '../auth/access.js';
import type { AccessLogSink } from '../obs/access-log.js';
import type { Logger } from '../obs/logger.js';
import type { Metrics } from '../obs/metrics.js';
import type { RequestTracer } from '../obs/tracing.js';
import type { EndpointCache } from '../routing/endpoint-cache.js';
import type { OutlierDetector } from '../upstream/outlier-detector.js';
import type { TrafficControl } from '../traffic/traffic-control.js';
import type { Addresser } from './addressing.js';
import type { EndpointRuntime } from './endpoint-runtime.js';
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
