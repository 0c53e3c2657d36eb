import { randomUUID } from 'node:crypto';
import { ServerResponse, createServer, type IncomingMessage, type Server } from 'node:http';
import type { Http2SecureServer, Http2Session } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { Settings } from '../config/settings.js';
import type { GatewayErrorCode } from '../errors/gateway-error.js';
import { GatewayError } from '../errors/gateway-error.js';
import { toHttp } from '../errors/to-http.js';
import { AccessLog, pinoAccessSink } from '../obs/access-log.js';
import { EndpointLabeler } from '../obs/metrics.js';
import { EndpointCache } from '../routing/endpoint-cache.js';
import type { Store } from '../store/store.js';
import type { LimitsChannel } from '../traffic/ipc-limits.js';
import { TrafficControl } from '../traffic/traffic-control.js';
import { PoolRegistry } from '../upstream/pool-registry.js';
import { isValidHostValue } from './addressing.js';
import { EndpointRuntimeCompiler, type EndpointRuntime } from './endpoint-runtime.js';
import { Exchange } from './exchange.js';
import { LoadReporter } from './load-reporter.js';
import { createProxyContext, type ProxyContext, type ProxyDeps } from './proxy-context.js';
import { writeRawError } from './raw-response.js';
import { TunnelSet } from './tunnel.js';
import { isWebSocketUpgrade, plainRequestHead } from './upgrade.js';
import type { CertificateStore } from '../tls/certificates.js';
import { createSecureDataServer } from '../tls/secure-server.js';

export interface GatewayServerOptions extends ProxyDeps {
  settings: Settings;
  store: Store;
  /** Cluster worker on the embedded store: traffic limits are counted by the primary over this channel. */
  limitsChannel?: LimitsChannel;
  /** TLS_CERT_FILE & co: the listener speaks TLS with HTTP/2 and HTTP/1.1 (ALPN). */
  certificates?: CertificateStore;
  /** UPSTREAM_CA_FILE's PEM text: trusted for https:// routes besides the system CAs. */
  upstreamCa?: string;
}

const kOverCap = Symbol('modelgate.overCap');
/** A connection handed back to node:http after a non-WebSocket upgrade: already counted. */
const kReinjected = Symbol('modelgate.reinjected');
type OverCapSocket = Socket & { [kOverCap]?: boolean; [kReinjected]?: boolean };

/** Tunnels are re-checked this often, so a revoked token closes them within ~1 s of reaching the instance. */
const TUNNEL_REVALIDATE_MS = 1000;

const JSON_HEADERS = { 'content-type': 'application/json', 'cache-control': 'no-store' };
/**
 * The public /readyz says only that the store is down: the store's own reason names its address
 * (Redis host:port, the data folder). That detail goes to the logs and the admin /healthz.
 */
const PUBLIC_STORE_DOWN = 'store unreachable';

/** Status and code for the errors node:http's parser raises before a request exists. */
function clientErrorFor(err: NodeJS.ErrnoException): { status: number; code: GatewayErrorCode } {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, code: 'GW_HEADERS_TOO_LARGE' };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { status: 408, code: 'GW_BAD_REQUEST' };
    default:
      return { status: 400, code: 'GW_BAD_REQUEST' };
  }
}

