import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type { Dispatcher } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { H1Pool, type H1PoolOptions } from '../../../src/upstream/h1-client.js';
import { startBlackhole, type Blackhole } from '../resilience/support.js';

/** What a dispatch handler saw, in undici's callback protocol, as the Exchange receives it. */
interface Outcome {
  connected: boolean;
  status: number;
  reason: string;
  headers: string[];
  body: Buffer;
  trailers: unknown;
  error: (Error & { code?: string }) | null;
}

interface Call {
  done: Promise<Outcome>;
  handler: Dispatcher.DispatchHandler;
  abort: ((err?: Error) => void) | null;
  resume: (() => void) | null;
}

function call(hooks: { onData?: (chunk: Buffer, c: Call) => boolean; onHeaders?: (c: Call) => boolean; onConnect?: (c: Call) => void } = {}): Call {
  const out: Outcome = { connected: false, status: 0, reason: '', headers: [], body: Buffer.alloc(0), trailers: null, error: null };
  const chunks: Buffer[] = [];
  let settle!: (o: Outcome) => void;
  const c: Call = { done: new Promise((r) => (settle = r)), handler: null as never, abort: null, resume: null };
  let settled = false;
  const finish = () => {
    if (settled) throw new Error('handler called after the end');
    settled = true;
    out.body = Buffer.concat(chunks);
    settle(out);
  };
  c.handler = {
    onConnect(abort) {
      out.connected = true;
      c.abort = abort;
      hooks.onConnect?.(c);
    },
    onHeaders(status, headers, resume, reason) {
      out.status = status;
      out.reason = reason;
      out.headers = headers as unknown as string[];
      c.resume = resume;
      return hooks.onHeaders?.(c) ?? true;
    },
    onData(chunk) {
      chunks.push(Buffer.from(chunk));
      return hooks.onData?.(chunk, c) ?? true;
    },
    onComplete(trailers) {
      out.trailers = trailers;
      finish();
    },
    onError(err) {
      out.error = err;
      finish();
    },
  } as Dispatcher.DispatchHandler;
  return c;
}

const OPTIONS: H1PoolOptions = { connections: 4, connectTimeoutMs: 2000, keepAliveTimeoutMs: 4000, keepAliveMaxTimeoutMs: 60_000 };

function get(pool: H1Pool, path: string, extra: Partial<Dispatcher.DispatchOptions> = {}, hooks?: Parameters<typeof call>[0]): Promise<Outcome> {
  const c = call(hooks);
  pool.dispatch({ method: 'GET', path, headers: ['x-test', '1'], headersTimeout: 10_000, bodyTimeout: 10_000, ...extra } as Dispatcher.DispatchOptions, c.handler);
  return c.done;
}

