import { GatewayError, isGatewayError, type GatewayErrorCode } from './gateway-error.js';

export interface HttpError {
  status: number;
  headers: Record<string, string>;
  body: string;
  code: GatewayErrorCode;
}

function quote(value: string): string {
  return value.replace(/[\\"]/g, '\\$&');
}

/** The WWW-Authenticate challenge for a 401/403, in the RFC 6750 manner with our scheme. */
export function challengeFor(err: GatewayError): string {
  let value = `BackendAI realm="${quote(err.realm ?? 'modelgate')}"`;
  if (err.challengeError) value += `, error="${err.challengeError}"`;
  if (err.challengeDescription) value += `, error_description="${quote(err.challengeDescription)}"`;
  return value;
}

/**
 * Converts any thrown value into the JSON error response. Anything that is not a
 * GatewayError is an internal error whose message is never shown to the client.
 */
export function toHttp(err: unknown, requestId: string, internalCode: 'GW_INTERNAL' | 'ADM_INTERNAL' = 'GW_INTERNAL'): HttpError {
  const gerr = isGatewayError(err) ? err : new GatewayError(internalCode, { cause: err });
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'cache-control': 'no-store',
  };
  if (gerr.status === 401 || (gerr.status === 403 && gerr.code === 'GW_AUTH_FORBIDDEN')) {
    headers['www-authenticate'] = challengeFor(gerr);
  }
  if (gerr.headers !== undefined) Object.assign(headers, gerr.headers);
  if (gerr.retryAfterSeconds !== undefined) headers['retry-after'] = String(Math.max(0, Math.ceil(gerr.retryAfterSeconds)));
  const error: Record<string, unknown> = { code: gerr.code, message: gerr.message, request_id: requestId };
  if (gerr.details && gerr.details.length > 0) error.details = gerr.details;
  return { status: gerr.status, headers, body: JSON.stringify({ error }), code: gerr.code };
}
