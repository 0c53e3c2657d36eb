import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { AccessRequest } from '../auth/access.js';
import type { CachedToken } from '../auth/token-cache.js';
import { GatewayError, isGatewayError } from '../errors/gateway-error.js';
import { fromUndici, upstreamFailureKind, type UpstreamFailureKind } from '../errors/from-undici.js';
import { toHttp } from '../errors/to-http.js';
import { grpcErrorHeaders, isGrpcContentType } from '../errors/to-grpc.js';
import { NOOP_SPAN, type RequestSpan } from '../obs/tracing.js';
import { BodyAbortedError } from '../lib/body-events.js';
import { latin1 } from '../lib/latin1.js';
import { HOP_BY_HOP, connectionListedHeaders, dropListed, isSafeRequestId } from '../lib/headers.js';
import type { RouteState } from '../upstream/route-state.js';
import type { TrafficHost, TrafficTicket } from '../traffic/traffic-control.js';
import { AddressKind } from './addressing.js';
import { BodyLimiter } from './body-limiter.js';
import { OnReset, type EndpointRuntime, type HeldRequest } from './endpoint-runtime.js';
import type { ProxyContext } from './proxy-context.js';
import { ReplayBody } from './replay-body.js';
import { endWithBody, writeCheckedHead } from './response-writes.js';
import { RequestHead, VIA_ENTRY, forwardedFor, gatewayHops, keepPreflightHeaders, readRequestHead, resolveTarget, skipBodilessDump } from './request-head.js';
import { CLOSE_GOING_AWAY, CLOSE_POLICY_VIOLATION, Tunnel, type OpenTunnel, type TunnelOwner } from './tunnel.js';
import { UpgradeRequest, extractQueryToken, websocketAccept } from './upgrade.js';
import { readWholeBody } from './whole-body.js';

/**
 * A request that already passed this many modelgate instances is refused with 508: a route
 * leads back to a gateway. Real chains (edge gateway → internal gateway) are far shorter.
 */
export const MAX_GATEWAY_HOPS = 5;

/** What an upgrade's forward list must not carry: it has no body, and undici adds its own Upgrade. */
const UPGRADE_DROPPED: ReadonlySet<string> = new Set(['content-length', 'te']);

/** Placeholder until the head is read (a refused request may fail before that). */
const EMPTY_HEAD = new RequestHead();

const kExchange = Symbol('modelgate.exchange');
type TaggedResponse = ServerResponse & { [kExchange]?: Exchange };

/**
 * Marks a client connection the gateway decided to close (framing or protocol refusal). node:http
 * may already have parsed requests pipelined behind the refused one; they are never proxied.
 */
const kRefusedConnection = Symbol('modelgate.refusedConnection');
type TaggedSocket = IncomingMessage['socket'] & { [kRefusedConnection]?: boolean };

/** Shared listeners: one function for every request instead of a closure per request. */
function onResponseClose(this: TaggedResponse): void {
  this[kExchange]?.clientClosed();
}
function onResponseDrain(this: TaggedResponse): void {
  this[kExchange]?.resumeUpstream();
}

/** An upgrade's socket has no node:http server state; these stand in for it until the tunnel. */
type UpgradeSocket = Socket & { _httpMessage?: TaggedResponse | null };
function onUpgradeSocketDrain(this: UpgradeSocket): void {
  this._httpMessage?.emit('drain');
}
function onUpgradeEarlyData(this: UpgradeSocket): void {
  this._httpMessage?.[kExchange]?.clientSentEarly();
}
function onUpgradeSocketEnd(this: UpgradeSocket): void {
  this.destroy();
}
function onUpgradeSocketError(this: UpgradeSocket): void {
  this.destroy();
}
function onUpgradeResponseFinish(this: TaggedResponse): void {
  // An upgrade answered with an ordinary response never continues as HTTP: its connection closes.
  (this.socket as Socket | null)?.destroySoon();
}

/** X-Forwarded-For for a connection whose peer is not a trusted proxy (plain HTTP/1.x only). */
const kUntrustedPeer = Symbol('modelgate.untrustedPeer');
type PeerSocket = IncomingMessage['socket'] & { encrypted?: boolean; [kUntrustedPeer]?: string };

const CLIENT_GONE = 499;
const CONTENT_LENGTH: Set<string> = new Set(['content-length']);

/**
 * 1 at the lengths of the response header names onHeaders acts on: the hop-by-hop set,
 * x-request-id, and content-type and content-length (traffic control reads them). Any other name is passed through without lower-casing it.
 */
const ACTED_ON_LENGTH: Uint8Array = (() => {
  const names = [...HOP_BY_HOP, 'x-request-id', 'content-type', 'content-length'];
  const table = new Uint8Array(Math.max(...names.map((n) => n.length)) + 1);
  for (const n of names) table[n.length] = 1;
  return table;
})();

/**
 * A response header as a string: the gateway's own client (upstream/h1-client.ts) gives strings,
 * undici Buffers (read as latin1: a byte per character, as node:http writes it back).
 */
function headerText(buf: Buffer | string): string {
  return typeof buf === 'string' ? buf : latin1(buf);
}

/** Methods `retry.on_reset: idempotent` replays (RFC 9110 §9.2.2; TRACE is never proxied). */
const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);
/** First and longest pause between tries of routes that failed, while a replayed request waits for one to come back. */
const WAIT_STEP_MIN_MS = 50;
const WAIT_STEP_MAX_MS = 1000;

/** An upstream response with more header lines than UPSTREAM_MAX_HEADER_COUNT (a protocol failure: 502). */
class UpstreamHeaderCountError extends Error {
  readonly code = 'UND_ERR_HEADERS_OVERFLOW';
  constructor(count: number) {
    super(`upstream sent ${count} response header lines`);
    this.name = 'UpstreamHeaderCountError';
  }
}

