/**
 * Request tracing seam. The data plane always talks to a `RequestTracer`; without
 * OTEL_EXPORTER_OTLP_ENDPOINT it is `NOOP_TRACER` (no OpenTelemetry module is ever loaded, and a
 * request pays one call to a function that returns a shared object). With the setting, the
 * composition root imports `obs/otel.ts` dynamically and passes its tracer in.
 *
 * W3C `traceparent`/`tracestate` are forwarded as ordinary headers either way; with a tracer,
 * the forwarded `traceparent` names the gateway's span as parent (same trace id).
 */

export interface SpanFacts {
  endpoint: string | undefined;
  route: string | undefined;
  status: number;
  errCode: string | undefined;
  bytes: number;
}

export interface RequestSpan {
  end(facts: SpanFacts): void;
}

export interface RequestTracer {
  /**
   * Starts a span for a request. `headers` is the flat [name, value, ...] array about to be sent
   * upstream: the tracer reads the incoming traceparent/tracestate from it and rewrites them in
   * place to carry the new span's context.
   */
  start(method: string, path: string, headers: string[]): RequestSpan;
  /** Flushes what is buffered (shutdown). */
  shutdown(): Promise<void>;
}

export const NOOP_SPAN: RequestSpan = {
  end() {},
};

export const NOOP_TRACER: RequestTracer = {
  start() {
    return NOOP_SPAN;
  },
  shutdown() {
    return Promise.resolve();
  },
};
