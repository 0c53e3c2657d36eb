import { execFile } from 'node:child_process';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { startUpstream, type TestUpstream } from '../../support/upstream.js';
import { eventually } from '../../support/eventually.js';

interface OtlpAttribute {
  key: string;
  value: { stringValue?: string; intValue?: string | number };
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: OtlpAttribute[];
}

function attr(span: OtlpSpan, key: string): string | number | undefined {
  const a = span.attributes.find((x) => x.key === key);
  if (!a) return undefined;
  return a.value.stringValue ?? (a.value.intValue === undefined ? undefined : Number(a.value.intValue));
}

describe('OpenTelemetry tracing (OTEL_EXPORTER_OTLP_ENDPOINT set)', () => {
  let collector: Server;
  let gw: TestGateway;
  let up: TestUpstream;
  const spans: OtlpSpan[] = [];
  const paths: string[] = [];

  beforeAll(async () => {
    collector = createServer((req, res) => {
      paths.push(req.url ?? '');
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString());
        for (const rs of body.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) spans.push(...(ss.spans ?? []));
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', () => resolve()));
    const collectorUrl = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
    gw = await startTestGateway({ OTEL_EXPORTER_OTLP_ENDPOINT: collectorUrl, OTEL_SERVICE_NAME: 'modelgate-test' });
    up = await startUpstream((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ traceparent: req.headers.traceparent, tracestate: req.headers.tracestate }));
    });
    expect((await gw.admin('PUT', '/v1/endpoints/traced', { public: true, routes: [{ id: 'r1', url: up.url }] })).status).toBe(201);
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
    await new Promise<void>((resolve) => collector?.close(() => resolve()));
  });

  it('exports one span per request, parented by the incoming traceparent, and forwards the child context', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parentId = '00f067aa0ba902b7';
    const forwarded = await new Promise<{ traceparent: string; tracestate: string }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: gw.port,
          path: '/e/traced/v1/chat?secret=x',
          headers: { host: 'localhost', traceparent: `00-${traceId}-${parentId}-01`, tracestate: 'vendor=1' },
        },
        (res) => {
          let text = '';
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve(JSON.parse(text)));
        },
      );
      req.on('error', reject);
      req.end();
    });
    const [, fwdTrace, fwdSpan] = forwarded.traceparent.split('-');
    expect(fwdTrace).toBe(traceId);
    expect(fwdSpan).not.toBe(parentId);
    expect(forwarded.tracestate).toBe('vendor=1');

    const span = (await eventually(() => spans.find((s) => s.traceId === traceId), { timeoutMs: 15_000 }))!;
    expect(paths).toContain('/v1/traces');
    expect(span.parentSpanId).toBe(parentId);
    expect(span.spanId).toBe(fwdSpan);
    expect(span.kind).toBe(2); // SERVER
    expect(span.name).toBe('GET /v1/chat');
    expect(attr(span, 'modelgate.endpoint')).toBe('traced');
    expect(attr(span, 'modelgate.route')).toBe('r1');
    expect(attr(span, 'http.response.status_code')).toBe(200);
    expect(JSON.stringify(span)).not.toContain('secret=x');
  });

  it('traces gateway errors too, with the error code', async () => {
    const res = await fetch(`${gw.url}/e/missing/x`, { headers: { traceparent: '00-11111111111111111111111111111111-2222222222222222-01' } });
    expect(res.status).toBe(404);
    const span = (await eventually(() => spans.find((s) => s.traceId === '11111111111111111111111111111111'), { timeoutMs: 15_000 }))!;
    expect(attr(span, 'error.type')).toBe('GW_ENDPOINT_NOT_FOUND');
    expect(attr(span, 'http.response.status_code')).toBe(404);
  });
});

describe('without OTEL_EXPORTER_OTLP_ENDPOINT', () => {
  function probe(endpoint?: string): Promise<number> {
    return new Promise((resolve, reject) => {
      execFile(process.execPath, ['--import', 'tsx', 'test/support/otel-probe.ts', ...(endpoint ? [endpoint] : [])], { cwd: process.cwd(), timeout: 30_000 }, (err, stdout) =>
        err ? reject(err) : resolve(Number(stdout.trim().split('\n').pop())),
      );
    });
  }

  it('loads no OpenTelemetry SDK or exporter module (and does when set)', async () => {
    expect(await probe()).toBe(0);
    expect(await probe('http://127.0.0.1:4318')).toBeGreaterThan(10);
  });
});