/**
 * One proxied request, from the first header byte to the last response byte. It is also the
 * undici dispatch handler (legacy callback API, which undici calls without an adapter), so a
 * request costs one object plus undici's own.
 */
export class Exchange implements Dispatcher.DispatchHandler, HeldRequest, TunnelOwner, OpenTunnel, TrafficHost {
  readonly #ctx: ProxyContext;
  readonly #req: IncomingMessage;
  readonly #res: TaggedResponse;
  readonly #startMs: number;
  requestId = '';
  #method: string;
  #path = '/';
  #head: RequestHead = EMPTY_HEAD;
  #runtime: EndpointRuntime | null = null;
  #route: RouteState | null = null;
  #routeId: string | undefined;
  #tried: RouteState | null = null;
  #tried2: RouteState | null = null;
  /** The failure that made this request retry (reported if no route is left to retry on). */
  #retryCause: Error | null = null;
  #retryKind: UpstreamFailureKind = 'connect';
  #attempt = 0;
  /** This request may be replayed after a reset (endpoint `retry.on_reset` and method allow it). */
  #replay = false;
  /** Kept copy of the request body while replay is possible (null: no body, or no replay). */
  #replayBody: ReplayBody | null = null;
  #replays = 0;
  /** Unix ms after which a replayed request stops waiting for a route to come back (0: not waiting yet). */
  #waitUntil = 0;
  #waitStepMs = 0;
  #connected = false;
  #abort: ((err?: Error) => void) | null = null;
  #resume: (() => void) | null = null;
  #drainListening = false;
  #body: Readable | Buffer | null = null;
  /** The body's last piece, held from onLastData to onComplete (same call stack). */
  #lastChunk: Buffer | null = null;
  /** The verified token (priority, rate limits); undefined for public endpoints. */
  #token: CachedToken | undefined;
  /** Traffic control state (src/traffic/); null for requests it has nothing to do with. */
  #ticket: TrafficTicket | null = null;
  #holdTimer: NodeJS.Timeout | null = null;
  #counted = false;
  #finished = false;
  #clientGone = false;
  #bytes = 0;
  #ttfbMs = -1;
  #status = 0;
  /** grpc-status/grpc-message of an HTTP/2 answer's headers (a trailers-only gRPC answer). */
  #grpcStatus: Record<string, string> | null = null;
  #errCode: string | undefined;
  #span: RequestSpan = NOOP_SPAN;
  #closeReason: string | undefined;
  /** Close the client connection after the error response (ambiguous framing, bad Host, ...). */
  #closeConnection = false;
  /** Set for a WebSocket upgrade: the same life cycle, ending in a tunnel instead of a response body. */
  readonly #upgrade: UpgradeRequest | null;
  #queryToken: string | undefined;
  /** Kept for an upgrade: its tunnel is re-checked against the credentials it was admitted with. */
  #access: AccessRequest | null = null;
  #tunnel: Tunnel | null = null;

  constructor(ctx: ProxyContext, req: IncomingMessage, res: ServerResponse, upgrade: UpgradeRequest | null = null) {
    this.#ctx = ctx;
    this.#req = req;
    this.#res = res as TaggedResponse;
    this.#startMs = performance.now();
    this.#method = req.method ?? 'GET';
    this.#upgrade = upgrade;
  }

  /**
   * Entry point for a WebSocket upgrade (node:http's 'upgrade' event). The socket gets a
   * ServerResponse of its own, so refusals and a non-101 answer are written exactly like any
   * response; only a checked 101 turns the connection into a tunnel.
   */
  static upgrade(ctx: ProxyContext, req: IncomingMessage, socket: Socket, early: Buffer, res: ServerResponse): Exchange {
    const s = socket as UpgradeSocket;
    res.shouldKeepAlive = false;
    res.assignSocket(socket);
    res.on('finish', onUpgradeResponseFinish);
    s.on('drain', onUpgradeSocketDrain);
    s.on('data', onUpgradeEarlyData);
    s.on('end', onUpgradeSocketEnd);
    s.on('error', onUpgradeSocketError);
    return new Exchange(ctx, req, res, new UpgradeRequest(socket, early));
  }

