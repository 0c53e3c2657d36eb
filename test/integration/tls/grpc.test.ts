import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { constants as h2c, connect as h2connect, createSecureServer, type Http2SecureServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { createTestCa, type TestCa } from '../../support/tls-certs.js';
import { eventually } from '../../support/eventually.js';

/**
 * gRPC end to end through the TLS edge: real @grpc/grpc-js clients → modelgate (HTTP/2 over
 * TLS) → a real grpc-js server reached over h2c. Plus https:// and h2 upstreams.
 */

const DOMAIN = 'apps.test';
const definition = protoLoader.loadSync(join(import.meta.dirname, '../../fixtures/grpc/infer.proto'), { keepCase: true });
const proto = grpc.loadPackageDefinition(definition) as unknown as {
  mgtest: { Infer: grpc.ServiceClientConstructor & { service: grpc.ServiceDefinition } };
};

interface PredictRequest {
  input: string;
  count?: number;
  delay_ms?: number;
  fail?: boolean;
}
type InferClient = grpc.Client & {
  Predict(req: PredictRequest, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, reply?: { output: string }) => void): grpc.ClientUnaryCall;
  Stream(req: PredictRequest, md?: grpc.Metadata, opts?: grpc.CallOptions): grpc.ClientReadableStream<{ output: string; index: number }>;
};

