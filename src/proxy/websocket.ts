import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { AccessRequest } from '../auth/access.js';
import { GatewayError, isGatewayError } from '../errors/gateway-error.js';
import { toHttp } from '../errors/to-http.js';
import { dropListed, isSafeRequestId } from '../lib/headers.js';
import type { RouteState } from '../upstream/route-state.js';
import { AddressKind } from './addressing.js';
import type { EndpointRuntime } from './endpoint-runtime.js';
import type { ProxyContext } from './proxy-context.js';
import { RequestHead, forwardedFor, readRequestHead, resolveTarget } from './request-head.js';

const NO_BODY_HEADERS: ReadonlySet<string> = new Set(['content-length', 'te']);

/**
 * WebSocket (and other HTTP/1.1 Upgrade) proxying: node:http hands the raw client socket over in
 * its 'upgrade' event; this module checks it like any request (addressing, CIDRs, token from
 * `Authorization` or, for browsers, a `token` query parameter that is stripped before
 * forwarding), picks a healthy route, opens a raw TCP (or TLS) connection to it, writes the
 * upgrade request, and once the upstream answers pipes the two sockets both ways.
 *
 * - Errors before the upstream answered are the gateway's JSON errors, written on the socket.
 * - The upstream's answer (101 or anything else) is passed through untouched.
 * - Either side closing (or failing) closes the other; no traffic for `idleTimeoutMs` closes both.
 * - A non-WebSocket Upgrade (e.g. `h2c`) is forwarded as a plain one-shot HTTP/1.1 request with
 *   the Upgrade dropped, so such clients fall back to HTTP/1.1 as they would without a proxy.
 */

export interface WebSocketProxyOptions {
  idleTimeoutMs: number;
  connectTimeoutMs: number;
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** The longest upstream response head we wait for before giving up on it. */
const MAX_RESPONSE_HEAD = 64 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n');

/** Splits the `token` query parameter out of a request target; `path` keeps every other byte. */
export function extractQueryToken(target: string): { path: string; token: string | undefined } {
  const q = target.indexOf('?');
  if (q < 0) return { path: target, token: undefined };
  const query = target.slice(q + 1);
  if (!query.includes('token=')) return { path: target, token: undefined };
  let token: string | undefined;
  const kept: string[] = [];
  for (const part of query.split('&')) {
    const eq = part.indexOf('=');
    const name = eq < 0 ? part : part.slice(0, eq);
    if (name === 'token') {
      if (token === undefined && eq >= 0) {
        try {
          token = decodeURIComponent(part.slice(eq + 1).replace(/\+/g, ' '));
        } catch {
          token = '';
        }
      }
      continue;
    }
    kept.push(part);
  }
  const base = target.slice(0, q);
  return { path: kept.length > 0 ? `${base}?${kept.join('&')}` : base, token };
}

interface Tunnel {
  client: Duplex;
  upstream: Socket | null;
}

/** One upgrade request through its whole life. */
class UpgradeExchange {
  readonly #proxy: WebSocketProxy;
  readonly #ctx: ProxyContext;
  readonly #req: IncomingMessage;
  readonly #client: Duplex;
  #head: Buffer;
  readonly #startMs = performance.now();
  requestId = '';
  #isWebSocket = false;
  #requestHead: RequestHead = new RequestHead();
  #path = '/';
  #queryToken: string | undefined;
  #runtime: EndpointRuntime | null = null;
  #route: RouteState | null = null;
  #tried: RouteState[] = [];
  #upstream: Socket | null = null;
  #status = 0;
  #errCode: string | undefined;
  #bytesIn = 0;
  #bytesOut = 0;
  #open = false;
  #done = false;
  #tunnel: Tunnel | null = null;
  #routeId: string | undefined;
  #closeReason: string | undefined;
  #ttfb = -1;

  constructor(proxy: WebSocketProxy, ctx: ProxyContext, req: IncomingMessage, client: Duplex, head: Buffer) {
    this.#proxy = proxy;
    this.#ctx = ctx;
    this.#req = req;
    this.#client = client;
    this.#head = head;
  }

