import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createAdaptorServer } from '@hono/node-server';
import type { CertificateStore } from '../tls/certificates.js';
import { GatewayError } from '../errors/gateway-error.js';
import { toHttp } from '../errors/to-http.js';
import { isSafeRequestId } from '../lib/headers.js';
import type { AdminApp } from './mount.js';
import { AdminHostPolicy } from './host-policy.js';

/**
 * The admin listener: hono behind a small node:http guard that runs before hono builds a
 * web Request. It answers only to the listener's own Host names (421 ADM_MISDIRECTED
 * otherwise, see host-policy.ts) and turns an absolute-form request-target into origin-form,
 * refusing one with userinfo (`http://user:pw@host/...`) with 400 ADM_INVALID: the WHATWG
 * Request constructor throws on credentials, which used to surface as a 500 with a stack.
 */

export interface AdminListenOptions {
  host: string;
  port: number;
  allowedHosts: readonly string[];
  /** ADMIN_TLS_CERT_FILE & co: HTTPS, the pair re-read when its files change. */
  certificates?: CertificateStore;
  onCertificateError?: (err: Error) => void;
}

function refuse(req: IncomingMessage, res: ServerResponse, err: GatewayError): void {
  const given = req.headers['x-request-id'];
  const requestId = typeof given === 'string' && isSafeRequestId(given) ? given : randomUUID();
  const http = toHttp(err, requestId, 'ADM_INTERNAL');
  // The request is refused before its body was read: close rather than drain it.
  res.writeHead(http.status, { ...http.headers, 'x-request-id': requestId, connection: 'close' });
  res.end(http.body);
}

/** Origin-form path of an absolute-form target plus its authority, or why it is refused. */
function splitAbsoluteForm(target: string): { path: string; host: string } | GatewayError {
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return new GatewayError('ADM_INVALID', { message: 'request-target is neither a path nor an absolute http URL' });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return new GatewayError('ADM_INVALID', { message: 'request-target must be a path or an http(s) URL' });
  }
  if (url.username !== '' || url.password !== '') {
    return new GatewayError('ADM_INVALID', { message: 'request-target must not carry user information' });
  }
  return { path: `${url.pathname}${url.search}`, host: url.host };
}

export function guardAdminRequests(policy: AdminHostPolicy, next: RequestListener): RequestListener {
  return function adminGuard(req, res) {
    const target = req.url ?? '/';
    let host = req.headers.host;
    if (!target.startsWith('/')) {
      const split = splitAbsoluteForm(target);
      if (split instanceof GatewayError) return refuse(req, res, split);
      // RFC 9112 §3.2.2: the target's authority replaces Host.
      req.url = split.path;
      req.headers.host = split.host;
      host = split.host;
    }
    if (!policy.allows(host, req.socket.localAddress)) return refuse(req, res, new GatewayError('ADM_MISDIRECTED'));
    return next(req, res);
  };
}

/** Starts the admin listener; resolves once it listens. */
export async function listenAdmin(app: AdminApp, opts: AdminListenOptions): Promise<Server> {
  const policy = new AdminHostPolicy({ adminHost: opts.host, allowedHosts: opts.allowedHosts });
  const certificates = opts.certificates;
  const server = createAdaptorServer({
    fetch: app.fetch,
    createServer: ((options: object, listener: RequestListener) => {
      const guarded = guardAdminRequests(policy, listener);
      if (!certificates) return createServer(options, guarded);
      const pair = certificates.defaultPair;
      const secure = createHttpsServer({ ...options, cert: pair.cert, key: pair.key, minVersion: 'TLSv1.2' }, guarded);
      certificates.watch((next) => secure.setSecureContext({ cert: next.cert, key: next.key }), opts.onCertificateError ?? (() => {}));
      secure.once('close', () => certificates.close());
      return secure;
    }) as typeof createServer,
  }) as Server;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (typeof address === 'object' && address) policy.addBoundAddress(address.address);
  return server;
}
