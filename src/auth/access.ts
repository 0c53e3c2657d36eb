import type { RouteTable } from '../schema/route-table.js';
import type { CachedToken } from './token-cache.js';

/**
 * What the data plane knows about a request when it asks whether it may reach an endpoint.
 * The proxy extracts these in its single pass over the raw headers.
 */
export interface AccessRequest {
  /** Raw Authorization header value, if any. */
  authorization: string | undefined;
  /** Socket peer address (IPv4, or IPv6 possibly IPv4-mapped). */
  remoteAddress: string;
  /** Raw X-Forwarded-For header, trusted only when the peer is a configured proxy. */
  xForwardedFor: string | undefined;
  /** A CORS preflight (OPTIONS with Origin and Access-Control-Request-Method, no body): passes without a token. */
  isPreflight: boolean;
  /** `token` query parameter, only offered for WebSocket upgrades. */
  queryToken?: string;
  /** Set by the checker when a token was accepted: the verified token (priority and rate limits for traffic control). */
  token?: CachedToken;
}

/**
 * Decides whether a request may reach an endpoint: allowed_cidrs first, then the token.
 * Returns undefined when allowed on the fast path (public endpoint, cached token), a promise
 * when verification must do work, and throws (or rejects with) a GatewayError otherwise.
 */
export interface AccessChecker {
  check(endpoint: RouteTable, request: AccessRequest): void | Promise<void>;
}
