/**
 * Reading the token out of `Authorization: BackendAI <token>` / `Bearer <token>`: the scheme
 * is case-insensitive and followed by exactly one space. `tokenFromAuthorization` is the hot
 * path (no allocation but the slice, no regex); the slower checks run only on a cache miss.
 */

/** Tokens longer than this are GW_AUTH_INVALID without any crypto. */
export const MAX_TOKEN_LENGTH = 8 * 1024;

const SCHEMES = ['backendai', 'bearer'] as const;

/** True when header[0..end) equals `lower` ignoring ASCII case. */
function schemeIs(header: string, end: number, lower: string): boolean {
  if (end !== lower.length) return false;
  for (let i = 0; i < end; i++) {
    let c = header.charCodeAt(i);
    if (c >= 65 && c <= 90) c |= 0x20;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}

function knownScheme(header: string, end: number): boolean {
  return schemeIs(header, end, SCHEMES[0]) || schemeIs(header, end, SCHEMES[1]);
}

/**
 * The credentials after a known scheme and one space, unchecked; undefined when there is no
 * header, no known scheme or nothing after it (all GW_AUTH_MISSING).
 */
export function tokenFromAuthorization(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const space = header.indexOf(' ');
  if (space <= 0 || space === header.length - 1 || !knownScheme(header, space)) return undefined;
  return header.slice(space + 1);
}

/** RFC 6750 b64token characters: A-Z a-z 0-9 - . _ ~ + / and trailing =. */
function isTokenChar(c: number): boolean {
  return (
    (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 95 || c === 126 || c === 43 || c === 47 || c === 61
  );
}

/**
 * Shape check before any crypto: length, charset (so no whitespace), and the three
 * dot-separated parts of a compact JWS.
 */
export function isWellFormedToken(token: string): boolean {
  const n = token.length;
  if (n === 0 || n > MAX_TOKEN_LENGTH) return false;
  let dots = 0;
  let partStart = 0;
  for (let i = 0; i < n; i++) {
    const c = token.charCodeAt(i);
    if (c === 46) {
      if (i === partStart) return false;
      dots++;
      partStart = i + 1;
    } else if (!isTokenChar(c)) {
      return false;
    }
  }
  return dots === 2 && partStart < n;
}
