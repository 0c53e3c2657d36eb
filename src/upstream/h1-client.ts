import { connect, type Socket } from 'node:net';
import type { Dispatcher } from 'undici';
import { ParseError, ResponseParser, type ResponseSink } from './h1-parser.js';

/**
 * The gateway's own HTTP/1.1 client for plain `http://` upstreams, used for requests whose body
 * is absent or already in memory (GETs, and POSTs up to REQUEST_BUFFER_MAX_BYTES): the requests
 * nearly all traffic is made of. Streamed bodies, upgrades, TLS and HTTP/2 stay with undici.
 *
 * It speaks undici's dispatch-handler protocol (onConnect, onHeaders, onData, onComplete,
 * onError) and undici's error codes, so the Exchange, retries, outlier detection and metrics
 * see no difference, while a request costs a fraction of undici's work: no Request object with
 * per-header validation, no queue of request objects per client, no timer per request (a shared
 * 100 ms sweep checks deadlines), no WebAssembly parser calls per header. See
 * docs/performance.md, "The upstream client".
 */

/**
 * undici's handler, plus one optional step of this client: `onLastData` receives the last piece of
 * a Content-Length body instead of onData, with onComplete to follow in the same call stack.
 */
export interface H1Handler extends Dispatcher.DispatchHandler {
  onLastData?(chunk: Buffer): void;
}

export interface H1PoolOptions {
  connections: number;
  connectTimeoutMs: number;
  /** Idle keep-alive connections close after this (or the upstream's Keep-Alive timeout − 1 s). */
  keepAliveTimeoutMs: number;
  keepAliveMaxTimeoutMs: number;
}

/** An error with undici's code for the same condition (errors/from-undici.ts classifies by code). */
export class UpstreamClientError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'UpstreamClientError';
  }
}

/** Deadlines are checked on a shared tick; a timeout fires between its value and two ticks later. */
const TICK_MS = 100;
let coarseNow = Date.now();
let sweeper: NodeJS.Timeout | null = null;
const tracked = new Set<H1Connection>();

function track(conn: H1Connection): void {
  tracked.add(conn);
  if (sweeper === null) {
    coarseNow = Date.now();
    sweeper = setInterval(sweep, TICK_MS);
    sweeper.unref();
  }
}

function untrack(conn: H1Connection): void {
  tracked.delete(conn);
  if (tracked.size === 0 && sweeper !== null) {
    clearInterval(sweeper);
    sweeper = null;
  }
}

function sweep(): void {
  coarseNow = Date.now();
  for (const conn of tracked) if (conn.deadline !== 0 && conn.deadline <= coarseNow) conn.expired();
}

function deadlineIn(ms: number): number {
  return ms > 0 ? coarseNow + ms + TICK_MS : 0;
}

/** Methods whose requests carry a body by their semantics (undici's list): only they send `content-length: 0`. */
function expectsPayload(method: string): boolean {
  return method === 'POST' || method === 'PUT' || method === 'PATCH' || method === 'QUERY' || method === 'PROPFIND' || method === 'PROPPATCH';
}

/** CR, LF or NUL in a header value would split or end the head: refused like undici does. */
const UNSAFE_VALUE = /[\r\n\0]/;

const enum Phase {
  /** Waiting for a connection. */
  Queued = 0,
  /** Written; the response head is awaited. */
  Sent = 1,
  /** The head went to the handler; the body is under way. */
  Body = 2,
  /** Completed, failed or aborted: the handler hears nothing more. */
  Done = 3,
}

/** One request through the pool. */
class H1Request {
  phase = Phase.Queued;
  conn: H1Connection | null = null;
  readonly abort = (err?: Error): void => this.pool.abortRequest(this, err);
  readonly resume = (): void => this.conn?.resumeFor(this);

  constructor(
    readonly pool: H1Pool,
    readonly opts: Dispatcher.DispatchOptions,
    readonly handler: Dispatcher.DispatchHandler,
  ) {}