function listen<T extends HttpServer | NetServer>(server: T): Promise<T & { port: number }> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(Object.assign(server, { port: (server.address() as AddressInfo).port }))));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('H1Pool, the gateway’s own HTTP/1.1 upstream client, against real servers', () => {
  let http: HttpServer & { port: number };
  const sockets = new Set<Socket>();
  let peak = 0;
  let open = 0;
  let seen: { method: string; url: string; headers: string[]; body: Buffer }[] = [];
  let pool: H1Pool;
  let hole: Blackhole;

  beforeAll(async () => {
    hole = await startBlackhole();
    http = await listen(
      createHttpServer({ keepAliveTimeout: 30_000 }, (req: IncomingMessage, res: ServerResponse) => {
        const parts: Buffer[] = [];
        req.on('data', (d: Buffer) => parts.push(d));
        req.on('end', () => {
          seen.push({ method: req.method!, url: req.url!, headers: req.rawHeaders, body: Buffer.concat(parts) });
          open++;
          peak = Math.max(peak, open);
          const url = new URL(req.url!, 'http://x');
          const delay = Number(url.searchParams.get('delay') ?? 0);
          setTimeout(() => {
            open--;
            switch (url.pathname) {
              case '/chunked':
                res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-sum' });
                res.write('a'.repeat(10));
                res.write('b'.repeat(10));
                res.addTrailers({ 'x-sum': '20' });
                res.end();
                return;
              case '/big':
                res.end(Buffer.alloc(4 * 1024 * 1024, 0x61));
                return;
              case '/close':
                res.setHeader('connection', 'close');
                res.end('bye');
                return;
              case '/stall-body':
                res.writeHead(200, { 'content-length': '10' });
                res.write('12345');
                return;
              case '/never':
                return;
              case '/echo':
                res.end(Buffer.concat(parts));
                return;
              default:
                res.setHeader('content-type', 'text/plain');
                res.end(`ok ${req.method} ${req.url}`);
            }
          }, delay);
        });
      }),
    );
    http.on('connection', (s: Socket) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
  });
  afterEach(async () => {
    await pool?.destroy();
    seen = [];
    peak = 0;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => http.close(r));
    await hole.close();
  });

  it('sends the request line, host, headers and a buffered body as undici does, and reads the answer', async () => {
    pool = new H1Pool(`http://127.0.0.1:${http.port}`, OPTIONS);
    const got = await get(pool, '/a?b=1');
    expect(got).toMatchObject({ connected: true, status: 200, reason: 'OK', error: null });
    expect(got.body.toString()).toBe('ok GET /a?b=1');
    expect(got.headers).toContain('text/plain');
    expect(seen[0].headers).toEqual(['host', `127.0.0.1:${http.port}`, 'connection', 'keep-alive', 'x-test', '1']);

    const body = Buffer.from('{"prompt":"hi"}');
    const c = call();
    pool.dispatch({ method: 'POST', path: '/echo', headers: ['content-type', 'application/json', 'content-length', String(body.length)], body }, c.handler);
    const posted = await c.done;
    expect(posted.body.toString()).toBe('{"prompt":"hi"}');
    expect(seen[1].headers).toEqual(['host', `127.0.0.1:${http.port}`, 'connection', 'keep-alive', 'content-type', 'application/json', 'content-length', String(body.length)]);

    // A POST without a body says so with content-length: 0 (a GET does not).
    const empty = call();
    pool.dispatch({ method: 'POST', path: '/echo', headers: [], body: null }, empty.handler);
    expect((await empty.done).status).toBe(200);
    expect(seen[2].headers).toContain('content-length');
  });

  it('keeps connections alive and reuses them; never more at once than `connections`, the rest wait in order', async () => {
    pool = new H1Pool(`http://127.0.0.1:${http.port}`, { ...OPTIONS, connections: 2 });
    for (let i = 0; i < 5; i++) expect((await get(pool, `/seq${i}`)).status).toBe(200);
    expect(pool.size).toBe(1);
    const all = await Promise.all(Array.from({ length: 8 }, (_, i) => get(pool, `/par${i}?delay=30`)));
    expect(all.every((o) => o.status === 200 && o.error === null)).toBe(true);
    expect(peak).toBe(2);
    expect(pool.size).toBe(2);
  });

  it('decodes chunked answers and hands their trailers over', async () => {
    pool = new H1Pool(`http://127.0.0.1:${http.port}`, OPTIONS);
    const got = await get(pool, '/chunked');
    expect(got.body.toString()).toBe('a'.repeat(10) + 'b'.repeat(10));
    expect(got.trailers).toEqual(['x-sum', '20']);
  });

  it('does not reuse a connection the upstream closes, and the next request opens a new one', async () => {
    pool = new H1Pool(`http://127.0.0.1:${http.port}`, OPTIONS);
    expect((await get(pool, '/close')).body.toString()).toBe('bye');
    await sleep(50);
    expect(pool.size).toBe(0);
    expect((await get(pool, '/after')).status).toBe(200);
  });

  it('pauses the socket while the handler cannot take more, and resumes on request: the whole body arrives', async () => {
    pool = new H1Pool(`http://127.0.0.1:${http.port}`, OPTIONS);
    let pauses = 0;
    const got = await get(pool, '/big', {}, {
      onData: (_chunk, c) => {
        pauses++;
        setTimeout(() => c.resume!(), 1);
        return false;
      },
    });
    expect(got.error).toBeNull();
    expect(got.body.length).toBe(4 * 1024 * 1024);
    expect(pauses).toBeGreaterThan(1);
  });

  it('hands a Content-Length body’s last piece to onLastData, right before onComplete; other framings never use it', async () => {
    pool = new H1Pool(`http://127.0.0.1:${http.port}`, OPTIONS);
    const withLast = async (path: string) => {
      const steps: string[] = [];
      const c = call();
      const chunks: Buffer[] = [];
      const handler = c.handler as Dispatcher.DispatchHandler & { onLastData(chunk: Buffer): void };
      const { onData, onComplete } = handler;
      handler.onData = (chunk) => {
        steps.push('data');
        chunks.push(Buffer.from(chunk));
        return onData!.call(handler, chunk);
      };
      handler.onLastData = (chunk) => {
        steps.push('last');
        chunks.push(Buffer.from(chunk));
      };
      handler.onComplete = (trailers) => {
        steps.push('complete');
        onComplete!.call(handler, trailers);
      };
      pool.dispatch({ method: 'GET', path, headers: [] } as Dispatcher.DispatchOptions, handler);
      const out = await c.done;
      return { steps, body: Buffer.concat(chunks), out };
    };
    // A small answer arrives in one read: its whole body is the last piece.
    const small = await withLast('/small');
    expect(small.steps).toEqual(['last', 'complete']);
    expect(small.body.toString()).toBe('ok GET /small');
    // A 4 MiB body comes in many reads: every piece but the final one goes to onData.
    const big = await withLast('/big');
    expect(big.steps.at(-2)).toBe('last');
    expect(big.steps.at(-1)).toBe('complete');
    expect(big.steps.filter((s) => s === 'last')).toHaveLength(1);
    expect(big.steps.filter((s) => s === 'data').length).toBeGreaterThan(0);
    expect(big.body.equals(Buffer.alloc(4 * 1024 * 1024, 0x61))).toBe(true);
    // A chunked body only knows its end after its last piece.
    const chunked = await withLast('/chunked');
    expect(chunked.steps).not.toContain('last');
    expect(chunked.body.toString()).toBe('a'.repeat(10) + 'b'.repeat(10));
  });

  it('fails a refused connection before onConnect (a connect failure the gateway retries elsewhere)', async () => {
    const probe = await listen(createNetServer());
    const port = probe.port;
    await new Promise((r) => probe.close(r));
    pool = new H1Pool(`http://127.0.0.1:${port}`, OPTIONS);
    const got = await get(pool, '/');
    expect(got.connected).toBe(false);
    expect(got.error?.code).toBe('ECONNREFUSED');
  });

  it('times out a connect, a response head and an idle body with undici’s codes', async () => {
    pool = new H1Pool(`http://127.0.0.1:${hole.port}`, { ...OPTIONS, connectTimeoutMs: 150 });
    const connect = await get(pool, '/');
    expect(connect).toMatchObject({ connected: false });
    expect(connect.error?.code).toBe('UND_ERR_CONNECT_TIMEOUT');

    const live = new H1Pool(`http://127.0.0.1:${http.port}`, OPTIONS);
    try {
      const t0 = Date.now();
      const head = await get(live, '/never', { headersTimeout: 200 });
      expect(head.error?.code).toBe('UND_ERR_HEADERS_TIMEOUT');
      expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
      const body = await get(live, '/stall-body', { bodyTimeout: 200 });
      expect(body.status).toBe(200);
      expect(body.body.toString()).toBe('12345');
      expect(body.error?.code).toBe('UND_ERR_BODY_TIMEOUT');
    } finally {
      await live.destroy();
    }
  });

  it('does not time out a body while the handler holds it paused', async () => {
    pool = new H1Pool(`http://127.0.0.1:${http.port}`, OPTIONS);
    const got = await get(pool, '/chunked', { bodyTimeout: 100 }, {
      onHeaders: (c) => {
        setTimeout(() => c.resume!(), 500);
        return false;
      },
    });
    expect(got.error).toBeNull();
    expect(got.body.length).toBe(20);
  });

  it('an abort mid-response closes that connection; an abort before anything was written keeps it', async () => {
    pool = new H1Pool(`http://127.0.0.1:${http.port}`, { ...OPTIONS, connections: 1 });
    expect((await get(pool, '/warm')).status).toBe(200);
    const mid = await get(pool, '/big', {}, { onData: (_chunk, c) => (c.abort!(new Error('client went away')), true) });
    expect(mid.error?.message).toBe('client went away');
    await sleep(20);
    expect(pool.size).toBe(0);

    expect((await get(pool, '/warm2')).status).toBe(200);
    const before = seen.length;
    const early = await get(pool, '/not-sent', {}, { onConnect: (c) => c.abort!() });
    expect(early.error?.code).toBe('UND_ERR_ABORTED');
    expect(pool.size).toBe(1);
    expect((await get(pool, '/again')).status).toBe(200);
    expect(seen.slice(before).map((s) => s.url)).toEqual(['/again']);
  });

  it('refuses a header value that would split the request, and a body that contradicts its Content-Length', async () => {
    pool = new H1Pool(`http://127.0.0.1:${http.port}`, OPTIONS);
    const split = await get(pool, '/', { headers: ['x-a', 'v\r\nx-injected: 1'] });
    expect(split.error?.code).toBe('UND_ERR_INVALID_ARG');
    const c = call();
    pool.dispatch({ method: 'POST', path: '/echo', headers: ['content-length', '99'], body: Buffer.from('short') }, c.handler);
    expect((await c.done).error?.code).toBe('UND_ERR_REQ_CONTENT_LENGTH_MISMATCH');
    expect(seen).toHaveLength(0);
    expect((await get(pool, '/fine')).status).toBe(200);
  });

  it('close() lets requests in flight finish, then refuses new ones', async () => {
    pool = new H1Pool(`http://127.0.0.1:${http.port}`, OPTIONS);
    const inFlight = get(pool, '/slow?delay=100');
    await sleep(20);
    const closed = pool.close();
    const refused = await get(pool, '/late');
    expect(refused.error?.code).toBe('UND_ERR_CLOSED');
    expect((await inFlight).status).toBe(200);
    await closed;
    expect(pool.size).toBe(0);
  });
});

