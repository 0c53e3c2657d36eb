import type { IncomingMessage } from 'node:http';
import { GatewayError } from '../errors/gateway-error.js';
import { HOP_BY_HOP, connectionListedHeaders, dropListed } from '../lib/headers.js';
import { AddressKind, hasDotSegment, isValidHostValue, splitAbsoluteForm, type Address, type Addresser } from './addressing.js';

/**
 * The request head as the gateway sees it, read in one pass over node's raw headers: the few
 * values the gateway acts on, and the headers it forwards (hop-by-hop headers, the
 * client-address headers only the gateway may set, and Authorization removed). Shared by the
 * HTTP exchange and the WebSocket upgrade path so both apply the same hardening.
 */
export class RequestHead {
  host: string | undefined;
  authorization: string | undefined;
  xForwardedFor: string | undefined;
  /** X-Forwarded-Proto from the client; used only when the peer is a trusted proxy. */
  xForwardedProto: string | undefined;
  /** Raw X-Request-Id from the client (validated by the caller). */
  requestId: string | undefined;
  transferEncoding: string | undefined;
  upgrade: string | undefined;
  /** Via from the client (every line, joined): counts the gateways the request already passed. */
  via: string | undefined;
  contentLength = -1;
  /** A CORS preflight: OPTIONS with Origin and Access-Control-Request-Method, and no body. */
  isPreflight = false;
  /** Flat [name, value, ...] list to forward. */
  readonly forward: string[] = [];

  get hasBody(): boolean {
    return this.transferEncoding !== undefined || this.contentLength > 0;
  }
}

/** Thrown for a head that must be refused and its connection closed (framing may be ambiguous). */
export function headRefusal(message: string): GatewayError {
  return new GatewayError('GW_BAD_REQUEST', { message, closeConnection: true });
}

/** Headers a CORS preflight needs upstream; a private endpoint's tokenless preflight gets only these. */
const PREFLIGHT_HEADERS: ReadonlySet<string> = new Set([
  'origin',
  'access-control-request-method',
  'access-control-request-headers',
  'access-control-request-private-network',
]);

/** Keeps only what a preflight needs in a forward list (in place). */
export function keepPreflightHeaders(flat: string[]): void {
  let w = 0;
  for (let r = 0; r < flat.length; r += 2) {
    if (!PREFLIGHT_HEADERS.has(flat[r].toLowerCase())) continue;
    flat[w++] = flat[r];
    flat[w++] = flat[r + 1];
  }
  flat.length = w;
}

/** The pseudonym in the `Via` entry this gateway adds (RFC 9110 §7.6.3). */
export const VIA_PSEUDONYM = 'modelgate';
export const VIA_ENTRY = `1.1 ${VIA_PSEUDONYM}`;

/** How many times a Via value names this gateway: the hops a request already made through one. */
export function gatewayHops(via: string): number {
  let hops = 0;
  for (let at = via.indexOf(VIA_PSEUDONYM); at >= 0; at = via.indexOf(VIA_PSEUDONYM, at + VIA_PSEUDONYM.length)) hops++;
  return hops;
}

/**
 * Reads and checks the head. Throws a GatewayError (see `closesConnection`) for what RFC 9112
 * says to refuse: too many header lines, a version other than 1.x, missing/duplicate/invalid
 * Host, a Transfer-Encoding other than `chunked` or one in HTTP/1.0.
 */