  fail(err: Error): void {
    if (this.phase === Phase.Done) return;
    this.phase = Phase.Done;
    this.handler.onError!(err);
  }
}

class H1Connection implements ResponseSink {
  readonly socket: Socket;
  readonly parser: ResponseParser;
  req: H1Request | null = null;
  /** Coarse ms when the current wait times out (0: none). */
  deadline = 0;
  #deadlineCode = '';
  #connected = false;
  #connectTimer: NodeJS.Timeout | null = null;
  /** Not to be reused after the current response (HEAD, Connection: close, a body left unread). */
  #reset = false;
  #keepAliveMs: number;
  #paused = false;
  /** The handler asked to pause while a chunk was being parsed: applied once the chunk is done, unless the answer ended in it. */
  #pauseWanted = false;
  #bodyTimeoutMs = 0;
  /** Set by the parser's onEnd: completion is handled once execute() returned. */
  #ended = false;
  #trailers: string[] | null = null;
  closed = false;

  constructor(
    readonly pool: H1Pool,
    host: string,
    port: number,
    connectTimeoutMs: number,
  ) {
    this.#keepAliveMs = pool.options.keepAliveTimeoutMs;
    this.parser = new ResponseParser(this);
    this.socket = connect({ host, port, noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000 });
    this.socket.on('connect', this.#onConnect);
    this.socket.on('data', this.#onData);
    this.socket.on('end', this.#onEnd);
    this.socket.on('error', this.#onError);
    this.socket.on('close', this.#onClose);
    if (connectTimeoutMs > 0) {
      this.#connectTimer = setTimeout(this.#onConnectTimeout, connectTimeoutMs);
      this.#connectTimer.unref();
    }
    track(this);
  }

  readonly #onConnectTimeout = (): void => {
    this.#connectTimer = null;
    this.destroy(new UpstreamClientError('UND_ERR_CONNECT_TIMEOUT', 'Connect Timeout Error'));
  };

  readonly #onConnect = (): void => {
    if (this.#connectTimer !== null) {
      clearTimeout(this.#connectTimer);
      this.#connectTimer = null;
    }
    this.#connected = true;
    const req = this.req;
    if (req !== null) this.send(req);
    else this.pool.released(this);
  };

  /** Writes `req` on this (connected, free) connection. */
  send(req: H1Request): void {
    this.req = req;
    req.conn = this;
    const opts = req.opts;
    const handler = req.handler;
    // undici's order: the handler gets its abort before anything is written, and may use it.
    handler.onConnect!(req.abort);
    if (req.phase === Phase.Done) return;
    const method = opts.method;
    const body = opts.body as Buffer | null | undefined;
    const bodyLength = body == null ? 0 : body.length;
    const withPayload = expectsPayload(method);
    let host = this.pool.hostHeader;
    let declared = -1;
    let lines = '';
    const headers = opts.headers as string[] | null | undefined;
    if (headers != null) {
      for (let i = 0; i < headers.length; i += 2) {
        const name = headers[i];
        const value = headers[i + 1];
        if (UNSAFE_VALUE.test(value)) {
          this.pool.failUnsent(req, new UpstreamClientError('UND_ERR_INVALID_ARG', `invalid ${name} header`));
          return;
        }
        // Content-Length is computed from the body, Host from the route (as undici does).
        if (name.length === 14 && name.toLowerCase() === 'content-length') {
          declared = Number(value);
          continue;
        }
        if (name.length === 4 && name.toLowerCase() === 'host') {
          host = value;
          continue;
        }
        lines += `${name}: ${value}\r\n`;
      }
    }
    if (bodyLength > 0 && declared > 0 && declared !== bodyLength && method !== 'GET' && method !== 'HEAD') {
      this.pool.failUnsent(req, new UpstreamClientError('UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', 'Request body length does not match content-length header'));
      return;
    }
    // HEAD answers may come with a body from misbehaving servers, and a body on a method that
    // expects none may confuse one: such connections are not reused (undici's rule).
    if (method === 'HEAD' || (bodyLength > 0 && !withPayload)) this.#reset = true;
    let head = `${method} ${opts.path} HTTP/1.1\r\nhost: ${host}\r\n${this.#reset ? 'connection: close' : 'connection: keep-alive'}\r\n${lines}`;
    if (bodyLength > 0) head += `content-length: ${bodyLength}\r\n\r\n`;
    else head += withPayload ? 'content-length: 0\r\n\r\n' : '\r\n';
    req.phase = Phase.Sent;
    this.#bodyTimeoutMs = opts.bodyTimeout ?? 0;
    this.parser.expect(method === 'HEAD');
    this.#ended = false;
    this.#deadlineCode = 'UND_ERR_HEADERS_TIMEOUT';
    this.deadline = deadlineIn(opts.headersTimeout ?? 0);
    const socket = this.socket;
    if (bodyLength === 0) {
      socket.write(head, 'latin1');
    } else if (bodyLength <= 16 * 1024) {
      // Head and a small body in one buffer: one write, no writev.
      const out = Buffer.allocUnsafe(head.length + bodyLength);
      const at = out.write(head, 0, 'latin1');
      body!.copy(out, at);
      socket.write(out);
    } else {
      socket.cork();
      socket.write(head, 'latin1');
      socket.write(body!);
      socket.uncork();
    }
  }

  // ---- parser sink ----

  onHead(status: number, reason: string, headers: string[], keepAlive: boolean, keepAliveTimeoutMs: number): void {
    const req = this.req!;
    if (!keepAlive) this.#reset = true;
    else if (keepAliveTimeoutMs >= 0) {
      // The upstream's own idle timeout, minus a second so the gateway closes first (undici's margin).
      const ms = Math.min(keepAliveTimeoutMs - 1000, this.pool.options.keepAliveMaxTimeoutMs);
      if (ms <= 0) this.#reset = true;
      else this.#keepAliveMs = ms;
    }
    req.phase = Phase.Body;
    this.#deadlineCode = 'UND_ERR_BODY_TIMEOUT';
    this.deadline = deadlineIn(this.#bodyTimeoutMs);
    if (req.handler.onHeaders!(status, headers as unknown as Buffer[], req.resume, reason) === false && (req.phase as Phase) !== Phase.Done) this.#pauseWanted = true;
  }

  onBody(chunk: Buffer): void {
    const req = this.req;
    if (req === null || req.phase !== Phase.Body) return;
    if (this.#bodyTimeoutMs > 0 && !this.#paused) this.deadline = coarseNow + this.#bodyTimeoutMs + TICK_MS;
    const handler = req.handler as H1Handler;
    // The parser is done once a Content-Length body's last piece is in: onComplete follows
    // before the next read, so a handler that can may take the piece and the end together.
    if (handler.onLastData !== undefined && !this.parser.busy) {
      handler.onLastData(chunk);
      return;
    }
    if (handler.onData!(chunk) === false && (req.phase as Phase) !== Phase.Done) this.#pauseWanted = true;
  }

  onEnd(trailers: string[] | null): void {
    this.#ended = true;
    this.#trailers = trailers;
  }

  #pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    // A client reading slowly is not an idle upstream: no body timeout while paused.
    this.deadline = 0;
    this.socket.pause();
  }

  resumeFor(req: H1Request): void {
    if (this.req !== req) return;
    this.#pauseWanted = false;
    if (!this.#paused) return;
    this.#paused = false;
    this.deadline = deadlineIn(this.#bodyTimeoutMs);
    this.socket.resume();
  }

  // ---- socket events ----

  readonly #onData = (chunk: Buffer): void => {
    const req = this.req;
    if (req === null || req.phase === Phase.Done || req.phase === Phase.Queued) {
      // An idle connection that talks (or one whose request was aborted) is not reused.
      this.destroy(null);
      return;
    }
    let used: number;
    try {
      used = this.parser.execute(chunk);
    } catch (err) {
      this.destroy(err as ParseError);
      return;
    }
    if (this.closed) return;
    if (!this.#ended) {
      // A whole answer in one chunk (the usual small response) never pauses the socket: the
      // client's backpressure then concerns node's buffer for that answer only.
      if (this.#pauseWanted) {
        this.#pauseWanted = false;
        this.#pause();
      }
      return;
    }
    if (used < chunk.length) this.#reset = true; // bytes after the response: the connection is out of step
    this.#complete(req);
  };

  #complete(req: H1Request): void {
    this.#ended = false;
    this.#pauseWanted = false;
    const trailers = this.#trailers;
    this.#trailers = null;
    this.deadline = 0;
    this.req = null;
    req.conn = null;
    const done = req.phase !== Phase.Done;
    req.phase = Phase.Done;
    if (this.closed) return;
    if (this.#paused) {
      // The response is whole: a pause for the client's sake no longer concerns this socket.
      this.#paused = false;
      this.socket.resume();
    }
    // A body still being written means the upstream answered without reading it all.
    if (this.#reset || this.socket.writableLength > 0) this.destroy(null);
    else this.pool.released(this);
    if (done) req.handler.onComplete!(trailers);
  }

  readonly #onEnd = (): void => {
    const req = this.req;
    if (req !== null && req.phase !== Phase.Done && req.phase !== Phase.Queued) {
      this.parser.closed();
      if (this.#ended) {
        this.#reset = true;
        this.#complete(req);
        return;
      }
    }
    this.destroy(new UpstreamClientError('UND_ERR_SOCKET', 'other side closed'));
  };

  readonly #onError = (err: Error): void => {
    this.destroy(err);
  };

  readonly #onClose = (): void => {
    this.destroy(new UpstreamClientError('UND_ERR_SOCKET', 'other side closed'));
  };

  /** The current wait passed its deadline (called by the sweep). */
  expired(): void {
    this.deadline = 0;
    if (this.req === null) {
      // Idle past its keep-alive time.
      this.destroy(null);
      return;
    }
    this.destroy(new UpstreamClientError(this.#deadlineCode, this.#deadlineCode === 'UND_ERR_HEADERS_TIMEOUT' ? 'Headers Timeout Error' : 'Body Timeout Error'));
  }

  /** Idle in the pool from now: closes after the keep-alive time. */
  idle(): void {
    this.deadline = coarseNow + this.#keepAliveMs;
  }

  /** Connected and fit for another request (an aborted request that sent nothing leaves it so). */
  get reusable(): boolean {
    return !this.#reset && !this.closed && this.#connected;
  }

  /** Closes the connection; the request on it (if any) fails with `err` (null: "other side closed"). */
  destroy(err: Error | null): void {
    if (this.closed) return;
    this.closed = true;
    if (this.#connectTimer !== null) {
      clearTimeout(this.#connectTimer);
      this.#connectTimer = null;
    }
    this.deadline = 0;
    untrack(this);
    this.socket.destroy();
    const req = this.req;
    this.req = null;
    this.pool.removed(this);
    if (req !== null) {
      req.conn = null;
      req.fail(err ?? new UpstreamClientError('UND_ERR_SOCKET', 'other side closed'));
    }
  }
}

/**
 * The connections to one origin: at most `connections` at once, idle ones reused last-in
 * first-out (the warmest socket first), requests beyond that waiting in arrival order.
 */
export class H1Pool {
  readonly hostHeader: string;
  readonly #host: string;
  readonly #port: number;
  readonly options: H1PoolOptions;
  readonly #idle: H1Connection[] = [];
  readonly #all = new Set<H1Connection>();
  readonly #queue: H1Request[] = [];
  #closed = false;
  #onDrained: (() => void) | null = null;

  constructor(origin: string, options: H1PoolOptions) {
    const url = new URL(origin);
    if (url.protocol !== 'http:') throw new Error(`H1Pool takes http:// origins only, not ${url.protocol}`);
    this.options = options;
    this.#host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    this.#port = url.port === '' ? 80 : Number(url.port);
    this.hostHeader = url.port === '' ? url.hostname : `${url.hostname}:${url.port}`;
  }

  /** Connections open now (idle or busy). */
  get size(): number {
    return this.#all.size;
  }

  dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const req = new H1Request(this, opts, handler);
    if (this.#closed) {
      req.fail(new UpstreamClientError('UND_ERR_CLOSED', 'The client is closed'));
      return false;
    }
    const conn = this.#idle.pop();
    if (conn !== undefined) {
      conn.deadline = 0;
      conn.send(req);
    } else if (this.#all.size < this.options.connections) {
      this.#open(req);
    } else {
      this.#queue.push(req);
    }
    return true;
  }

  #open(req: H1Request): void {
    const conn = new H1Connection(this, this.#host, this.#port, this.options.connectTimeoutMs);
    this.#all.add(conn);
    conn.req = req;
    req.conn = conn;
  }

  /** A connection finished its request and may take another. */
  released(conn: H1Connection): void {
    if (this.#closed) {
      conn.destroy(null);
      return;
    }
    const next = this.#queue.shift();
    if (next !== undefined) {
      conn.send(next);
      return;
    }
    conn.idle();
    this.#idle.push(conn);
  }

  /** A connection closed: forget it, and open another for a waiting request if there is room. */
  removed(conn: H1Connection): void {
    this.#all.delete(conn);
    const i = this.#idle.indexOf(conn);
    if (i >= 0) this.#idle.splice(i, 1);
    while (this.#queue.length > 0 && this.#all.size < this.options.connections && !this.#closed) this.#open(this.#queue.shift()!);
    if (this.#all.size === 0 && this.#onDrained !== null) this.#onDrained();
  }

  /** The handler gave up on its request (client gone, bad upstream head): stop it where it is. */
  abortRequest(req: H1Request, err: Error | undefined): void {
    if (req.phase === Phase.Done) return;
    const conn = req.conn;
    if (req.phase === Phase.Queued) {
      const i = this.#queue.indexOf(req);
      if (i >= 0) this.#queue.splice(i, 1);
      if (conn !== null && conn.req === req) {
        // Connecting for it, or handed to it in onConnect before anything was written.
        conn.req = null;
        req.conn = null;
        if (conn.reusable) this.released(conn);
      }
      req.fail(err ?? new UpstreamClientError('UND_ERR_ABORTED', 'Request aborted'));
      return;
    }
    req.fail(err ?? new UpstreamClientError('UND_ERR_ABORTED', 'Request aborted'));
    // Written: the connection is mid-exchange and cannot carry another request.
    conn?.destroy(null);
  }

  /** A request refused before any byte was written: the connection stays usable. */
  failUnsent(req: H1Request, err: Error): void {
    const conn = req.conn;
    req.conn = null;
    if (conn !== null && conn.req === req) {
      conn.req = null;
      this.released(conn);
    }
    req.fail(err);
  }

  /** No new requests; resolves once in-flight requests finished and every connection closed. */
  close(): Promise<void> {
    this.#closed = true;
    for (const conn of this.#idle.splice(0)) conn.destroy(null);
    const queued = this.#queue.splice(0);
    for (const req of queued) req.fail(new UpstreamClientError('UND_ERR_CLOSED', 'The client is closed'));
    if (this.#all.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#onDrained = resolve;
    });
  }

  /** Closes everything now; in-flight requests fail. */
  destroy(): Promise<void> {
    this.#closed = true;
    const queued = this.#queue.splice(0);
    for (const req of queued) req.fail(new UpstreamClientError('UND_ERR_DESTROYED', 'The client is destroyed'));
    for (const conn of [...this.#all]) conn.destroy(new UpstreamClientError('UND_ERR_DESTROYED', 'The client is destroyed'));
    return Promise.resolve();
  }
}