/** The route-table snapshot of this instance, compiling each table into an EndpointRuntime. */
function createEndpointCache(
  opts: GatewayServerOptions,
  pools: PoolRegistry,
  loadReporter: LoadReporter,
  labeler: EndpointLabeler,
): { cache: EndpointCache<EndpointRuntime>; compiler: EndpointRuntimeCompiler } {
  const { settings: s, metrics, logger, store } = opts;
  const compiler = new EndpointRuntimeCompiler(
    pools,
    {
      connectTimeoutMs: s.CONNECT_TIMEOUT_MS,
      headersTimeoutMs: s.FIRST_BYTE_TIMEOUT_MS,
      bodyTimeoutMs: s.IDLE_TIMEOUT_MS,
      maxConcurrentPerEndpoint: s.MAX_CONCURRENT_PER_ENDPOINT,
      holdQueueMax: s.HOLD_QUEUE_MAX,
    },
    metrics,
    labeler,
    loadReporter,
    logger,
  );
  const cache = new EndpointCache({
    store,
    compiler,
    logger,
    metrics,
    max: s.ENDPOINT_CACHE_MAX,
    negativeTtlMs: s.NEGATIVE_CACHE_TTL_MS,
    resyncIntervalMs: s.RESYNC_INTERVAL_MS,
    // Health-checked endpoints are probed from the moment they are written, not from their
    // first request (a text search: no JSON parsing for the other endpoints' events).
    eagerLoad: (raw) => raw.includes('"health_check"'),
  });
  return { cache, compiler };
}

/**
 * The data plane: a node:http server whose request handler is an Exchange per request, fed by
 * this instance's route-table snapshot. Owns the pools and the drain.
 */
export class GatewayServer {
  readonly server: Server | Http2SecureServer;
  /** Open HTTP/2 client sessions (TLS listener only), closed gracefully on drain. */
  readonly #sessions = new Set<Http2Session>();
  /** Every accepted socket of the TLS listener (it has no closeAllConnections). */
  readonly #tlsSockets = new Set<Socket>();
  /** GATEWAY_HTTP_PORT's listener, when TLS runs and a plain port is kept too. */
  #plain: Server | null = null;
  readonly endpoints: EndpointCache<EndpointRuntime>;
  readonly pools: PoolRegistry;
  readonly traffic: TrafficControl;
  /** Open WebSocket tunnels. */
  readonly tunnels: TunnelSet;
  /** Load of autoscaled endpoints for the controller (docs/model-services.md, autoscaling). */
  readonly loadReporter: LoadReporter;
  readonly #ctx: ProxyContext;
  readonly #opts: GatewayServerOptions;
  #drainWaiters: (() => void)[] = [];
  readonly #compiler: EndpointRuntimeCompiler;
  #connections = 0;