  begin(): void {
    const client = this.#client;
    client.on('error', () => this.#close());
    client.on('close', () => this.#close());
    try {
      this.#readHeaders();
      const address = resolveTarget(this.#ctx.addresser, this.#requestHead, this.#req.url ?? '/');
      if (address.kind !== AddressKind.Endpoint) throw new GatewayError('GW_ENDPOINT_NOT_FOUND');
      const { path, token } = extractQueryToken(address.path);
      this.#path = path;
      this.#queryToken = token;
      const cached = this.#ctx.endpoints.get(address.name);
      if (cached === null) throw new GatewayError('GW_ENDPOINT_NOT_FOUND');
      if (cached !== undefined) {
        this.#withEndpoint(cached);
        return;
      }
      this.#ctx.endpoints.load(address.name).then(
        (runtime) => {
          if (runtime === null) this.fail(new GatewayError('GW_ENDPOINT_NOT_FOUND'));
          else this.#withEndpoint(runtime);
        },
        (err) => this.fail(err),
      );
    } catch (err) {
      this.fail(err);
    }
  }

  #readHeaders(): void {
    const head = readRequestHead(this.#req, this.#ctx.maxHeaderCount);
    this.requestId = head.requestId !== undefined && isSafeRequestId(head.requestId) ? head.requestId : this.#ctx.newRequestId();
    // An upgrade carries no body of its own: whatever follows the head belongs to the tunnel.
    dropListed(head.forward, NO_BODY_HEADERS);
    this.#requestHead = head;
    this.#isWebSocket = head.upgrade !== undefined && head.upgrade.trim().toLowerCase() === 'websocket';
    if (this.#isWebSocket && this.#req.method !== 'GET') throw new GatewayError('GW_BAD_REQUEST', { message: 'a WebSocket upgrade must be a GET' });
  }

  #withEndpoint(runtime: EndpointRuntime): void {
    if (this.#done) return;
    this.#runtime = runtime;
    let check: void | Promise<void>;
    try {
      const access: AccessRequest = {
        authorization: this.#requestHead.authorization,
        remoteAddress: this.#req.socket.remoteAddress ?? '',
        xForwardedFor: this.#requestHead.xForwardedFor,
        isPreflight: false,
        queryToken: this.#isWebSocket ? this.#queryToken : undefined,
      };
      check = this.#ctx.access.check(runtime.table, access);
    } catch (err) {
      this.fail(err);
      return;
    }
    if (check === undefined) this.#connect();
    else check.then(() => this.#connect(), (err) => this.fail(err));
  }

  #connect(): void {
    if (this.#done) return;
    const runtime = this.#runtime!;
    const route = runtime.balancer.pick(runtime.candidates, Date.now(), this.#tried[0] ?? null, this.#tried[1] ?? null);
    if (route === null || this.#tried.includes(route)) {
      if (this.#tried.length === 0) this.fail(new GatewayError('GW_NO_HEALTHY_ROUTE', { retryAfterSeconds: 1 }));
      else this.fail(new GatewayError('GW_UPSTREAM_UNAVAILABLE'));
      return;
    }
    this.#route = route;
    this.#routeId = route.id;
    route.outstanding++;
    const url = new URL(route.url);
    const tls = url.protocol === 'https:';
    const port = Number(url.port) || (tls ? 443 : 80);
    const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const upstream = tls
      ? tlsConnect({ host: hostname, port, servername: hostname, ALPNProtocols: ['http/1.1'] })
      : netConnect({ host: hostname, port });
    this.#upstream = upstream;
    upstream.setNoDelay(true);
    upstream.setTimeout(this.#proxy.options.connectTimeoutMs);
    const onConnectTimeout = () => upstream.destroy(Object.assign(new Error('connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' }));
    upstream.once('timeout', onConnectTimeout);
    const onConnectError = (err: NodeJS.ErrnoException) => {
      this.#releaseRoute();
      this.#upstream = null;
      if (this.#done) return;
      if (this.#ctx.outlier.recordConnectFailure(route, Date.now())) this.#ctx.metrics.ejections.labels(runtime.shared.label).inc();
      this.#ctx.metrics.upstreamErrors.labels(runtime.shared.label, 'connect').inc();
      if (this.#tried.length < this.#ctx.retryMax) {
        this.#tried.push(route);
        this.#ctx.metrics.retries.labels(runtime.shared.label).inc();
        this.#connect();
        return;
      }
      this.fail(new GatewayError(err.code === 'UND_ERR_CONNECT_TIMEOUT' ? 'GW_UPSTREAM_TIMEOUT' : 'GW_UPSTREAM_UNAVAILABLE', { cause: err }));
    };
    upstream.once('error', onConnectError);
    upstream.once(tls ? 'secureConnect' : 'connect', () => {
      upstream.off('error', onConnectError);
      upstream.off('timeout', onConnectTimeout);
      upstream.setTimeout(0);
      this.#ctx.outlier.recordSuccess(route);
      if (this.#done) {
        upstream.destroy();
        return;
      }
      this.#sendRequest(url, upstream);
    });
  }

  #sendRequest(url: URL, upstream: Socket): void {
    const runtime = this.#runtime!;
    const route = this.#route!;
    const head = this.#requestHead;
    const headers = head.forward;
    const lines: string[] = [`${this.#req.method} ${route.basePath === '' ? this.#path : route.basePath + this.#path} HTTP/1.1`, `host: ${url.host}`];
    for (let i = 0; i < headers.length; i += 2) lines.push(`${headers[i]}: ${headers[i + 1]}`);
    if (runtime.isPublic && head.authorization !== undefined) lines.push(`authorization: ${head.authorization}`);
    const peer = this.#req.socket.remoteAddress ?? '';
    const forwarded = forwardedFor(head, peer, this.#ctx.isTrustedProxy(peer));
    lines.push(`x-forwarded-for: ${forwarded.forFor}`, `x-forwarded-proto: ${forwarded.proto}`, `x-request-id: ${this.requestId}`);
    if (head.host !== undefined) lines.push(`x-forwarded-host: ${head.host}`);
    // The body of a non-WebSocket upgrade request is piped raw, so its framing header goes along.
    const contentLength = this.#req.headers['content-length'];
    const transferEncoding = this.#req.headers['transfer-encoding'];
    if (transferEncoding !== undefined) lines.push(`transfer-encoding: ${transferEncoding}`);
    else if (contentLength !== undefined) lines.push(`content-length: ${contentLength}`);
    if (this.#isWebSocket) lines.push('connection: Upgrade', 'upgrade: websocket');
    else lines.push('connection: close');
    upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (this.#head.length > 0) {
      this.#bytesIn += this.#head.length;
      upstream.write(this.#head);
      this.#head = Buffer.alloc(0);
    }
    this.#awaitResponse(upstream);
  }

  #awaitResponse(upstream: Socket): void {
    const runtime = this.#runtime!;
    let buffered: Buffer = Buffer.alloc(0);
    const headersTimer = setTimeout(() => upstream.destroy(Object.assign(new Error('first byte timeout'), { code: 'UND_ERR_HEADERS_TIMEOUT' })), runtime.headersTimeoutMs);
    headersTimer.unref();
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf(HEAD_END);
      if (end < 0) {
        if (buffered.length > MAX_RESPONSE_HEAD) upstream.destroy(Object.assign(new Error('response head too large'), { code: 'HPE_HEADER_OVERFLOW' }));
        return;
      }
      clearTimeout(headersTimer);
      upstream.off('data', onData);
      upstream.off('error', onError);
      upstream.off('end', onEnd);
      const statusLine = buffered.toString('latin1', 0, Math.min(buffered.indexOf('\r\n'), 64));
      this.#status = Number(statusLine.split(' ')[1]) || 502;
      this.#ttfb = performance.now() - this.#startMs;
      this.#tunnelUp(upstream, buffered);
    };
    const onError = (err: NodeJS.ErrnoException) => {
      clearTimeout(headersTimer);
      if (this.#done) return;
      this.#ctx.metrics.upstreamErrors.labels(runtime.shared.label, err.code === 'UND_ERR_HEADERS_TIMEOUT' ? 'timeout' : 'reset').inc();
      this.fail(new GatewayError(err.code === 'UND_ERR_HEADERS_TIMEOUT' ? 'GW_UPSTREAM_TIMEOUT' : 'GW_UPSTREAM_UNAVAILABLE', { cause: err }));
    };
    const onEnd = () => onError(Object.assign(new Error('upstream closed before answering'), { code: 'ECONNRESET' }));
    upstream.on('data', onData);
    upstream.once('error', onError);
    upstream.once('end', onEnd);
    // The client may send more (a body of a non-WebSocket upgrade) before the answer.
    this.#client.on('data', (chunk: Buffer) => {
      this.#bytesIn += chunk.length;
    });
    this.#client.pipe(upstream);
  }

  #tunnelUp(upstream: Socket, firstBytes: Buffer): void {
    const client = this.#client;
    const runtime = this.#runtime!;
    if (this.#done) {
      upstream.destroy();
      return;
    }
    this.#open = true;
    this.#tunnel = { client, upstream };
    this.#proxy.track(this.#tunnel);
    if (this.#status === 101) this.#ctx.metrics.openWebSockets.labels(runtime.shared.label).inc();
    upstream.on('data', (chunk: Buffer) => {
      this.#bytesOut += chunk.length;
    });
    this.#bytesOut += firstBytes.length;
    client.write(firstBytes);
    upstream.pipe(client);
    upstream.on('error', () => this.#close());
    upstream.on('close', () => this.#close());
    const idle = this.#proxy.options.idleTimeoutMs;
    const onIdle = () => {
      this.#closeReason = 'idle_timeout';
      this.#close();
    };
    (client as Socket).setTimeout?.(idle, onIdle);
    upstream.setTimeout(idle, onIdle);
  }

  /** A gateway error before the upstream answered: JSON on the raw socket, then close. */
  fail(err: unknown): void {
    if (this.#done) return;
    if (!isGatewayError(err)) this.#ctx.logger.error({ err, request_id: this.requestId }, 'internal error in the WebSocket proxy');
    if (this.requestId === '') this.requestId = randomUUID();
    const http = toHttp(err, this.requestId);
    this.#status = http.status;
    this.#errCode = http.code;
    this.#ctx.metrics.gatewayErrors.labels(http.code).inc();
    const client = this.#client;
    if (client.writable && !this.#open) {
      let head = `HTTP/1.1 ${http.status} ${REASONS[http.status] ?? 'Error'}\r\n`;
      for (const [name, value] of Object.entries(http.headers)) head += `${name}: ${value}\r\n`;
      head += `x-request-id: ${this.requestId}\r\ncontent-length: ${Buffer.byteLength(http.body)}\r\nconnection: close\r\n\r\n`;
      client.end(head + http.body);
    } else {
      client.destroy();
    }
    this.#upstream?.destroy();
    this.#close();
  }

  #releaseRoute(): void {
    if (this.#route !== null) {
      this.#route.outstanding--;
      this.#route = null;
    }
  }

  #close(): void {
    if (this.#done) {
      return;
    }
    this.#done = true;
    if (this.#tunnel !== null) this.#proxy.untrack(this.#tunnel);
    if (!this.#open && this.#status === 0) this.#status = 499;
    const upstream = this.#upstream;
    // Let what is written flush, then make sure nothing stays half-open.
    if (upstream !== null && !upstream.destroyed) upstream.end(() => upstream.destroy());
    if (!this.#client.destroyed) {
      if (this.#open) this.#client.end(() => this.#client.destroy());
    }
    setTimeout(() => {
      upstream?.destroy();
      if (this.#open) this.#client.destroy();
    }, 1000).unref();
    this.#releaseRoute();
    const runtime = this.#runtime;
    const ctx = this.#ctx;
    if (this.#open && this.#status === 101 && runtime !== null) ctx.metrics.openWebSockets.labels(runtime.shared.label).dec();
    const durationMs = performance.now() - this.#startMs;
    if (runtime !== null) runtime.shared.record(this.#status, durationMs / 1000);
    else ctx.recordUnrouted(this.#status, durationMs / 1000);
    if (ctx.accessLog) {
      ctx.accessLogger.info(
        {
          request_id: this.requestId,
          method: this.#req.method,
          path: pathOnly(this.#path),
          endpoint: runtime?.name,
          route: this.#routeId,
          status: this.#status,
          upgrade: this.#isWebSocket ? 'websocket' : 'other',
          bytes_in: this.#bytesIn,
          bytes: this.#bytesOut,
          duration_ms: Math.round(durationMs * 1000) / 1000,
          ttfb_ms: this.#ttfb < 0 ? undefined : Math.round(this.#ttfb * 1000) / 1000,
          err_code: this.#errCode,
          close_reason: this.#closeReason,
        },
        'request',
      );
    }
  }
}

function pathOnly(target: string): string {
  const q = target.indexOf('?');
  return q < 0 ? target : target.slice(0, q);
}

/** Owns every open tunnel of one gateway instance, so a drain can close them. */
export class WebSocketProxy {
  readonly #tunnels = new Set<Tunnel>();

  constructor(
    private readonly ctx: ProxyContext,
    readonly options: WebSocketProxyOptions,
  ) {}

  /** node:http 'upgrade' listener. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.ctx.draining) {
      socket.destroy();
      return;
    }
    (socket as Socket).setNoDelay?.(true);
    new UpgradeExchange(this, this.ctx, req, socket, head).begin();
  }

  track(t: Tunnel): void {
    this.#tunnels.add(t);
  }

  untrack(t: Tunnel): void {
    this.#tunnels.delete(t);
  }

  get size(): number {
    return this.#tunnels.size;
  }

  /** Closes every open tunnel (drain, stop). */
  closeAll(): void {
    for (const t of this.#tunnels) {
      t.client.destroy();
      t.upstream?.destroy();
    }
    this.#tunnels.clear();
  }
}
