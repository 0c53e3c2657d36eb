import type { GatewayErrorCode } from './gateway-error.js';
import type { HttpError } from './to-http.js';

/**
 * A gateway error on a gRPC call (content-type application/grpc…) is answered the way gRPC
 * clients read errors: HTTP 200 with `grpc-status` and `grpc-message` in a trailers-only
 * response, so a grpc-js or Triton client sees UNAUTHENTICATED or UNAVAILABLE instead of a
 * protocol error. The gateway code leads grpc-message ("GW_AUTH_MISSING: …").
 */

/** gRPC status codes (grpc/doc/statuscodes.md). */
export const GrpcStatus = {
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

const BY_CODE: Partial<Record<GatewayErrorCode, number>> = {
  GW_ENDPOINT_NOT_FOUND: GrpcStatus.NOT_FOUND,
  GW_UPSTREAM_TIMEOUT: GrpcStatus.DEADLINE_EXCEEDED,
  GW_RATE_LIMITED: GrpcStatus.RESOURCE_EXHAUSTED,
  GW_BODY_TOO_LARGE: GrpcStatus.RESOURCE_EXHAUSTED,
  GW_BAD_REQUEST: GrpcStatus.INTERNAL,
};

/** The gRPC status for an HTTP status, as grpc/doc/http-grpc-status-mapping.md has it. */
function byHttpStatus(status: number): number {
  switch (status) {
    case 400:
      return GrpcStatus.INTERNAL;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus.UNAVAILABLE;
    default:
      return GrpcStatus.UNKNOWN;
  }
}

export function isGrpcContentType(value: string | undefined): boolean {
  return value !== undefined && value.startsWith('application/grpc');
}

/** grpc-message is percent-encoded (gRPC over HTTP/2 spec: bytes outside 0x20–0x7E and '%'). */
function percentEncode(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Headers of the trailers-only gRPC response for `http` (status 200, no body). */
export function grpcErrorHeaders(http: HttpError, message: string): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': 'application/grpc',
    'grpc-status': String(BY_CODE[http.code] ?? byHttpStatus(http.status)),
    'grpc-message': percentEncode(`${http.code}: ${message}`),
  };
  for (const name of ['www-authenticate', 'retry-after']) {
    if (http.headers[name] !== undefined) headers[name] = http.headers[name];
  }
  return headers;
}
