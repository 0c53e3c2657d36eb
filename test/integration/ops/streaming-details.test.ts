import { request } from 'node:http';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../support/gateway.js';
import { startUpstream, type TestUpstream } from '../../support/upstream.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  trailers: Record<string, string | undefined>;
  sawContinue: boolean;
}

function call(
  port: number,
  path: string,
  opts: { method?: string; headers?: Record<string, string>; chunks?: Buffer[]; expectContinue?: boolean } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let sawContinue = false;
    const req = request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: { host: 'localhost', ...opts.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks), trailers: res.trailers, sawContinue }));
    });
    req.on('error', reject);
    const send = () => {
      for (const c of opts.chunks ?? []) req.write(c);
      req.end();
    };
    if (opts.expectContinue) {
      req.on('continue', () => {
        sawContinue = true;
        send();
      });
      req.flushHeaders();
    } else {
      send();
    }
  });
}

describe('streaming details', () => {
  let gw: TestGateway;
  let up: TestUpstream;
  const big = Buffer.alloc(256 * 1024, 'x');
  const gz = gzipSync(Buffer.from('{"hello":"gzip"}'.repeat(100)));
  const br = brotliCompressSync(Buffer.from('{"hello":"brotli"}'.repeat(100)));

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startUpstream((req, res, body) => {
      switch (req.url) {
        case '/echo':
          res.setHeader('x-got-bytes', String(body.length));
          res.setHeader('x-got-te', req.headers['transfer-encoding'] ?? '');
          res.setHeader('x-got-expect', req.headers.expect ?? '');
          res.end(body);
          return;
        case '/trailers':
          res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum, x-tokens' });
          res.write('part one\n');
          res.write('part two\n');
          res.addTrailers({ 'x-checksum': 'abc123', 'x-tokens': '42' });
          res.end();
          return;
        case '/gzip':
          res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': gz.length });
          res.end(gz);
          return;
        case '/br':
          res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'br' });
          res.end(br);
          return;
        case '/head':
          res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1234' });
          res.end(req.method === 'HEAD' ? undefined : Buffer.alloc(1234, 'h'));
          return;
        case '/204':
          res.writeHead(204, { 'x-kind': 'empty' });
          res.end();
          return;
        case '/304':
          res.writeHead(304, { etag: '"v1"' });
          res.end();
          return;
        case '/trace':
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({ traceparent: req.headers.traceparent, tracestate: req.headers.tracestate }));
          return;
        default:
          res.statusCode = 404;
          res.end();
      }
    });
    expect((await gw.admin('PUT', '/v1/endpoints/s', { public: true, routes: [{ id: 'r', url: up.url }] })).status).toBe(201);
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
  });

  it('Expect: 100-continue gets its 100 and the body still streams through', async () => {
    const res = await call(gw.port, '/e/s/echo', {
      method: 'POST',
      headers: { expect: '100-continue', 'content-length': String(big.length) },
      chunks: [big],
      expectContinue: true,
    });
    expect(res.sawContinue).toBe(true);
    expect(res.status).toBe(200);
    expect(res.headers['x-got-bytes']).toBe(String(big.length));
    expect(res.body.equals(big)).toBe(true);
  });

  it('a chunked upload of unknown length reaches the upstream whole', async () => {
    const chunks = [Buffer.from('first,'), Buffer.alloc(100_000, 'y'), Buffer.from(',last')];
    const res = await call(gw.port, '/e/s/echo', { method: 'POST', headers: { 'transfer-encoding': 'chunked' }, chunks });
    expect(res.status).toBe(200);
    expect(res.headers['x-got-te']).toBe('chunked');
    expect(res.body.equals(Buffer.concat(chunks))).toBe(true);
  });

  it('response trailers reach the client', async () => {
    const res = await call(gw.port, '/e/s/trailers', { headers: { te: 'trailers' } });
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe('part one\npart two\n');
    expect(res.trailers['x-checksum']).toBe('abc123');
    expect(res.trailers['x-tokens']).toBe('42');
  });

  it('gzip and brotli bodies pass untouched with their content-encoding', async () => {
    const g = await call(gw.port, '/e/s/gzip', { headers: { 'accept-encoding': 'gzip' } });
    expect(g.headers['content-encoding']).toBe('gzip');
    expect(g.headers['content-length']).toBe(String(gz.length));
    expect(g.body.equals(gz)).toBe(true);
    const b = await call(gw.port, '/e/s/br', { headers: { 'accept-encoding': 'br' } });
    expect(b.headers['content-encoding']).toBe('br');
    expect(b.body.equals(br)).toBe(true);
  });

  it('HEAD, 204 and 304 have no body', async () => {
    const head = await call(gw.port, '/e/s/head', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe('1234');
    expect(head.body.length).toBe(0);
    const noContent = await call(gw.port, '/e/s/204');
    expect(noContent.status).toBe(204);
    expect(noContent.headers['x-kind']).toBe('empty');
    expect(noContent.body.length).toBe(0);
    const notModified = await call(gw.port, '/e/s/304', { headers: { 'if-none-match': '"v1"' } });
    expect(notModified.status).toBe(304);
    expect(notModified.headers.etag).toBe('"v1"');
    expect(notModified.body.length).toBe(0);
    // The connection stays usable after bodiless answers.
    const after = await call(gw.port, '/e/s/head');
    expect(after.body.length).toBe(1234);
  });

  it('W3C traceparent and tracestate pass through to the upstream', async () => {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const res = await call(gw.port, '/e/s/trace', { headers: { traceparent, tracestate: 'vendor=opaque,other=1' } });
    const seen = JSON.parse(res.body.toString());
    expect(seen.tracestate).toBe('vendor=opaque,other=1');
    // Without a tracer the header is forwarded untouched; with one, the trace id is kept.
    expect(seen.traceparent.split('-')[1]).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
  });
});
