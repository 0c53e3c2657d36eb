import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { RequestSpan, RequestTracer, SpanFacts } from './tracing.js';

/**
 * OpenTelemetry tracing, loaded only when OTEL_EXPORTER_OTLP_ENDPOINT is set (dynamic import from
 * main.ts). One SERVER span per data-plane request, parent taken from the incoming W3C
 * traceparent, exported over OTLP/HTTP (JSON) to `{endpoint}/v1/traces` in batches.
 */

export interface OtelOptions {
  /** OTEL_EXPORTER_OTLP_ENDPOINT: base URL of the collector (http://collector:4318). */
  endpoint: string;
  serviceName: string;
  /** Batch delay; lower in tests. */
  scheduledDelayMillis?: number;
}

interface Carrier {
  traceparent?: string;
  tracestate?: string;
}

const getter: TextMapGetter<Carrier> = {
  keys: (c) => Object.keys(c),
  get: (c, key) => (key === 'traceparent' ? c.traceparent : key === 'tracestate' ? c.tracestate : undefined),
};
const setter: TextMapSetter<Carrier> = {
  set: (c, key, value) => {
    if (key === 'traceparent') c.traceparent = value;
    else if (key === 'tracestate') c.tracestate = value;
  },
};

export function tracesUrl(endpoint: string): string {
  const base = endpoint.replace(/\/+$/, '');
  return base.endsWith('/v1/traces') ? base : `${base}/v1/traces`;
}

type Span = ReturnType<ReturnType<BasicTracerProvider['getTracer']>['startSpan']>;

class OtelSpan implements RequestSpan {
  readonly #span: Span;

  constructor(span: Span) {
    this.#span = span;
  }

  end(facts: SpanFacts): void {
    const span = this.#span;
    if (facts.endpoint !== undefined) span.setAttribute('modelgate.endpoint', facts.endpoint);
    if (facts.route !== undefined) span.setAttribute('modelgate.route', facts.route);
    span.setAttribute('http.response.status_code', facts.status);
    span.setAttribute('http.response.body.size', facts.bytes);
    if (facts.errCode !== undefined) span.setAttribute('error.type', facts.errCode);
    if (facts.status >= 500 || facts.errCode !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: facts.errCode });
    span.end();
  }
}

export function createOtelTracer(opts: OtelOptions): RequestTracer {
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': opts.serviceName }),
    spanProcessors: [
      new BatchSpanProcessor(new OTLPTraceExporter({ url: tracesUrl(opts.endpoint), timeoutMillis: 5_000 }), {
        scheduledDelayMillis: opts.scheduledDelayMillis ?? 2_000,
        maxQueueSize: 8_192,
      }),
    ],
  });
  const tracer = provider.getTracer('modelgate');
  const propagator = new W3CTraceContextPropagator();

  return {
    start(method, path, headers) {
      const carrier: Carrier = {};
      let parentAt = -1;
      let stateAt = -1;
      for (let i = 0; i < headers.length; i += 2) {
        const lower = headers[i].toLowerCase();
        if (lower === 'traceparent') {
          carrier.traceparent = headers[i + 1];
          parentAt = i;
        } else if (lower === 'tracestate') {
          carrier.tracestate = headers[i + 1];
          stateAt = i;
        }
      }
      const parent = propagator.extract(ROOT_CONTEXT, carrier, getter);
      const q = path.indexOf('?');
      const span = tracer.startSpan(
        `${method} ${q < 0 ? path : path.slice(0, q)}`.slice(0, 200),
        { kind: SpanKind.SERVER, attributes: { 'http.request.method': method, 'url.path': q < 0 ? path : path.slice(0, q) } },
        parent,
      );
      const out: Carrier = {};
      propagator.inject(trace.setSpan(parent, span), out, setter);
      if (out.traceparent !== undefined) {
        if (parentAt >= 0) headers[parentAt + 1] = out.traceparent;
        else headers.push('traceparent', out.traceparent);
      }
      if (out.tracestate !== undefined && stateAt < 0) headers.push('tracestate', out.tracestate);
      return new OtelSpan(span);
    },
    async shutdown() {
      await provider.shutdown();
    },
  };
}