  /** Entry point from the server's request handler. Never throws. */
  begin(): void {
    const res = this.#res;
    // A request pipelined behind one we refused on this connection: never proxied (the
    // connection closes once the refusal is written).
    if ((this.#req.socket as TaggedSocket)[kRefusedConnection] === true) return;
    res[kExchange] = this;
    res.on('close', onResponseClose);
    try {
      try {
        this.#head = readRequestHead(this.#req, this.#ctx.maxHeaderCount);
      } catch (err) {
        this.#closeConnection = isGatewayError(err) && err.closeConnection;
        throw err;
      }
      const head = this.#head;
      if (!head.hasBody && this.#upgrade === null && this.#req.httpVersionMajor === 1) skipBodilessDump(this.#req);
      const requestId = head.requestId;
      this.requestId = requestId !== undefined && isSafeRequestId(requestId) ? requestId : this.#ctx.newRequestId();
      if (this.#method === 'CONNECT' || this.#method === 'TRACE') {
        throw new GatewayError('GW_METHOD_NOT_ALLOWED', { message: `${this.#method} is not proxied` });
      }
      if (head.via !== undefined && gatewayHops(head.via) >= MAX_GATEWAY_HOPS) {
        throw new GatewayError('GW_LOOP_DETECTED', { detail: head.via });
      }
      const address = resolveTarget(this.#ctx.addresser, head, this.#req.url ?? '/');
      switch (address.kind) {
        case AddressKind.Endpoint:
          this.#path = address.path;
          if (this.#upgrade !== null) this.#checkUpgrade();
          break;
        case AddressKind.Healthz:
          this.#ctx.respondHealthz(res);
          return;
        case AddressKind.Readyz:
          this.#ctx.respondReadyz(res);
          return;
        default:
          throw new GatewayError('GW_ENDPOINT_NOT_FOUND');
      }
      this.#span = this.#ctx.tracer.start(this.#method, this.#path, head.forward);
      const cached = this.#ctx.endpoints.get(address.name);
      if (cached === null) throw new GatewayError('GW_ENDPOINT_NOT_FOUND');
      if (cached !== undefined) {
        this.#withEndpoint(cached);
        return;
      }
      this.#ctx.endpoints.load(address.name).then(
        (runtime) => {
          if (this.#clientGone) return;
          if (runtime === null) this.fail(new GatewayError('GW_ENDPOINT_NOT_FOUND'));
          else this.#withEndpoint(runtime);
        },
        (err) => this.fail(err),
      );
    } catch (err) {
      this.fail(err);
    }
  }

  /** What makes an upgrade a WebSocket handshake the gateway can vouch for (RFC 6455 §4.1). */
  #checkUpgrade(): void {
    const refuse = (message: string) => new GatewayError('GW_BAD_REQUEST', { message, closeConnection: true });
    if (this.#method !== 'GET') throw refuse('a WebSocket upgrade must be a GET');
    if (this.#head.hasBody) throw refuse('a WebSocket upgrade has no body');
    if (this.#upgrade!.early.length > 0) throw refuse('data sent before the WebSocket handshake completed');
    if (this.#secWebSocketKey() === undefined) throw refuse('a WebSocket upgrade needs Sec-WebSocket-Key');
    const { path, token } = extractQueryToken(this.#path);
    this.#path = path;
    this.#queryToken = token;
    dropListed(this.#head.forward, UPGRADE_DROPPED);
  }

  #secWebSocketKey(): string | undefined {
    const forward = this.#head.forward;
    for (let i = 0; i < forward.length; i += 2) if (forward[i].toLowerCase() === 'sec-websocket-key') return forward[i + 1];
    return undefined;
  }

  #withEndpoint(runtime: EndpointRuntime): void {
    this.#runtime = runtime;
    let check: void | Promise<void>;
    const access: AccessRequest = {
      authorization: this.#head.authorization,
      remoteAddress: this.#peer(),
      xForwardedFor: this.#head.xForwardedFor,
      isPreflight: this.#head.isPreflight,
    };
    try {
      if (this.#upgrade !== null) {
        access.queryToken = this.#queryToken;
        this.#access = access;
      }
      check = this.#ctx.access.check(runtime.table, access);
    } catch (err) {
      this.fail(err);
      return;
    }
    if (check === undefined) {
      this.#token = access.token;
      this.#admitted();
    } else
      check.then(
        () => {
          this.#token = access.token;
          if (!this.#clientGone) this.#admitted();
        },
        (err) => this.fail(err),
      );
  }

  /** The client's socket address (node caches it on the socket after the first read). */
  #peer(): string {
    return this.#req.socket.remoteAddress ?? '';
  }

  #admitted(): void {
    const ctx = this.#ctx;
    const runtime = this.#runtime!;
    if (ctx.inFlight >= ctx.maxConcurrent || runtime.shared.inFlight >= runtime.maxConcurrent) {
      this.fail(new GatewayError('GW_OVERLOADED', { retryAfterSeconds: 1 }));
      return;
    }
    const head = this.#head;
    if (head.contentLength > ctx.bodyLimitBytes) {
      this.fail(new GatewayError('GW_BODY_TOO_LARGE', { message: `request body is over ${ctx.bodyLimitBytes} bytes` }));
      return;
    }
    ctx.inFlight++;
    runtime.shared.inFlight++;
    this.#counted = true;

    const headers = head.forward;
    // A private endpoint's preflight came without a token: it carries only what a preflight needs.
    if (head.isPreflight && !runtime.isPublic) keepPreflightHeaders(headers);
    // Private endpoints keep their token to themselves; public ones pass Authorization through.
    if (runtime.isPublic && head.authorization !== undefined) headers.push('authorization', head.authorization);
    const peer = this.#peer();
    const socket = this.#req.socket as PeerSocket;
    const secure = socket.encrypted === true;
    let forFor: string;
    let proto: string;
    if (!secure && socket[kUntrustedPeer] !== undefined) {
      // A client that is not a trusted proxy gets the same values on every request of its
      // connection: worked out once per connection.
      forFor = socket[kUntrustedPeer];
      proto = 'http';
    } else {
      const trusted = ctx.isTrustedProxy(peer);
      const forwarded = forwardedFor(head, peer, trusted, secure);
      forFor = forwarded.forFor;
      proto = forwarded.proto;
      if (!trusted && !secure && this.#req.httpVersionMajor === 1) socket[kUntrustedPeer] = forFor;
    }
    headers.push('x-forwarded-for', forFor, 'x-forwarded-proto', proto, 'x-request-id', this.requestId, 'via', VIA_ENTRY);
    if (head.host) headers.push('x-forwarded-host', head.host);

    // Decided once per request from the compiled table: endpoints without replay pay nothing.
    if (runtime.onReset !== OnReset.None) this.#replay = runtime.onReset === OnReset.All || IDEMPOTENT_METHODS.has(this.#method);
    // Traffic control (caps, queue, rate limits, metering): the policy was compiled with the table.
    const ticket = ctx.traffic.ticketFor(runtime.traffic, this.#token, this.#method, this.#path);
    if (ticket !== null) {
      this.#ticket = ticket;
      ctx.traffic.admit(ticket, this, this.#req, head.contentLength, head.hasBody);
      return;
    }
    this.#attachBodyAndDispatch();
  }

  /**
   * Sends the request upstream with its body. A body of declared length up to
   * REQUEST_BUFFER_MAX_BYTES (a chat completion's prompt, typically) is read whole first and goes
   * out in the same write as the request head (docs/performance.md, "Small request bodies");
   * larger or chunked bodies stream as they arrive.
   */
  #attachBodyAndDispatch(): void {
    const head = this.#head;
    if (head.hasBody && head.contentLength >= 0 && head.contentLength <= this.#ctx.requestBufferMaxBytes && this.#upgrade === null) {
      readWholeBody(this.#req, head.contentLength).then(
        (body) => {
          if (this.#finished || this.#clientGone) return;
          this.#useBuffer(body);
          this.#dispatch();
        },
        // A client that left mid-body was already finished by clientClosed (499).
        (err: unknown) => this.fail(err),
      );
      return;
    }
    this.#attachBody();
    this.#dispatch();
  }

  /** A body held whole: a Buffer can be sent again as it is, so a replay needs no copy. */
  #useBuffer(body: Buffer): void {
    this.#body = body;
    if (body.length > this.#runtime!.replayBodyMaxBytes) this.#replay = false;
  }

  #attachBody(): void {
    const head = this.#head;
    if (head.hasBody) this.#useBodyStream(head.contentLength >= 0 ? this.#req : this.#req.pipe(new BodyLimiter(this.#ctx.bodyLimitBytes)));
  }

  /** The body stream to send; kept while it streams up when the endpoint replays on reset. */
  #useBodyStream(body: Readable): void {
    const max = this.#runtime!.replayBodyMaxBytes;
    if (this.#replay && this.#head.contentLength <= max) {
      this.#replayBody = new ReplayBody(body, max);
      this.#body = this.#replayBody.attempt();
    } else {
      // Over the replay limit up front: not replayable, nothing kept (fails as without replay).
      this.#replay = false;
      this.#body = body;
    }
  }

  /** Traffic control let the request in (its rate limits passed). */
  trafficAdmitted(): void {
    if (this.#finished || this.#clientGone) return;
    const body = this.#ticket!.body;
    if (body === null) {
      this.#attachBodyAndDispatch();
      return;
    }
    if (Buffer.isBuffer(body)) {
      // The body was read (and maybe rewritten): its length is what it is now.
      const forward = this.#head.forward;
      dropListed(forward, CONTENT_LENGTH);
      forward.push('content-length', String(body.length));
      this.#useBuffer(body);
    } else {
      // Past the inspection bound: the rest streams, still under the body limit.
      this.#useBodyStream(this.#head.contentLength >= 0 ? body : body.pipe(new BodyLimiter(this.#ctx.bodyLimitBytes)));
    }
    this.#dispatch();
  }

  /** Traffic control found no usable route: the ordinary no-route path. */
  trafficHold(): void {
    if (this.#finished) return;
    this.#noRoute();
  }

  /** Traffic control took a slot on `route`. */
  trafficDispatch(route: RouteState): void {
    if (this.#finished || this.#clientGone) {
      this.#ctx.traffic.releaseSlot(this.#ticket!);
      if (!this.#finished) this.#finish();
      return;
    }
    this.#send(route);
  }

  #noRoute(): void {
    if (this.#attempt === 0) this.#hold();
    // A replayable request waits (within the hold time) for a route to come back.
    else if (this.#replay) this.#waitForRoute();
    // No other route to retry on: report the last failure (refused → 502, connect timeout → 504).
    else this.fail(fromUndici(this.#retryCause, this.#retryKind));
  }

  #dispatch(): void {
    // A retry picks from the table served now: routes added since the request arrived count.
    const runtime = this.#attempt === 0 ? this.#runtime! : this.#currentRuntime();
    if (this.#ticket !== null) {
      this.#ctx.traffic.pick(this.#ticket, runtime, this.#tried, this.#tried2);
      return;
    }
    const route = runtime.balancer.pick(runtime.candidates, Date.now(), this.#tried, this.#tried2);
    if (route === null) {
      this.#noRoute();
      return;
    }
    this.#send(route);
  }

  #send(route: RouteState): void {
    const runtime = this.#runtime!;
    // Bounded upstream queue: past its pool's connections, a route takes only so many waiting
    // requests (a loop or a stalled replica must not grow an unbounded queue in undici).
    if (route.outstanding - route.tunnels >= this.#ctx.routeQueueMax) {
      if (this.#ticket !== null) this.#ctx.traffic.releaseSlot(this.#ticket);
      this.fail(new GatewayError('GW_OVERLOADED', { retryAfterSeconds: 1, detail: 'upstream queue full' }));
      return;
    }
    this.#route = route;
    this.#routeId = route.id;
    // Counted only when another route was really found to retry on (replays have their own counter).
    if (this.#attempt > 0 && this.#retryKind === 'connect') this.#ctx.metrics.retries.labels(runtime.shared.label).inc();
    route.outstanding++;
    this.#connected = false;
    const opts: Dispatcher.DispatchOptions = {
      path: route.basePath === '' ? this.#path : route.basePath + this.#path,
      method: this.#method as Dispatcher.HttpMethod,
      headers: this.#head.forward,
      body: this.#body,
      headersTimeout: runtime.headersTimeoutMs,
      bodyTimeout: runtime.bodyTimeoutMs,
    };
    if (this.#upgrade !== null) opts.upgrade = 'websocket';
    try {
      route.pool.dispatch(opts, this);
    } catch (err) {
      route.outstanding--;
      this.#route = null;
      this.fail(new GatewayError('GW_BAD_REQUEST', { cause: err, detail: (err as Error).message }));
    }
  }

  #currentRuntime(): EndpointRuntime {
    const runtime = this.#runtime!;
    const latest = this.#ctx.endpoints.get(runtime.name);
    if (latest && latest !== runtime && latest.shared === runtime.shared) this.#runtime = latest;
    return this.#runtime!;
  }

  #hold(): void {
    const runtime = this.#runtime!;
    const ctx = this.#ctx;
    // No replica to send to: an autoscaled service may be at zero (or all starting); wake it
    // even when this request cannot wait.
    if (runtime.autoscaled) ctx.wakeScaled(runtime);
    if (ctx.holdTimeoutMs === 0) {
      this.fail(new GatewayError('GW_NO_HEALTHY_ROUTE', { retryAfterSeconds: 1 }));
      return;
    }
    if (runtime.shared.held.length >= runtime.maxHeld) {
      this.fail(new GatewayError('GW_OVERLOADED', { retryAfterSeconds: 1, detail: 'hold queue full' }));
      return;
    }
    runtime.shared.held.push(this);
    ctx.metrics.held.inc();
    this.#holdTimer = setTimeout(() => {
      this.#holdTimer = null;
      this.#unhold();
      this.fail(new GatewayError('GW_NO_HEALTHY_ROUTE', { retryAfterSeconds: Math.max(1, Math.ceil(ctx.holdTimeoutMs / 1000)) }));
    }, ctx.holdTimeoutMs);
  }

  /**
   * Every route this request may try failed: wait for one, in the hold queue (a table change or
   * a route passing its health checks wakes it), trying the failed routes again at growing
   * intervals, until HOLD_TIMEOUT_MS from the first wait.
   */
  #waitForRoute(): void {
    const ctx = this.#ctx;
    const runtime = this.#runtime!;
    const now = Date.now();
    if (this.#waitUntil === 0) this.#waitUntil = now + ctx.holdTimeoutMs;
    const left = this.#waitUntil - now;
    if (left <= 0 || runtime.shared.held.length >= runtime.maxHeld) {
      this.fail(fromUndici(this.#retryCause, this.#retryKind));
      return;
    }
    this.#waitStepMs = this.#waitStepMs === 0 ? WAIT_STEP_MIN_MS : Math.min(WAIT_STEP_MAX_MS, this.#waitStepMs * 2);
    runtime.shared.held.push(this);
    ctx.metrics.held.inc();
    this.#holdTimer = setTimeout(() => {
      this.#holdTimer = null;
      this.#unhold();
      if (Date.now() >= this.#waitUntil) {
        this.fail(fromUndici(this.#retryCause, this.#retryKind));
        return;
      }
      // The failed routes are candidates again: the only route may be back.
      this.#tried = null;
      this.#tried2 = null;
      this.#dispatch();
    }, Math.min(left, this.#waitStepMs));
  }

  #unhold(): void {
    if (this.#holdTimer !== null) {
      clearTimeout(this.#holdTimer);
      this.#holdTimer = null;
    }
    const held = this.#runtime?.shared.held;
    if (held) {
      const i = held.indexOf(this);
      if (i >= 0) {
        held.splice(i, 1);
        this.#ctx.metrics.held.dec();
      }
    }
  }

  /** Called by the hold queue when the endpoint's table changed. */
  wake(runtime: EndpointRuntime | null): void {
    if (this.#holdTimer !== null) {
      clearTimeout(this.#holdTimer);
      this.#holdTimer = null;
    }
    this.#ctx.metrics.held.dec();
    if (this.#clientGone) return;
    if (runtime === null) {
      this.fail(new GatewayError('GW_ENDPOINT_NOT_FOUND'));
      return;
    }
    if (this.#runtime && this.#runtime.shared !== runtime.shared) {
      // The endpoint was deleted and recreated under the same name: admission ran against the old one.
      this.fail(new GatewayError('GW_ENDPOINT_NOT_FOUND'));
      return;
    }
    this.#runtime = runtime;
    this.#dispatch();
  }

  // ---- undici dispatch handler (legacy callback API) ----

  onConnect(abort: (err?: Error) => void): void {
    this.#connected = true;
    this.#abort = abort;
    if (this.#clientGone) abort(new Error('client went away'));
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx from the upstream: node:http sends its own 100-continue.
    if (rawHeaders.length > this.#ctx.maxUpstreamHeaderCount * 2) {
      // Bounded like the client side (Envoy's max_response_headers_count): onError answers 502.
      this.#abort?.(new UpstreamHeaderCountError(rawHeaders.length / 2));
      return false;
    }
    this.#resume = resume;
    this.#ttfbMs = performance.now() - this.#startMs;
    this.#ctx.outlier.recordSuccess(this.#route!);
    const res = this.#res;
    const out: string[] = [];
    let listed: Set<string> | null = null;
    const ticket = this.#ticket;
    // Our own client's headers (strings) passed its parser's checks; undici's (Buffers) and
    // traffic control's additions go through writeHead's validation.
    let checked = rawHeaders.length === 0 || typeof rawHeaders[0] === 'string';
    let contentType: string | undefined;
    let contentLength = -1;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const name = headerText(rawHeaders[i]);
      // Only names as long as one the gateway acts on are lower-cased (Server, Date, ... are not).
      if (name.length < ACTED_ON_LENGTH.length && ACTED_ON_LENGTH[name.length] === 1) {
        const lower = name.toLowerCase();
        if (ticket !== null) {
          if (lower === 'content-type') contentType = headerText(rawHeaders[i + 1]);
          else if (lower === 'content-length') contentLength = Number(headerText(rawHeaders[i + 1]));
        }
        if (lower === 'connection') {
          listed = connectionListedHeaders(headerText(rawHeaders[i + 1]));
          continue;
        }
        if (HOP_BY_HOP.has(lower) || lower === 'x-request-id') continue;
      }
      out.push(name, headerText(rawHeaders[i + 1]));
    }
    if (listed !== null) dropListed(out, listed);
    if (ticket !== null) {
      const extra = this.#ctx.traffic.onResponseHead(ticket, statusCode, contentType, contentLength);
      if (extra !== null) {
        checked = false;
        for (let i = 0; i < extra.length; i++) out.push(extra[i]);
      }
      // Filtering the usage chunk changes the length: let node frame the body itself.
      if (ticket.meter !== null && ticket.injectedUsage) dropListed(out, CONTENT_LENGTH);
    }
    if (this.#req.httpVersionMajor === 2) this.#grpcStatus = grpcStatusIn(out);
    out.push('x-request-id', this.requestId);
    const h2 = this.#req.httpVersionMajor === 2;
    // HTTP/2 has no Connection header (GOAWAY does its job) and no reason phrase.
    if (this.#ctx.draining && !h2) out.push('connection', 'close');
    this.#status = statusCode;
    try {
      if (h2 || !checked || !writeCheckedHead(res, statusCode, statusText, out)) res.writeHead(statusCode, h2 ? undefined : statusText || undefined, out);
    } catch (err) {
      // The upstream sent something node:http refuses to write (a bad header value).
      this.#abort?.(err as Error);
      return false;
    }
    return true;
  }

  /**
   * undici's answer to an upgrade dispatch: the upstream said 101. The tunnel opens only if it
   * switched to exactly what was asked, with the accept value that proves it read this
   * handshake; anything else is an upstream failure (502) and the socket is dropped.
   */
  onUpgrade(statusCode: number, rawHeaders: Buffer[] | string[] | null, socket: Duplex): void {
    const upgrade = this.#upgrade;
    const route = this.#route;
    if (upgrade === null || this.#finished || this.#clientGone) {
      socket.destroy();
      if (!this.#finished) this.#finish();
      return;
    }
    this.#ttfbMs = performance.now() - this.#startMs;
    let upgradeValue = '';
    let accept = '';
    let head = 'HTTP/1.1 101 Switching Protocols\r\n';
    const raw = rawHeaders ?? [];
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i].toString();
      const value = raw[i + 1].toString();
      const lower = name.toLowerCase();
      if (lower === 'upgrade') upgradeValue = value;
      else if (lower === 'sec-websocket-accept') accept = value;
      if (HOP_BY_HOP.has(lower) || lower === 'x-request-id') continue;
      head += `${name}: ${value}\r\n`;
    }
    if (
      statusCode !== 101 ||
      raw.length > this.#ctx.maxUpstreamHeaderCount * 2 ||
      upgradeValue.trim().toLowerCase() !== 'websocket' ||
      accept.trim() !== websocketAccept(this.#secWebSocketKey() ?? '')
    ) {
      socket.destroy();
      this.#releaseRoute();
      this.#ctx.metrics.upstreamErrors.labels(this.#runtime?.shared.label ?? 'unknown', 'protocol').inc();
      this.fail(new GatewayError('GW_UPSTREAM_UNAVAILABLE', { detail: 'upstream 101 without a matching Upgrade and Sec-WebSocket-Accept, or with too many headers' }));
      return;
    }
    // The tunnel stays outstanding on its route (balancing, per-route limits) until it closes,
    // but no longer occupies the route's pool.
    if (route !== null) {
      this.#ctx.outlier.recordSuccess(route);
      route.tunnels++;
    }
    this.#abort = null;
    this.#status = 101;
    head += `upgrade: websocket\r\nconnection: Upgrade\r\nx-request-id: ${this.requestId}\r\n\r\n`;
    const client = upgrade.socket;
    const res = this.#res;
    res.off('close', onResponseClose);
    res.detachSocket(client);
    client.off('data', onUpgradeEarlyData);
    client.off('end', onUpgradeSocketEnd);
    client.off('drain', onUpgradeSocketDrain);
    const tunnel = new Tunnel(client, socket, this);
    this.#tunnel = tunnel;
    this.#ctx.tunnels.add(this);
    this.#ctx.metrics.openWebSockets.labels(this.#runtime!.shared.label).inc();
    tunnel.open(head, this.#ctx.wsIdleTimeoutMs);
  }

  tunnelClosed(reason: string): void {
    this.#ctx.tunnels.delete(this);
    this.#ctx.metrics.openWebSockets.labels(this.#runtime!.shared.label).dec();
    this.#closeReason = reason;
    this.#finish();
  }

  closeTunnel(code: number, reason: string): void {
    this.#tunnel?.close(code, reason);
  }

  endpointChanged(name: string, runtime: EndpointRuntime | null): void {
    const mine = this.#runtime;
    if (mine === null || mine.name !== name || this.#tunnel === null) return;
    if (runtime === null || runtime.shared !== mine.shared) {
      this.closeTunnel(CLOSE_GOING_AWAY, 'endpoint_deleted');
      return;
    }
    this.#runtime = runtime;
    this.revalidate();
  }

  revalidate(): void {
    const runtime = this.#runtime;
    const access = this.#access;
    if (runtime === null || access === null || this.#tunnel === null) return;
    let check: void | Promise<void>;
    try {
      check = this.#ctx.access.check(runtime.table, access);
    } catch {
      this.closeTunnel(CLOSE_POLICY_VIOLATION, 'access_revoked');
      return;
    }
    check?.catch(() => this.closeTunnel(CLOSE_POLICY_VIOLATION, 'access_revoked'));
  }

  onData(chunk: Buffer): boolean {
    const ticket = this.#ticket;
    if (ticket !== null) {
      const out = this.#ctx.traffic.onResponseData(ticket, chunk);
      if (out === null) return true;
      chunk = out;
    }
    this.#bytes += chunk.length;
    if (this.#res.write(chunk)) return true;
    // The client's socket is full: the upstream pauses until it drains. Listened for only from
    // the first time it happens (most answers never fill the socket).
    if (!this.#drainListening) {
      this.#drainListening = true;
      this.#res.on('drain', onResponseDrain);
    }
    return false;
  }

  /**
   * The gateway's own client: `chunk` ends a Content-Length body and onComplete follows before
   * the next read. It goes out with `end()`, so the head, the body and the end leave in one write
   * (a small body as one string with the head: a `write`, not a `writev`).
   */
  onLastData(chunk: Buffer): void {
    if (this.#ticket !== null || this.#req.httpVersionMajor === 2) {
      this.onData(chunk);
      return;
    }
    this.#bytes += chunk.length;
    this.#lastChunk = chunk;
  }

  onComplete(trailers: string[] | Buffer[] | Record<string, string | string[]> | null): void {
    const res = this.#res;
    if (this.#ticket !== null) {
      const rest = this.#ctx.traffic.onResponseEnd(this.#ticket);
      if (rest !== null) {
        this.#bytes += rest.length;
        res.write(rest);
      }
    }
    // Trailers (gRPC's grpc-status lives there) reach an HTTP/2 client always, an HTTP/1.1 one
    // only in a chunked response. An HTTP/1.1 upstream gives a flat list, an HTTP/2 one an object.
    if (trailers !== null && (res.chunkedEncoding || this.#req.httpVersionMajor === 2)) {
      let t: Record<string, string | string[]> | null = null;
      if (Array.isArray(trailers)) {
        if (trailers.length > 0) {
          t = {};
          for (let i = 0; i < trailers.length; i += 2) t[trailers[i].toString()] = trailers[i + 1].toString();
        }
      } else if (Object.keys(trailers).length > 0) {
        t = trailers;
      }
      // A gRPC "trailers-only" answer carries grpc-status in its headers and ends the stream on
      // them; relayed through node's compat API the headers and the end travel apart, so the
      // status must be repeated in trailers for the client to find it.
      if (t === null && this.#grpcStatus !== null && this.#req.httpVersionMajor === 2) t = this.#grpcStatus;
      try {
        if (t !== null) res.addTrailers(t);
      } catch {
        // A trailer node refuses is dropped; the body is already complete.
      }
    }
    const last = this.#lastChunk;
    if (last === null || res.writableEnded) res.end();
    else {
      this.#lastChunk = null;
      endWithBody(res, last);
    }
    this.#finish();
  }

  onError(err: Error): void {
    const route = this.#route;
    const ctx = this.#ctx;
    if (this.#clientGone) {
      this.#finish();
      return;
    }
    if (isGatewayError(err)) {
      // The request body broke a gateway limit (BodyLimiter) while streaming.
      this.#releaseRoute();
      this.fail(err);
      return;
    }
    const kind: UpstreamFailureKind = upstreamFailureKind(err, this.#connected);
    const label = this.#runtime?.shared.label ?? 'unknown';
    if (kind !== 'client') ctx.metrics.upstreamErrors.labels(label, kind).inc();
    if (kind === 'connect' && route !== null) {
      if (ctx.outlier.recordConnectFailure(route, Date.now())) {
        ctx.metrics.ejections.labels(label).inc();
        ctx.logger.warn({ endpoint: this.#runtime?.name, route: route.id }, 'route ejected after repeated connect failures');
      }
    }
    if (this.#res.headersSent) {
      // Mid-body failure: the only honest signal left is to cut the client's response short.
      ctx.logger.warn({ endpoint: this.#runtime?.name, route: route?.id, request_id: this.requestId, err_code: (err as { code?: string }).code }, 'upstream failed mid-response');
      this.#errCode = 'GW_UPSTREAM_UNAVAILABLE';
      this.#res.destroy();
      this.#finish();
      return;
    }
    if (route !== null && this.#mayRetry(kind)) {
      this.#releaseRoute();
      if (this.#attempt === 0) this.#tried = route;
      else this.#tried2 = route;
      this.#attempt++;
      this.#retryCause = err;
      this.#retryKind = kind;
      this.#dispatch();
      return;
    }
    this.#releaseRoute();
    this.fail(fromUndici(err, kind));
  }

  /**
   * Whether a failure before any response byte may be tried again. A connect failure sent
   * nothing: retried up to RETRY_MAX times (without limit while a replayable request waits for
   * a route to come back — the hold time bounds it). A reset after the request went out is
   * replayed only where the endpoint allows it, at most RETRY_MAX times, with the body rewound.
   */
  #mayRetry(kind: UpstreamFailureKind): boolean {
    if (kind === 'connect') {
      if (!this.#replay && this.#attempt >= this.#ctx.retryMax) return false;
    } else if (kind !== 'reset' || !this.#replay || this.#replays >= this.#ctx.retryMax) {
      return false;
    }
    // undici may have destroyed the failed try's body stream: every try reads a fresh one.
    if (this.#replayBody !== null) {
      const body = this.#replayBody.attempt();
      if (body === null) return false;
      this.#body = body;
    }
    if (kind === 'connect') return true;
    this.#replays++;
    this.#ctx.metrics.replays.labels(this.#runtime!.shared.label).inc();
    return true;
  }

  // ---- client side ----

  /**
   * A WebSocket client sent bytes before the upstream's answer (RFC 6455 §4.1 forbids it, and it
   * is how requests would be smuggled into a tunnel): refuse, and stop what was under way.
   */
  clientSentEarly(): void {
    if (this.#finished || this.#tunnel !== null) return;
    this.#unhold();
    this.fail(new GatewayError('GW_BAD_REQUEST', { message: 'data sent before the WebSocket handshake completed', closeConnection: true }));
    // Finished now: the abort's onError only lands on #finish again.
    this.#clientGone = true;
    this.#abort?.(new Error('client sent data before the handshake completed'));
  }

  resumeUpstream(): void {
    this.#resume?.();
  }

  clientClosed(): void {
    // node's HTTP/2 compat response reports writableFinished once its stream is reset, so
    // there only our own bookkeeping says whether the answer was complete.
    if (this.#finished || (this.#res.writableFinished && this.#req.httpVersionMajor !== 2)) return;
    this.#clientGone = true;
    if (this.#holdTimer !== null) {
      this.#unhold();
      this.#finish();
      return;
    }
    if (this.#abort !== null) this.#abort(new Error('client went away'));
    else if (this.#route === null) this.#finish();
    // Else: dispatched but not connected yet; onConnect aborts.
  }

  /** Sends a gateway error (or cuts the connection if a response already started). */
  fail(err: unknown): void {
    const res = this.#res;
    if (this.#finished) return;
    // Every body reader (lib/body-events) reports a client that stopped mid-body the same way.
    if (err instanceof BodyAbortedError) err = new GatewayError('GW_BAD_REQUEST', { message: 'request body ended early', closeConnection: true });
    if (!isGatewayError(err)) this.#ctx.logger.error({ err, request_id: this.requestId }, 'internal error in the data plane');
    if (this.requestId === '') this.requestId = this.#ctx.newRequestId();
    const http = toHttp(err, this.requestId);
    this.#errCode = http.code;
    this.#status = http.status;
    this.#ctx.metrics.gatewayErrors.labels(http.code).inc();
    this.#runtime?.shared.recordError(http.code);
    if (this.#clientGone || res.destroyed) {
      this.#finish();
      return;
    }
    if (res.headersSent) {
      res.destroy();
      this.#finish();
      return;
    }
    const h2 = this.#req.httpVersionMajor === 2;
    if (isGrpcContentType(this.#req.headers['content-type'])) {
      const grpc: Record<string, string | number> = grpcErrorHeaders(http, isGatewayError(err) ? err.message : 'internal error');
      grpc['x-request-id'] = this.requestId;
      if (h2) {
        // node's compat API cannot end a stream on its HEADERS frame (a trailers-only answer),
        // so the status also goes in trailers, where every gRPC client looks for it.
        res.writeHead(200, { 'content-type': 'application/grpc', 'x-request-id': this.requestId });
        res.addTrailers({ 'grpc-status': String(grpc['grpc-status']), 'grpc-message': String(grpc['grpc-message']) });
      } else {
        if (this.#closeConnection || (this.#head.hasBody && !this.#req.complete)) grpc.connection = 'close';
        res.writeHead(200, grpc);
      }
      res.end();
      this.#finish();
      return;
    }
    const headers: Record<string, string | number> = http.headers;
    headers['x-request-id'] = this.requestId;
    headers['content-length'] = Buffer.byteLength(http.body);
    // An unread request body would have to be drained first to keep the connection; close it
    // instead. (HTTP/2 streams are independent: the rest of the body is reset, not the connection.)
    if (!h2 && (this.#closeConnection || (this.#head.hasBody && !this.#req.complete) || this.#ctx.draining)) {
      headers.connection = 'close';
      (this.#req.socket as TaggedSocket)[kRefusedConnection] = true;
    }
    res.writeHead(http.status, headers);
    res.end(this.#method === 'HEAD' ? undefined : http.body);
    this.#finish();
  }

  #releaseRoute(): void {
    const route = this.#route;
    if (route !== null) {
      route.outstanding--;
      if (this.#tunnel !== null) route.tunnels--;
      this.#route = null;
      if (this.#ticket !== null) this.#ctx.traffic.releaseSlot(this.#ticket);
    }
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#releaseRoute();
    const ctx = this.#ctx;
    const runtime = this.#runtime;
    if (this.#counted) {
      ctx.inFlight--;
      runtime!.shared.inFlight--;
    }
    const ticket = this.#ticket;
    if (ticket !== null) ctx.traffic.finish(ticket, this.#ttfbMs >= 0);
    const tunnel = this.#tunnel;
    if (tunnel !== null) this.#bytes = tunnel.bytesOut;
    const status = this.#clientGone && tunnel === null ? CLIENT_GONE : this.#status;
    const durationMs = performance.now() - this.#startMs;
    if (runtime !== null) runtime.shared.record(status, durationMs / 1000);
    else ctx.recordUnrouted(status, durationMs / 1000);
    // Without a tracer no facts object is built: one allocation less per request.
    if (this.#span !== NOOP_SPAN) this.#span.end({ endpoint: runtime?.name, route: this.#routeId, status, errCode: this.#errCode, bytes: this.#bytes });
    if (ctx.accessLog) {
      const q = this.#path.indexOf('?');
      const path = q < 0 ? this.#path : this.#path.slice(0, q);
      if (this.#upgrade === null && this.#replays === 0) {
        ctx.accessLogger.request(
          this.requestId, this.#method, path, runtime?.name, this.#routeId, status, this.#bytes, durationMs, this.#ttfbMs, this.#errCode,
          ticket === null ? -1 : ticket.priority, ticket === null ? -1 : ticket.prompt, ticket === null ? -1 : ticket.completion,
        );
      } else {
        const line: Record<string, unknown> = {
          request_id: this.requestId,
          method: this.#method,
          path,
          endpoint: runtime?.name,
          route: this.#routeId,
          status,
          bytes: this.#bytes,
          duration_ms: Math.round(durationMs * 1000) / 1000,
          ttfb_ms: this.#ttfbMs < 0 ? undefined : Math.round(this.#ttfbMs * 1000) / 1000,
          err_code: this.#errCode,
          replays: this.#replays === 0 ? undefined : this.#replays,
        };
        if (ticket !== null) {
          line.priority = ticket.priority;
          if (ticket.prompt >= 0) line.prompt_tokens = ticket.prompt;
          if (ticket.completion >= 0) line.completion_tokens = ticket.completion;
        }
        if (this.#upgrade !== null) {
          line.upgrade = 'websocket';
          line.bytes_in = tunnel?.bytesIn ?? 0;
          line.close_reason = this.#closeReason;
        }
        ctx.accessLogger.info(line, 'request');
      }
    }
    ctx.onRequestFinished();
  }
}

/** The gRPC status fields among response headers, or null when there are none. */
function grpcStatusIn(headers: string[]): Record<string, string> | null {
  let found: Record<string, string> | null = null;
  for (let i = 0; i < headers.length; i += 2) {
    const lower = headers[i].toLowerCase();
    if (lower === 'grpc-status' || lower === 'grpc-message') (found ??= {})[lower] = headers[i + 1];
  }
  return found;
}
