import type { IncomingMessage, ServerResponse } from 'node:http';
import { constants as h2constants, createSecureServer, type Http2SecureServer, type Http2Session, type ServerHttp2Stream } from 'node:http2';
import type { CertificateStore } from './certificates.js';

/**
 * The TLS listener: HTTP/2 and HTTP/1.1 on one port, chosen by ALPN (`h2`, then `http/1.1`;
 * a client without ALPN gets HTTP/1.1). HTTP/1.1 requests arrive as node:http's own
 * IncomingMessage/ServerResponse, HTTP/2 streams through node's compatibility API, so one
 * request handler serves both.
 */

export interface H2Limits {
  /** SETTINGS_MAX_CONCURRENT_STREAMS advertised to each client connection. */
  maxConcurrentStreams: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE: the h2 counterpart of MAX_HEADER_BYTES. */
  maxHeaderListBytes: number;
  /**
   * Rapid-reset protection (CVE-2023-44487): streams a client may cancel before their response
   * started, per connection and per `resetWindowMs`; past it the connection gets GOAWAY
   * (ENHANCE_YOUR_CALM) and is closed.
   */
  maxEarlyResets: number;
  resetWindowMs: number;
}

export interface SecureServerOptions {
  certificates: CertificateStore;
  h2: H2Limits;
  /** node:http options applied to HTTP/1.1 connections too. */
  maxHeaderBytes: number;
  /** Called when a client connection is closed for too many early resets. */
  onRapidReset?: (session: Http2Session) => void;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface ResetCounter {
  windowStart: number;
  count: number;
}
const kResets = Symbol('modelgate.h2resets');
type CountedSession = Http2Session & { [kResets]?: ResetCounter };

export function createSecureDataServer(opts: SecureServerOptions, handler: Handler): Http2SecureServer {
  const pair = opts.certificates.defaultPair;
  const server = createSecureServer(
    {
      allowHTTP1: true,
      cert: pair.cert,
      key: pair.key,
      SNICallback: opts.certificates.sniCallback,
      minVersion: 'TLSv1.2',
      // node's default cipher list (no RC4/3DES, forward secrecy first) is kept on purpose.
      maxHeaderSize: opts.maxHeaderBytes,
      settings: {
        maxConcurrentStreams: opts.h2.maxConcurrentStreams,
        maxHeaderListSize: opts.h2.maxHeaderListBytes,
        enablePush: false,
      },
      // Streams refused because the client ignored maxConcurrentStreams: a small count ends
      // the session (node's default is 100).
      maxSessionRejectedStreams: 100,
      maxSessionInvalidFrames: 1000,
    } as Parameters<typeof createSecureServer>[0],
    handler as unknown as Parameters<typeof createSecureServer>[1],
  );
  server.on('session', (session: CountedSession) => {
    session.on('error', () => session.destroy());
  });
  server.on('stream', (stream: ServerHttp2Stream) => {
    const session = stream.session as CountedSession | undefined;
    if (!session) return;
    stream.once('close', () => {
      // An early reset: the client cancelled (RST_STREAM) before any response header went out.
      if (stream.headersSent || stream.rstCode === h2constants.NGHTTP2_NO_ERROR) return;
      const now = Date.now();
      let counter = session[kResets];
      if (counter === undefined || now - counter.windowStart > opts.h2.resetWindowMs) {
        counter = { windowStart: now, count: 0 };
        session[kResets] = counter;
      }
      if (++counter.count > opts.h2.maxEarlyResets && !session.closed && !session.destroyed) {
        opts.onRapidReset?.(session);
        session.goaway(h2constants.NGHTTP2_ENHANCE_YOUR_CALM);
        session.destroy();
      }
    });
  });
  return server;
}