export function readRequestHead(req: IncomingMessage, maxHeaderCount: number): RequestHead {
  const raw = req.rawHeaders;
  // node:http stores at most maxHeadersCount (= maxHeaderCount + 1) lines, so one more than the
  // limit means the client sent too many; refuse rather than forward a truncated set.
  if (raw.length > maxHeaderCount * 2) {
    throw new GatewayError('GW_HEADERS_TOO_LARGE', { message: `more than ${maxHeaderCount} header lines` });
  }
  // HTTP/2.0 or 0.9 in an HTTP/1 request line: not HTTP/1.x framing (llhttp lets 2.0 through).
  // A real HTTP/2 stream (TLS listener, ALPN h2) arrives through node's compat API with `stream`.
  const h2 = req.httpVersionMajor === 2 && (req as { stream?: unknown }).stream !== undefined;
  if (req.httpVersionMajor !== 1 && !h2) throw headRefusal('unsupported HTTP version');
  const head = new RequestHead();
  const out = head.forward;
  const isOptions = req.method === 'OPTIONS';
  let connection: string | undefined;
  let hostCount = 0;
  let authority: string | undefined;
  let origin = false;
  let requestMethod = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const value = raw[i + 1];
    if (h2 && name.charCodeAt(0) === 58 /* : */) {
      // Pseudo-headers: node has validated them; :authority plays Host's part (RFC 9113 §8.3.1).
      if (name === ':authority') authority = value;
      continue;
    }
    const lower = name.toLowerCase();
    switch (lower) {
      case 'host':
        hostCount++;
        head.host = value;
        continue;
      case 'authorization':
        head.authorization = value;
        continue;
      case 'connection':
        connection = connection === undefined ? value : `${connection}, ${value}`;
        continue;
      case 'transfer-encoding':
        head.transferEncoding = head.transferEncoding === undefined ? value : `${head.transferEncoding}, ${value}`;
        continue;
      case 'upgrade':
        head.upgrade = value;
        continue;
      case 'content-length':
        head.contentLength = Number(value);
        out.push(name, value);
        continue;
      case 'x-request-id':
        head.requestId = value;
        continue;
      case 'x-forwarded-for':
        head.xForwardedFor = head.xForwardedFor === undefined ? value : `${head.xForwardedFor}, ${value}`;
        continue;
      case 'x-forwarded-proto':
        head.xForwardedProto = value;
        continue;
      case 'forwarded':
      case 'x-real-ip':
      case 'expect':
        // Client-address headers are the gateway's to set; Expect is answered by node:http itself.
        continue;
      case 'te':
        if (value.trim().toLowerCase() === 'trailers') out.push(name, value);
        continue;
      case 'access-control-request-method':
        requestMethod = isOptions;
        out.push(name, value);
        continue;
      case 'origin':
        origin = true;
        out.push(name, value);
        continue;
      case 'via':
        head.via = head.via === undefined ? value : `${head.via}, ${value}`;
        out.push(name, value);
        continue;
      default:
        if (HOP_BY_HOP.has(lower) || lower.startsWith('proxy-')) continue;
        // Every X-Forwarded-* (Host, Proto, Prefix, Ssl, ...) is the gateway's to set, not the client's.
        if (lower.startsWith('x-forwarded-')) continue;
        out.push(name, value);
    }
  }
  if (authority !== undefined) {
    // RFC 9113 §8.3.1: a Host that differs from :authority is malformed; :authority wins.
    if (hostCount > 0 && head.host !== authority) throw headRefusal('Host differs from :authority');
    head.host = authority;
    hostCount = 1;
  }
  if (h2 && head.transferEncoding === undefined && head.contentLength < 0 && (req as { stream?: { endAfterHeaders?: boolean } }).stream?.endAfterHeaders === false) {
    // An HTTP/2 body needs no Content-Length (gRPC never sends one): forward it with
    // chunked framing, under the same body limit as a chunked HTTP/1.1 body.
    head.transferEncoding = 'chunked';
  }
  // RFC 9112 §3.2: 400 for more than one Host, an invalid Host, or an HTTP/1.1 request without one.
  if (hostCount > 1) throw headRefusal('more than one Host header');
  if (hostCount === 0 ? req.httpVersionMinor >= 1 : !isValidHostValue(head.host!)) throw headRefusal('missing or malformed Host header');
  if (head.transferEncoding !== undefined && !h2) {
    // RFC 9112 §6.1: only `chunked` is understood (llhttp accepts e.g. `gzip, chunked`, whose
    // coding would be lost when re-framed), and Transfer-Encoding in HTTP/1.0 is faulty framing.
    if (req.httpVersionMinor === 0) throw headRefusal('Transfer-Encoding in an HTTP/1.0 request');
    if (head.transferEncoding.trim().toLowerCase() !== 'chunked') throw headRefusal('unsupported Transfer-Encoding (only chunked)');
  }
  // A body makes it something else than a preflight (which would then pass a private endpoint
  // tokenless and deliver the body).
  head.isPreflight = requestMethod && origin && !head.hasBody;
  if (connection !== undefined) {
    const listed = connectionListedHeaders(connection);
    if (listed !== null) dropListed(out, listed);
  }
  return head;
}

/**
 * The X-Forwarded-For and X-Forwarded-Proto values sent upstream. A client's own values count
 * only when its peer is a trusted proxy (TRUSTED_PROXIES), which appends to them; anyone else
 * gets the address the gateway saw and the scheme of the listener (`https` on the TLS one).
 */
export function forwardedFor(head: RequestHead, peer: string, trusted: boolean, secure = false): { forFor: string; proto: string } {
  const client = peer.startsWith('::ffff:') ? peer.slice(7) : peer;
  // The gateway terminated TLS itself: that is the scheme the client used, whoever the peer is.
  if (secure) return { forFor: trusted && head.xForwardedFor !== undefined ? `${head.xForwardedFor}, ${client}` : client, proto: 'https' };
  if (!trusted) return { forFor: client, proto: 'http' };
  const claimed = head.xForwardedProto?.trim().toLowerCase();
  return {
    forFor: head.xForwardedFor !== undefined ? `${head.xForwardedFor}, ${client}` : client,
    proto: claimed === 'https' || claimed === 'http' ? claimed : 'http',
  };
}

/**
 * Maps the request target to an endpoint address. RFC 9112 §3.2.2: a server must accept
 * absolute-form, whose authority replaces Host; anything else not starting with `/` is refused,
 * and so is a dot segment in an endpoint path (it could climb out of a route's base path).
 */
export function resolveTarget(addresser: Addresser, head: RequestHead, url: string): Address {
  let target = url;
  if (target.charCodeAt(0) !== 47 /* / */) {
    const absolute = splitAbsoluteForm(target);
    if (absolute === null) throw new GatewayError('GW_BAD_REQUEST', { message: 'request target must be a path or an absolute http(s) URL' });
    head.host = absolute.authority;
    target = absolute.path;
  }
  const address = addresser.resolve(head.host, target);
  if (address.kind === AddressKind.Endpoint && hasDotSegment(address.path)) {
    throw new GatewayError('GW_BAD_REQUEST', { message: 'dot segments (. or ..) are not allowed in the path' });
  }
  if (address.kind === AddressKind.BadHost) throw new GatewayError('GW_BAD_REQUEST', { message: 'malformed Host header' });
  return address;
}

/**
 * A request whose framing says it has no body needs no reading, yet node:http, once the response
 * is done, "dumps" a request stream nobody read: resumes it, reads its end and destroys it (four
 * ticks and three events per request). Marking it dumped up front skips that. Nothing reads or
 * waits on such a request's stream; one with a body is never marked (HTTP/1.x only).
 */
export function skipBodilessDump(req: IncomingMessage): void {
  (req as IncomingMessage & { _dumped: boolean })._dumped = true;
}
