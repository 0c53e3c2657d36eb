import { Agent, IncomingMessage, ServerResponse, createServer, request } from 'node:http';
import { Socket, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { endWithBody, writeCheckedHead } from '../../../src/proxy/response-writes.js';

/**
 * writeCheckedHead must leave a ServerResponse exactly as node's writeHead would: the same header
 * lines (order aside: the headers that steer node come last) and the same framing and keep-alive
 * decisions. Each case runs both on fresh responses to the same request.
 */

interface RequestShape {
  method?: string;
  http10?: boolean;
  expectContinue?: boolean;
}

function response(shape: RequestShape): ServerResponse {
  const req = new IncomingMessage(new Socket());
  req.method = shape.method ?? 'GET';
  req.httpVersionMajor = 1;
  req.httpVersionMinor = shape.http10 ? 0 : 1;
  req.headers = {};
  const res = new ServerResponse(req);
  // What node:http's server sets on each response of a keep-alive connection.
  const internal = res as unknown as Record<string, unknown>;
  internal._keepAliveTimeout = 60_000;
  if (shape.http10) res.shouldKeepAlive = false;
  if (shape.expectContinue) internal._expect_continue = true;
  return res;
}

interface Outcome {
  statusLine: string;
  lines: string[];
  chunkedEncoding: boolean;
  last: boolean;
  shouldKeepAlive: boolean;
  hasBody: boolean;
}

function outcome(res: ServerResponse): Outcome {
  const internal = res as unknown as { _header: string; _last: boolean; _hasBody: boolean; chunkedEncoding: boolean };
  const all = internal._header.split('\r\n').filter((l) => l !== '');
  // Date lines differ by the clock only; their presence is what counts.
  const lines = all
    .slice(1)
    .map((l) => (l.toLowerCase().startsWith('date:') && !l.includes('1994') ? 'date: <now>' : l))
    .sort();
  return { statusLine: all[0], lines, chunkedEncoding: internal.chunkedEncoding, last: internal._last, shouldKeepAlive: res.shouldKeepAlive, hasBody: internal._hasBody };
}

function both(shape: RequestShape, status: number, reason: string | undefined, headers: string[]): { checked: Outcome; node: Outcome } {
  const viaNode = response(shape);
  viaNode.writeHead(status, reason, [...headers]);
  const viaChecked = response(shape);
  expect(writeCheckedHead(viaChecked, status, reason, [...headers])).toBe(true);
  return { checked: outcome(viaChecked), node: outcome(viaNode) };
}

const DATE = ['Date', 'Sun, 06 Nov 1994 08:49:37 GMT'];

describe('writeCheckedHead: the same head as writeHead, without re-validating checked headers', () => {
  const cases: [string, RequestShape, number, string | undefined, string[]][] = [
    ['a Content-Length answer', {}, 200, 'OK', ['Server', 'nginx', ...DATE, 'Content-Type', 'application/json', 'Content-Length', '64', 'x-request-id', 'abc']],
    ['an answer without a length (chunked by node)', {}, 200, 'OK', ['Content-Type', 'text/event-stream', 'x-request-id', 'abc']],
    ['no Date from the upstream (node adds one)', {}, 200, 'OK', ['Content-Length', '2']],
    ['204 No Content', {}, 204, 'No Content', [...DATE, 'x-request-id', 'abc']],
    ['304 Not Modified with a length', {}, 304, 'Not Modified', [...DATE, 'ETag', '"x"', 'Content-Length', '120']],
    ['an answer to HEAD keeps its Content-Length', { method: 'HEAD' }, 200, 'OK', [...DATE, 'Content-Length', '16384']],
    ['HTTP/1.0 client without a length (closes)', { http10: true }, 200, 'OK', [...DATE, 'Content-Type', 'text/plain']],
    ['HTTP/1.0 client with a length', { http10: true }, 200, 'OK', [...DATE, 'Content-Length', '5']],
    ['draining: connection close', {}, 200, 'OK', [...DATE, 'Content-Length', '5', 'connection', 'close']],
    ['no reason phrase (node fills it in)', {}, 404, undefined, [...DATE, 'Content-Length', '0']],
    ['an unusual status without a known phrase', {}, 599, undefined, [...DATE, 'Content-Length', '0']],
    ['repeated headers keep their order', {}, 200, 'OK', ['Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Vary', 'Origin', 'Vary', 'Accept', 'Content-Length', '0']],
    ['a trailer-announcing chunked answer', {}, 200, 'OK', ['Trailer', 'grpc-status', 'Content-Type', 'application/grpc']],
    ['a final status to a client waiting for 100-continue', { method: 'POST', expectContinue: true }, 413, 'Payload Too Large', ['Content-Length', '0']],
    ['mixed-case names that steer node', {}, 200, 'OK', ['CONTENT-LENGTH', '3', 'date', DATE[1]]],
  ];
  for (const [name, shape, status, reason, headers] of cases) {
    it(name, () => {
      const { checked, node } = both(shape, status, reason, headers);
      expect(checked).toEqual(node);
    });
  }

  it('keeps repeated headers in their order', () => {
    const res = response({});
    writeCheckedHead(res, 200, 'OK', ['Set-Cookie', 'a=1', 'X', 'y', 'Set-Cookie', 'b=2', 'Content-Length', '0']);
    const head = (res as unknown as { _header: string })._header;
    expect(head.indexOf('Set-Cookie: a=1')).toBeLessThan(head.indexOf('Set-Cookie: b=2'));
  });

  it('leaves a response that already has headers set to writeHead', () => {
    const res = response({});
    res.setHeader('x-set-before', '1');
    expect(writeCheckedHead(res, 200, 'OK', ['Content-Length', '0'])).toBe(false);
    expect(res.headersSent).toBe(false);
    expect((res as unknown as { _header: string | null })._header).toBeFalsy();
  });

  it('leaves a response whose head is already stored to writeHead (which refuses it)', () => {
    const res = response({});
    res.writeHead(200, ['Content-Length', '0']);
    expect(writeCheckedHead(res, 200, 'OK', ['Content-Length', '0'])).toBe(false);
  });
});

describe('endWithBody: head and body in one write', () => {
  it('sends a stored head and the body as one write of the socket, and the connection goes on', async () => {
    const writes: string[] = [];
    const body = Buffer.from(Array.from({ length: 300 }, (_, i) => i & 0xff));
    const server = createServer((req, res) => {
      const socket = res.socket as Socket & { _write: (...a: unknown[]) => void; _writev: (...a: unknown[]) => void };
      if (!(socket as unknown as { spied?: boolean }).spied) {
        (socket as unknown as { spied?: boolean }).spied = true;
        const write = socket._write.bind(socket);
        const writev = socket._writev.bind(socket);
        socket._write = (...a: unknown[]) => {
          writes.push('write');
          write(...a);
        };
        socket._writev = (...a: unknown[]) => {
          writes.push('writev');
          writev(...a);
        };
      }
      writeCheckedHead(res, 200, 'OK', ['Content-Length', String(body.length), 'X-Path', req.url!]);
      endWithBody(res, body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as AddressInfo).port;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const get = (path: string) =>
      new Promise<{ body: Buffer; path: string | undefined; reused: boolean }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ body: Buffer.concat(chunks), path: res.headers['x-path'] as string | undefined, reused: req.reusedSocket }));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      const first = await get('/one');
      const second = await get('/two');
      expect(first.body.equals(body)).toBe(true);
      expect(second.body.equals(body)).toBe(true);
      expect([first.path, second.path]).toEqual(['/one', '/two']);
      expect(second.reused).toBe(true);
      expect(writes).toEqual(['write', 'write']);
    } finally {
      agent.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('leaves a response queued behind another on its connection to res.end', () => {
    const res = response({});
    writeCheckedHead(res, 200, 'OK', ['Content-Length', '3']);
    // No socket yet (a pipelined request waiting its turn): node buffers the whole response.
    endWithBody(res, Buffer.from('abc'));
    const internal = res as unknown as { outputData: { data: string }[]; finished: boolean };
    expect(internal.finished).toBe(true);
    expect(internal.outputData.map((o) => o.data).join('')).toMatch(/\r\n\r\nabc$/);
  });
});