describe('gRPC through the TLS edge (grpc-js client and server, h2c upstream)', () => {
  let ca: TestCa;
  let gw: TestGateway;
  let server: grpc.Server;
  let cancelled = 0;
  let upstreamPort = 0;

  const client = (endpoint: string): InferClient =>
    new proto.mgtest.Infer(`127.0.0.1:${gw.port}`, grpc.credentials.createSsl(Buffer.from(ca.caPem)), {
      'grpc.ssl_target_name_override': `${endpoint}.${DOMAIN}`,
      'grpc.default_authority': `${endpoint}.${DOMAIN}`,
    }) as unknown as InferClient;

  const predict = (c: InferClient, req: PredictRequest, md = new grpc.Metadata(), opts: grpc.CallOptions = {}) =>
    new Promise<{ err: grpc.ServiceError | null; reply?: { output: string }; trailing?: grpc.Metadata }>((resolve) => {
      let trailing: grpc.Metadata | undefined;
      const call = c.Predict(req, md, opts, (err, reply) => setImmediate(() => resolve({ err, reply, trailing })));
      call.on('status', (status: grpc.StatusObject) => (trailing = status.metadata));
    });

  beforeAll(async () => {
    ca = createTestCa();
    const pair = ca.issue('gw', [`*.${DOMAIN}`]);
    server = new grpc.Server();
    server.addService(proto.mgtest.Infer.service, {
      Predict: (call: grpc.ServerUnaryCall<PredictRequest, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        let done = false;
        call.on('cancelled', () => {
          if (!done) cancelled++;
        });
        setTimeout(() => {
          done = true;
          if (call.request.fail) return cb({ code: grpc.status.INVALID_ARGUMENT, details: 'input rejected by the model' });
          const trailer = new grpc.Metadata();
          trailer.set('x-model-version', '7');
          cb(null, { output: `echo:${call.request.input}` }, trailer);
        }, call.request.delay_ms ?? 0);
      },
      Stream: (call: grpc.ServerWritableStream<PredictRequest, unknown>) => {
        let i = 0;
        call.on('cancelled', () => cancelled++);
        const tick = () => {
          if (call.cancelled) return;
          if (i >= (call.request.count ?? 3)) return call.end();
          call.write({ output: `token-${i}`, index: i });
          i++;
          setTimeout(tick, call.request.delay_ms ?? 0);
        };
        tick();
      },
    });
    upstreamPort = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );
    gw = await startTestGateway({ APPS_DOMAIN: DOMAIN, TLS_CERT_FILE: pair.certFile, TLS_KEY_FILE: pair.keyFile, HOLD_TIMEOUT_MS: '300' });
    const route = { id: 'g1', url: `http://127.0.0.1:${upstreamPort}`, protocol: 'h2c' };
    expect((await gw.admin('PUT', '/v1/endpoints/infer', { public: true, routes: [route] })).status).toBe(201);
    expect((await gw.admin('PUT', '/v1/endpoints/private-infer', { public: false, routes: [route] })).status).toBe(201);
    expect((await gw.admin('PUT', '/v1/endpoints/empty', { public: true, routes: [] })).status).toBe(201);
  });

  afterAll(async () => {
    await gw?.stop();
    server?.forceShutdown();
    ca?.remove();
  });

  it('refuses protocol h2c on an https:// route and h2 on an http:// one, naming the field', async () => {
    const bad = await gw.admin('PUT', '/v1/endpoints/bad', { routes: [{ url: 'https://127.0.0.1:1', protocol: 'h2c' }] });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('ADM_INVALID');
    expect(JSON.stringify(bad.body.error.details)).toContain('routes.0.protocol');
  });

  it('passes a unary call with its trailing metadata', async () => {
    const c = client('infer');
    const { err, reply, trailing } = await predict(c, { input: 'hi' });
    expect(err).toBeNull();
    expect(reply?.output).toBe('echo:hi');
    expect(trailing?.get('x-model-version')).toEqual(['7']);
    c.close();
  });

  it('passes an upstream error status untouched', async () => {
    const c = client('infer');
    const { err } = await predict(c, { input: 'x', fail: true });
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err?.details).toBe('input rejected by the model');
    c.close();
  });

  it('streams server messages one by one', async () => {
    const c = client('infer');
    const got: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = c.Stream({ input: 's', count: 5, delay_ms: 20 });
      call.on('data', (m) => got.push(m.output));
      call.on('error', reject);
      call.on('end', () => resolve());
    });
    expect(got).toEqual(['token-0', 'token-1', 'token-2', 'token-3', 'token-4']);
    c.close();
  });

  it('turns a passed deadline into DEADLINE_EXCEEDED and cancels the upstream call', async () => {
    const before = cancelled;
    const c = client('infer');
    const { err } = await predict(c, { input: 'slow', delay_ms: 3000 }, new grpc.Metadata(), { deadline: Date.now() + 300 });
    expect(err?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    await eventually(() => cancelled > before, { timeoutMs: 2500 });
    c.close();
  });

  it('carries a client cancellation to the upstream', async () => {
    const before = cancelled;
    const c = client('infer');
    const call = c.Stream({ input: 'long', count: 1000, delay_ms: 50 });
    await new Promise<void>((resolve) => call.once('data', () => resolve()));
    call.on('error', () => {});
    call.cancel();
    await eventually(() => cancelled > before, { timeoutMs: 2500 });
    c.close();
  });

  it('answers gateway errors as gRPC status with the gateway code in grpc-message', async () => {
    const c = client('private-infer');
    const missing = await predict(c, { input: 'x' });
    expect(missing.err?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(missing.err?.details).toContain('GW_AUTH_MISSING');
    const token = await gw.admin('POST', '/v1/endpoints/private-infer/tokens', { ttl_seconds: 600 });
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${token.body.token}`);
    const ok = await predict(c, { input: 'with token' }, md);
    expect(ok.err).toBeNull();
    expect(ok.reply?.output).toBe('echo:with token');
    c.close();

    const none = client('empty');
    const unavailable = await predict(none, { input: 'x' });
    expect(unavailable.err?.code).toBe(grpc.status.UNAVAILABLE);
    expect(unavailable.err?.details).toContain('GW_NO_HEALTHY_ROUTE');
    none.close();

    const unknown = client('no-such-endpoint');
    const notFound = await predict(unknown, { input: 'x' });
    expect(notFound.err?.code).toBe(grpc.status.NOT_FOUND);
    expect(notFound.err?.details).toContain('GW_ENDPOINT_NOT_FOUND');
    unknown.close();
  });
});

describe('upstreams over TLS: https:// routes verified against UPSTREAM_CA_FILE, and h2 with trailers', () => {
  let ca: TestCa;
  let https1: HttpsServer;
  let h2: Http2SecureServer;
  let withCa: TestGateway;
  let withoutCa: TestGateway;

  beforeAll(async () => {
    ca = createTestCa();
    const up = ca.issue('upstream', ['127.0.0.1', 'localhost']);
    https1 = createHttpsServer({ cert: up.cert, key: up.key }, (req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ tls: true, url: req.url, sni: (req.socket as { servername?: string }).servername ?? null }));
    });
    h2 = createSecureServer({ cert: up.cert, key: up.key }, (req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.addTrailers({ 'x-checksum': 'abc123' });
      res.end(`h2 upstream saw ${req.httpVersion}`);
    });
    await new Promise<void>((r) => https1.listen(0, '127.0.0.1', () => r()));
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', () => r()));
    const gwPair = ca.issue('gw', [`*.${DOMAIN}`, '127.0.0.1']);
    const tlsEnv = { APPS_DOMAIN: DOMAIN, TLS_CERT_FILE: gwPair.certFile, TLS_KEY_FILE: gwPair.keyFile };
    withCa = await startTestGateway({ ...tlsEnv, UPSTREAM_CA_FILE: ca.caFile });
    withoutCa = await startTestGateway({});
    const routes = { public: true, routes: [{ id: 't', url: `https://localhost:${(https1.address() as AddressInfo).port}/` }] };
    await withCa.admin('PUT', '/v1/endpoints/secure', routes);
    await withoutCa.admin('PUT', '/v1/endpoints/secure', routes);
    await withCa.admin('PUT', '/v1/endpoints/h2up', {
      public: true,
      routes: [{ id: 'h', url: `https://127.0.0.1:${(h2.address() as AddressInfo).port}`, protocol: 'h2' }],
    });
  });

  afterAll(async () => {
    await withCa?.stop();
    await withoutCa?.stop();
    https1?.closeAllConnections();
    await new Promise((r) => https1?.close(r));
    await new Promise((r) => h2?.close(r));
    ca?.remove();
  });

  it('verifies the upstream certificate: trusted with UPSTREAM_CA_FILE (SNI = the route host), 502 without', async () => {
    const session = h2connect(`https://127.0.0.1:${withCa.port}`, { ca: ca.caPem, servername: `secure.${DOMAIN}` });
    const body = await new Promise<string>((resolve, reject) => {
      const stream = session.request({ ':path': '/x', ':authority': `secure.${DOMAIN}` });
      let text = '';
      stream.on('data', (d: Buffer) => (text += d));
      stream.on('end', () => resolve(text));
      stream.on('error', reject);
      stream.end();
    });
    session.close();
    expect(JSON.parse(body)).toEqual({ tls: true, url: '/x', sni: 'localhost' });

    const refused = await fetch(`${withoutCa.url}/e/secure/x`);
    expect(refused.status).toBe(502);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('GW_UPSTREAM_UNAVAILABLE');
  });

  it('reaches an h2 route over HTTP/2 and passes its trailers to an HTTP/2 client', async () => {
    const session = h2connect(`https://127.0.0.1:${withCa.port}`, { ca: ca.caPem, servername: `h2up.${DOMAIN}` });
    const result = await new Promise<{ body: string; trailers: Record<string, unknown> }>((resolve, reject) => {
      const stream = session.request({ ':path': '/e/h2up/', ':authority': `h2up.${DOMAIN}`, te: 'trailers' });
      let body = '';
      let trailers: Record<string, unknown> = {};
      stream.on('trailers', (t) => (trailers = t));
      stream.on('data', (d: Buffer) => (body += d));
      stream.on('end', () => resolve({ body, trailers }));
      stream.on('error', reject);
      stream.end();
    });
    session.close();
    expect(result.body).toBe('h2 upstream saw 2.0');
    expect(result.trailers['x-checksum']).toBe('abc123');
    void h2c;
  });
});
