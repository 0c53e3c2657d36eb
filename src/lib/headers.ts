/**
 * Header rules of the proxy (RFC 9110 §7.6.1). Tables are built at load time; the per-request
 * code only does lookups.
 */

/** Hop-by-hop headers never forwarded in either direction (lower case). */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/** Connection options that name no header (`Connection: keep-alive, close`). */
const CONNECTION_OPTIONS: ReadonlySet<string> = new Set(['close', 'keep-alive', 'upgrade', 'te']);

/** True for `keep-alive` or `close` in any letter case (no allocation). */
function isOneOption(value: string): boolean {
  const target = value.length === 10 ? 'keep-alive' : value.length === 5 ? 'close' : null;
  if (target === null) return false;
  for (let i = 0; i < target.length; i++) {
    // ASCII lower-casing by OR-ing 0x20 is exact for letters; '-' (0x2d) already has the bit set.
    if ((value.charCodeAt(i) | 0x20) !== target.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * Header names a `Connection` header lists, which are hop-by-hop too. Returns null when it lists
 * none (the common case), so callers skip the extra filter pass.
 */
export function connectionListedHeaders(value: string | undefined): Set<string> | null {
  if (value === undefined) return null;
  // Nearly every message says just `keep-alive` or `close`: answer those without slicing.
  if (isOneOption(value)) return null;
  let out: Set<string> | null = null;
  let start = 0;
  for (let i = 0; i <= value.length; i++) {
    if (i === value.length || value.charCodeAt(i) === 44 /* , */) {
      const token = value.slice(start, i).trim().toLowerCase();
      start = i + 1;
      if (token.length > 0 && !CONNECTION_OPTIONS.has(token)) (out ??= new Set()).add(token);
    }
  }
  return out;
}

/** Removes the listed names from a flat [name, value, ...] header array, in place. */
export function dropListed(flat: string[], listed: ReadonlySet<string>): void {
  let w = 0;
  for (let r = 0; r < flat.length; r += 2) {
    if (listed.has(flat[r].toLowerCase())) continue;
    flat[w++] = flat[r];
    flat[w++] = flat[r + 1];
  }
  flat.length = w;
}

/** A request id we accept from a client: short, visible ASCII only (it is echoed and logged). */
export function isSafeRequestId(value: string): boolean {
  if (value.length === 0 || value.length > 128) return false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}