  constructor(opts: GatewayServerOptions) {
    this.#opts = opts;
    const s = opts.settings;
    this.pools = new PoolRegistry({
      connections: s.UPSTREAM_POOL_CONNECTIONS,
      connectTimeoutMs: s.CONNECT_TIMEOUT_MS,
      headersTimeoutMs: s.FIRST_BYTE_TIMEOUT_MS,
      bodyTimeoutMs: s.IDLE_TIMEOUT_MS,
      extraCa: opts.upstreamCa,
      client: s.UPSTREAM_CLIENT,
    });
    const loadReporter = new LoadReporter({ store: opts.store, logger: opts.logger });
    this.loadReporter = loadReporter;
    const labeler = new EndpointLabeler(s.METRICS_ENDPOINT_LABEL_CAP);
    const { cache, compiler } = createEndpointCache(opts, this.pools, loadReporter, labeler);
    // A health-checked route that comes back wakes the requests held for it.
    compiler.onRouteRecovered = (runtime) => this.#wakeHeld(runtime, undefined);
    this.#compiler = compiler;
    this.endpoints = cache;
    this.tunnels = new TunnelSet(TUNNEL_REVALIDATE_MS);
    this.#followEndpointUpdates();
    const { metrics, logger, store } = opts;
    this.traffic = new TrafficControl({
      store,
      logger,
      metrics,
      redis: s.REDIS_URL ? { url: s.REDIS_URL, prefix: s.REDIS_PREFIX } : undefined,
      ipc: opts.limitsChannel,
      bodyLimitBytes: s.BODY_LIMIT_BYTES,
    });
    this.traffic.labelOf = (name) => labeler.label(name);
    const accessSink = opts.accessLogger ?? pinoAccessSink(logger);
    if (accessSink instanceof AccessLog) metrics.accessLogDroppedSource = () => accessSink.dropped;
    this.#ctx = createProxyContext(s, { ...opts, accessLogger: accessSink }, this.endpoints, this.tunnels, this.traffic, {
      respondReadyz: (res) => this.#respondReadyz(res),
      onRequestFinished: () => this.#onRequestFinished(),
      wakeScaled: (runtime) => loadReporter.wake(runtime.name, runtime.shared),
    });
    const handler = (req: IncomingMessage, res: ServerResponse) => this.#handle(req, res);
    this.server = opts.certificates ? this.#secureServer(opts.certificates, handler) : this.#plainServer(handler);
    this.#wire(this.server, opts.certificates !== undefined);
  }

  /** Held requests wake, tunnels are re-checked, and the store-events lag is measured on each table change. */
  #followEndpointUpdates(): void {
    const { metrics } = this.#opts;
    const tunnels = this.tunnels;
    this.endpoints.onUpdate((_name, runtime, previous) => this.#wakeHeld(runtime, previous));
    this.endpoints.onUpdate((name, runtime) => {
      if (tunnels.size > 0) tunnels.endpointChanged(name, runtime);
    });
    // Store events lag: write time of a changed table → applied here (docs/metrics.md).
    const lag = metrics.storeEventLag;
    this.endpoints.onUpdate((_name, runtime, previous) => {
      if (runtime === null || previous === undefined || runtime.table.version <= previous.table.version) return;
      const at = runtime.table.updated_at === undefined ? NaN : Date.parse(runtime.table.updated_at);
      if (Number.isFinite(at)) lag.observe(Math.max(0, Date.now() - at) / 1000);
    });
    metrics.lastResyncAt = () => this.endpoints.lastResyncOk;
    // Read when /metrics is scraped, not kept up to date per request.
    metrics.inFlightSource = () => this.#ctx.inFlight;
  }

  #onRequestFinished(): void {
    if (this.#ctx.inFlight === 0 && this.#drainWaiters.length > 0) {
      const waiters = this.#drainWaiters;
      this.#drainWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** TLS_CERT_FILE & co: HTTP/2 and HTTP/1.1 by ALPN on one port, certificates reloaded on change. */
  #secureServer(certificates: CertificateStore, handler: (req: IncomingMessage, res: ServerResponse) => void): Http2SecureServer {
    const s = this.#opts.settings;
    const { metrics, logger } = this.#opts;
    const secure = createSecureDataServer(
      {
        certificates,
        maxHeaderBytes: s.MAX_HEADER_BYTES,
        h2: {
          maxConcurrentStreams: s.H2_MAX_CONCURRENT_STREAMS,
          maxHeaderListBytes: s.MAX_HEADER_BYTES,
          maxEarlyResets: s.H2_MAX_EARLY_RESETS,
          resetWindowMs: 10_000,
        },
        onRapidReset: (session) => {
          metrics.gatewayErrors.labels('GW_BAD_REQUEST').inc();
          logger.warn({ peer: session.socket?.remoteAddress }, 'closed an HTTP/2 connection: too many streams reset before their response (rapid reset)');
        },
      },
      handler,
    );
    // HTTP/1.1 connections on the TLS port run node:http's parser, which reads these from the server.
    const asHttp1 = secure as unknown as Server;
    asHttp1.headersTimeout = s.HEADERS_TIMEOUT_MS;
    asHttp1.requestTimeout = s.REQUEST_BODY_TIMEOUT_MS;
    asHttp1.keepAliveTimeout = s.KEEP_ALIVE_TIMEOUT_MS;
    secure.on('session', (session: Http2Session) => {
      this.#sessions.add(session);
      session.once('close', () => this.#sessions.delete(session));
    });
    secure.on('secureConnection', (socket: TLSSocket) => {
      this.#tlsSockets.add(socket);
      socket.once('close', () => this.#tlsSockets.delete(socket));
    });
    // A failed handshake (plain HTTP to the TLS port, an old protocol version) is the
    // client's problem: close quietly.
    secure.on('tlsClientError', (_err: Error, socket: TLSSocket) => socket.destroy());
    // Rotation: new handshakes get the new files; open connections keep theirs.
    certificates.watch(
      (pair) => {
        secure.setSecureContext({ cert: pair.cert, key: pair.key });
        logger.info({ not_after: pair.notAfter.toISOString(), sni_names: certificates.sniNames.length }, 'TLS certificates reloaded');
      },
      (err) => logger.error({ err_message: err.message }, 'TLS certificates not reloaded; the previous ones stay in use'),
    );
    return secure;
  }

  /** The node:http listener (the data plane without TLS, or GATEWAY_HTTP_PORT beside it). */
  #plainServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Server {
    const s = this.#opts.settings;
    return createServer(
      {
        maxHeaderSize: s.MAX_HEADER_BYTES,
        headersTimeout: s.HEADERS_TIMEOUT_MS,
        requestTimeout: s.REQUEST_BODY_TIMEOUT_MS,
        keepAliveTimeout: s.KEEP_ALIVE_TIMEOUT_MS,
        // The Exchange enforces RFC 9112's Host rules itself, so the refusal is our JSON 400
        // (node's own is an empty 400) and the connection closes.
        requireHostHeader: false,
        // node checks headersTimeout/requestTimeout only this often (default 30 s, which would
        // let a dribbling client hold a socket for up to 30 s past HEADERS_TIMEOUT_MS).
        connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(Math.min(s.HEADERS_TIMEOUT_MS, s.REQUEST_BODY_TIMEOUT_MS) / 4))),
        joinDuplicateHeaders: false,
        insecureHTTPParser: false,
        noDelay: true,
      },
      handler,
    );
  }

  /** Connection admission and the errors node raises before a request exists, for either listener. */
  #wire(server: Server | Http2SecureServer, tls: boolean): void {
    const s = this.#opts.settings;
    // Not server.maxConnections: node would drop the socket without a word. Over the cap a
    // connection gets the design's 503 GW_OVERLOADED and is closed.
    server.prependListener('connection', (socket: Socket) => this.#admitConnection(socket, s.MAX_CONNECTIONS, tls));
    // node keeps at most this many header lines (and silently drops the rest); one more than
    // the limit lets the Exchange see the excess and answer 431 instead.
    (server as Server).maxHeadersCount = s.MAX_HEADER_COUNT + 1;
    // CONNECT is never proxied; without a listener node would just drop the socket.
    server.on('connect', (_req: IncomingMessage, socket: Socket) => this.#refuseConnect(socket));
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.#onClientError(err, socket));
    server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.#handleUpgrade(server, req, socket, head));
  }

  /**
   * GATEWAY_HTTP_PORT beside the TLS listener: the same gateway in plain HTTP, or (redirect)
   * only /healthz and /readyz, every other request sent to https:// with a 308 (method and
   * body kept, unlike 301).
   */
  async listenPlain(port: number, host: string, redirectToPort: number | null): Promise<AddressInfo> {
    const proxy = (req: IncomingMessage, res: ServerResponse) => this.#handle(req, res);
    const handler =
      redirectToPort === null
        ? proxy
        : (req: IncomingMessage, res: ServerResponse) => {
            const path = req.url ?? '/';
            if (path === '/healthz' || path === '/readyz') return proxy(req, res);
            const hostHeader = req.headers.host;
            if (!hostHeader || !isValidHostValue(hostHeader)) return proxy(req, res); // the Exchange answers 400
            const bare = hostHeader.startsWith('[') ? hostHeader.slice(0, hostHeader.indexOf(']') + 1) : hostHeader.split(':')[0];
            const location = `https://${bare}${redirectToPort === 443 ? '' : `:${redirectToPort}`}${path.startsWith('/') ? path : '/'}`;
            res.writeHead(308, { location, 'content-length': 0, 'cache-control': 'no-store' });
            res.end();
          };
    const plain = this.#plainServer(handler);
    this.#wire(plain, false);
    this.#plain = plain;
    return new Promise((resolve, reject) => {
      plain.once('error', reject);
      plain.listen(port, host, () => {
        plain.off('error', reject);
        resolve(plain.address() as AddressInfo);
      });
    });
  }

  /**
   * node:http hands every `Connection: Upgrade` request here with its raw socket. A WebSocket
   * handshake runs the common life cycle (Exchange.upgrade); any other upgrade (`h2c`, ...) is
   * given back to node:http without its Upgrade header, so it is parsed and proxied as the plain
   * request it falls back to, body limits and all.
   */
  #handleUpgrade(server: Server | Http2SecureServer, req: IncomingMessage, socket: Socket, head: Buffer): void {
    // An upgrade pipelined behind a request whose response is still being written: the two
    // cannot share the socket, and a client that waits for its answers never does this.
    const pending = (socket as Socket & { _httpMessage?: unknown })._httpMessage;
    if ((socket as OverCapSocket)[kOverCap] === true || this.#ctx.draining || (pending !== null && pending !== undefined)) {
      socket.destroy();
      return;
    }
    if (!isWebSocketUpgrade(req)) {
      (socket as OverCapSocket)[kReinjected] = true;
      if (head.length > 0) socket.unshift(head);
      socket.unshift(plainRequestHead(req));
      // node:http takes a plain socket on 'connection', a TLS one (https) on 'secureConnection'.
      server.emit(socket instanceof TLSSocket ? 'secureConnection' : 'connection', socket);
      return;
    }
    socket.setNoDelay(true);
    Exchange.upgrade(this.#ctx, req, socket, head, new ServerResponse(req)).begin();
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    if ((req.socket as OverCapSocket)[kOverCap] === true) {
      res.destroy();
      return;
    }
    new Exchange(this.#ctx, req, res).begin();
  }

  #admitConnection(socket: Socket, max: number, tls: boolean): void {
    if ((socket as OverCapSocket)[kReinjected] === true) return;
    if (this.#connections >= max) {
      (socket as OverCapSocket)[kOverCap] = true;
      // Before the handshake there is no way to send an HTTP answer over TLS.
      if (tls) {
        this.#opts.metrics.gatewayErrors.labels('GW_OVERLOADED').inc();
        socket.destroy();
        return;
      }
      socket.on('error', () => socket.destroy());
      this.#writeRawError(socket, new GatewayError('GW_OVERLOADED', { retryAfterSeconds: 1, detail: 'connection limit' }));
      return;
    }
    this.#connections++;
    socket.once('close', () => this.#connections--);
  }

  #wakeHeld(runtime: EndpointRuntime | null, previous: EndpointRuntime | undefined): void {
    const shared = (runtime ?? previous)?.shared;
    if (!shared || shared.heldCount === 0) return;
    const held = shared.held;
    if (runtime !== null && runtime.candidates.size === 0) return;
    const waiting = held.splice(0, held.length);
    for (const w of waiting) w.wake(runtime);
  }

  #refuseConnect(socket: Socket): void {
    socket.on('error', () => socket.destroy());
    this.#writeRawError(socket, new GatewayError('GW_METHOD_NOT_ALLOWED', { message: 'CONNECT is not proxied' }));
  }

  /** A JSON error written straight to a socket that has no ServerResponse, then closed. */
  #writeRawError(socket: Socket, err: GatewayError, status?: number): void {
    const requestId = randomUUID();
    const http = toHttp(err, requestId);
    this.#opts.metrics.gatewayErrors.labels(http.code).inc();
    writeRawError(socket, http, requestId, status);
  }

  #onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    // A response already started on this socket (e.g. requestTimeout firing while an upstream
    // answer streams): raw bytes would corrupt it, so only close.
    const current = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || current?.headersSent === true) {
      socket.destroy();
      return;
    }
    const { status, code } = clientErrorFor(err);
    this.#opts.logger.debug({ err_code: err.code }, 'rejected a malformed request');
    this.#writeRawError(socket, new GatewayError(code, code === 'GW_BAD_REQUEST' && status === 400 ? { message: 'malformed HTTP request' } : {}), status);
  }

  #respondReadyz(res: ServerResponse): void {
    const health = this.#opts.store.health();
    let status: number;
    let body: Record<string, unknown>;
    if (this.#ctx.draining) {
      status = 503;
      body = { status: 'draining' };
    } else if (health.up) {
      status = 200;
      body = { status: 'ready', store: 'up' };
    } else if (this.endpoints.size > 0 || this.endpoints.lastResyncOk > 0) {
      status = 200;
      body = { status: 'degraded', store: 'down', reason: PUBLIC_STORE_DOWN };
    } else {
      status = 503;
      body = { status: 'unavailable', store: 'down', reason: PUBLIC_STORE_DOWN };
    }
    res.writeHead(status, JSON_HEADERS);
    res.end(JSON.stringify(body));
  }

  #stopProbes(): void {
    for (const runtime of this.endpoints.values()) this.#compiler.stopProbes(runtime);
  }

  #closeIdle(): void {
    (this.server as Server).closeIdleConnections?.();
    this.#plain?.close();
    this.#plain?.closeIdleConnections();
    // GOAWAY: the client opens no new stream here; the ones in flight finish.
    for (const session of this.#sessions) session.close();
  }

  #closeAll(): void {
    if (this.server instanceof Object && 'closeAllConnections' in this.server && typeof this.server.closeAllConnections === 'function') {
      this.server.closeAllConnections();
    }
    for (const session of this.#sessions) session.destroy();
    for (const socket of this.#tlsSockets) socket.destroy();
    this.#plain?.close();
    this.#plain?.closeAllConnections();
  }

  /** Requests in flight on this instance (excluding held ones). */
  get inFlight(): number {
    return this.#ctx.inFlight;
  }

  /** In flight now for one endpoint and each of its routes on this instance (console charts); null when not loaded here. */
  endpointLoad(name: string): { inFlight: number; routes: { id: string; in_flight: number }[] } | null {
    const runtime = this.endpoints.get(name);
    if (!runtime) return null;
    return { inFlight: runtime.shared.inFlight, routes: runtime.routes.map((r) => ({ id: r.id, in_flight: r.outstanding })) };
  }

  get draining(): boolean {
    return this.#ctx.draining;
  }

  start(): void {
    this.endpoints.start();
    this.traffic.start();
    this.loadReporter.start();
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /**
   * Graceful drain: stop accepting, let in-flight requests and streams finish (up to graceMs),
   * then close what is left. /readyz answers 503 from the first moment.
   */
  async drain(graceMs: number): Promise<void> {
    this.#ctx.draining = true;
    // A WebSocket has no end to wait for: its clients are told to go (1001) and reconnect elsewhere.
    this.tunnels.closeAll();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.#closeIdle();
    if (this.#ctx.inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        timer.unref();
        this.#drainWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    this.#closeAll();
    this.tunnels.closeAll();
    await closed;
    this.loadReporter.stop();
    this.endpoints.stop();
    this.#stopProbes();
    await this.traffic.stop();
    this.#opts.certificates?.close();
    await this.pools.closeAll();
    await this.#ctx.tracer.shutdown().catch(() => {});
  }

  /** Immediate stop (tests). */
  async close(): Promise<void> {
    this.#ctx.draining = true;
    this.loadReporter.stop();
    this.endpoints.stop();
    this.#stopProbes();
    this.#closeAll();
    this.tunnels.closeAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.pools.destroyAll();
    await this.traffic.stop();
    this.#opts.certificates?.close();
    await this.#ctx.tracer.shutdown().catch(() => {});
  }
}