describe('H1Pool against upstreams that lie', () => {
  let raw: NetServer & { port: number };
  let answer: (socket: Socket) => void = () => {};

  beforeAll(async () => {
    raw = await listen(
      createNetServer((socket) => {
        socket.on('error', () => {});
        socket.once('data', () => answer(socket));
      }),
    );
  });
  afterAll(async () => {
    await new Promise((r) => raw.close(r));
  });

  async function against(bytes: string, end = true): Promise<Outcome> {
    answer = (socket) => (end ? socket.end(bytes, 'latin1') : socket.write(bytes, 'latin1'));
    const pool = new H1Pool(`http://127.0.0.1:${raw.port}`, OPTIONS);
    try {
      return await get(pool, '/');
    } finally {
      await pool.destroy();
    }
  }

  it('reports smuggling-shaped and malformed answers as parse errors (a 502 in the gateway), never as a response', async () => {
    const bad = [
      'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nokk',
      'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'HTTP/1.1 200 OK\r\nX-Evil: a\nSet-Cookie: b\r\nContent-Length: 0\r\n\r\n',
      'HTTP/1.1 200 OK\nContent-Length: 0\n\n',
      'garbage\r\n\r\n',
    ];
    for (const bytes of bad) {
      const got = await against(bytes);
      expect(got.status, JSON.stringify(bytes)).toBe(0);
      expect(got.error?.code, JSON.stringify(bytes)).toMatch(/^HPE_/);
    }
  });

  it('cuts a body short when the upstream closes early, after the head went out', async () => {
    const got = await against('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345');
    expect(got.status).toBe(200);
    expect(got.body.toString()).toBe('12345');
    expect(got.error?.code).toBe('UND_ERR_SOCKET');
  });

  it('reads a close-delimited body to the end of the connection', async () => {
    const got = await against('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it');
    expect(got.error).toBeNull();
    expect(got.body.toString()).toBe('all of it');
  });

  it('never answers a request with bytes an upstream sent past the previous answer (the connection is dropped, not reused)', async () => {
    // Every request on a connection gets the same two answers glued together: the second is
    // unsolicited and must never reach the next request.
    const server = await listen(
      createNetServer((socket) => {
        socket.on('error', () => {});
        socket.on('data', () => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil', 'latin1'));
      }),
    );
    const pool = new H1Pool(`http://127.0.0.1:${server.port}`, { ...OPTIONS, connections: 1 });
    try {
      for (let i = 0; i < 3; i++) {
        const got = await get(pool, `/${i}`);
        expect(got.error).toBeNull();
        expect(got.body.toString()).toBe('ok');
      }
    } finally {
      await pool.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  it('skips interim 1xx answers, sends HEAD with connection: close and reads no body for it', async () => {
    const heads: string[] = [];
    const server = await listen(
      createNetServer((socket) => {
        socket.on('error', () => {});
        socket.on('data', (d: Buffer) => {
          heads.push(d.toString('latin1'));
          if (d.toString('latin1').startsWith('HEAD')) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n', 'latin1');
          else socket.write('HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal', 'latin1');
        });
      }),
    );
    const pool = new H1Pool(`http://127.0.0.1:${server.port}`, OPTIONS);
    try {
      const got = await get(pool, '/');
      expect(got).toMatchObject({ status: 200, error: null });
      expect(got.body.toString()).toBe('final');
      const head = await get(pool, '/', { method: 'HEAD' });
      expect(head).toMatchObject({ status: 200, error: null });
      expect(head.body.length).toBe(0);
      expect(heads[1]).toMatch(/^HEAD \/ HTTP\/1\.1\r\nhost: [^\r]+\r\nconnection: close\r\n/);
      // The HEAD went on the GET's kept connection, which is not kept after it.
      await sleep(20);
      expect(pool.size).toBe(0);
      expect((await get(pool, '/')).body.toString()).toBe('final');
    } finally {
      await pool.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  it("honours the upstream's Keep-Alive timeout, minus a second, for idle connections", async () => {
    let connections = 0;
    const server = await listen(
      createNetServer((socket) => {
        connections++;
        socket.on('error', () => {});
        socket.on('data', () => socket.write('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: 2\r\n\r\nok', 'latin1'));
      }),
    );
    const pool = new H1Pool(`http://127.0.0.1:${server.port}`, OPTIONS);
    try {
      // timeout=1 leaves no safe idle time: each connection closes after its answer.
      expect((await get(pool, '/a')).status).toBe(200);
      await sleep(20);
      expect(pool.size).toBe(0);
      expect((await get(pool, '/b')).status).toBe(200);
      expect(connections).toBe(2);
    } finally {
      await pool.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  it('fails a request whose connection closes before any answer with UND_ERR_SOCKET', async () => {
    const got = await against('');
    expect(got.connected).toBe(true);
    expect(got.error?.code).toBe('UND_ERR_SOCKET');
  });
});
