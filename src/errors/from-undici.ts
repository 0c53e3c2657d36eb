import { GatewayError } from './gateway-error.js';

/** How an upstream failure counts: for retries, outlier detection and metrics. */
export type UpstreamFailureKind = 'connect' | 'timeout' | 'reset' | 'protocol' | 'client';

const CONNECT_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

export function upstreamFailureKind(err: unknown, connected: boolean): UpstreamFailureKind {
  const code = (err as { code?: string } | null)?.code ?? '';
  if (!connected && (CONNECT_CODES.has(code) || code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'UND_ERR_CLOSED')) {
    return 'connect';
  }
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') return 'timeout';
  if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH' || code === 'UND_ERR_ABORTED') return 'client';
  if (code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED') return 'client';
  if (code === 'HPE_INVALID_CONSTANT' || code.startsWith('HPE_') || code === 'UND_ERR_HEADERS_OVERFLOW' || code === 'UND_ERR_INFO') return 'protocol';
  return 'reset';
}

/** The error the caller sees once no retry is left. */
export function fromUndici(err: unknown, kind: UpstreamFailureKind): GatewayError {
  const code = (err as { code?: string } | null)?.code ?? 'unknown';
  switch (kind) {
    case 'timeout':
      return new GatewayError('GW_UPSTREAM_TIMEOUT', { cause: err, detail: code });
    case 'client':
      return new GatewayError('GW_BAD_REQUEST', { cause: err, detail: code });
    case 'connect':
      if (code === 'UND_ERR_CONNECT_TIMEOUT') return new GatewayError('GW_UPSTREAM_TIMEOUT', { cause: err, detail: code });
      return new GatewayError('GW_UPSTREAM_UNAVAILABLE', { cause: err, detail: code });
    default:
      return new GatewayError('GW_UPSTREAM_UNAVAILABLE', { cause: err, detail: code });
  }
}
