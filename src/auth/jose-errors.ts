/**
 * jose's error codes → our auth codes, keyed on `err.code` (jose's closed JOSEErrorCode set).
 * ERR_JWT_EXPIRED is GW_AUTH_EXPIRED; every other JWS/JWT/JWKS failure is GW_AUTH_INVALID.
 */

export type AuthFailureCode = 'GW_AUTH_INVALID' | 'GW_AUTH_EXPIRED';

/** Errors from fetching a remote key set (as opposed to a key lookup in a fetched set). */
const KEY_FETCH_CODES = new Set(['ERR_JWKS_TIMEOUT', 'ERR_JOSE_GENERIC', 'ERR_JWKS_INVALID', 'ERR_JWKS_UNAVAILABLE']);

/** Failures that mean "this key did not verify it", so another configured key may be tried. */
const KEY_MISMATCH_CODES = new Set([
  'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
  'ERR_JWKS_NO_MATCHING_KEY',
  'ERR_JWKS_MULTIPLE_MATCHING_KEYS',
  'ERR_JOSE_ALG_NOT_ALLOWED',
  'ERR_JOSE_NOT_SUPPORTED',
]);

export function errorCodeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : err instanceof Error ? err.name : 'unknown';
}

/** A network or HTTP failure while fetching a key set (fetch's TypeError included). */
export function isKeyFetchFailure(err: unknown): boolean {
  if (err instanceof TypeError && (err as { code?: unknown }).code === undefined) return true;
  return KEY_FETCH_CODES.has(errorCodeOf(err));
}

/** This key (or key set) did not verify the token; another source may. */
export function isKeyMismatch(err: unknown): boolean {
  return KEY_MISMATCH_CODES.has(errorCodeOf(err)) || isKeyFetchFailure(err) || err instanceof TypeError;
}

export function fromJose(err: unknown): AuthFailureCode {
  return errorCodeOf(err) === 'ERR_JWT_EXPIRED' ? 'GW_AUTH_EXPIRED' : 'GW_AUTH_INVALID';
}
