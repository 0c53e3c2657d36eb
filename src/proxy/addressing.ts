/**
 * Maps a request to an endpoint name and the path to forward, from the Host header or the
 * `/e/{name}/` prefix alone. No regex, no allocation beyond the returned strings.
 */

export enum AddressKind {
  Endpoint = 0,
  Healthz = 1,
  Readyz = 2,
  NotFound = 3,
  BadHost = 4,
}

export interface Address {
  kind: AddressKind;
  name: string;
  path: string;
}

/** True for a DNS label: 1-63 of [a-z0-9-], not starting or ending with '-'. */
export function isDnsLabel(s: string, start = 0, end = s.length): boolean {
  const len = end - start;
  if (len < 1 || len > 63) return false;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    const ok = (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || (c === 45 && i !== start && i !== end - 1);
    if (!ok) return false;
  }
  return true;
}

function isOwnPath(url: string, own: string): boolean {
  return url === own || (url.startsWith(own) && url.charCodeAt(own.length) === 63 /* ? */);
}

export class Addresser {
  readonly #suffix: string;

  constructor(appsDomain: string) {
    this.#suffix = '.' + appsDomain.toLowerCase();
  }

  /** `host` is the raw Host header (may carry a port, may be upper case); `url` the request target. */
  resolve(host: string | undefined, url: string): Address {
    if (host !== undefined) {
      let end = host.length;
      // Strip a port; an IPv6 literal ends with ']' and is never an endpoint host.
      const colon = host.lastIndexOf(':');
      if (colon > 0 && host.charCodeAt(host.length - 1) !== 93 /* ] */) end = colon;
      // A trailing dot (FQDN form) names the same host.
      if (end > 0 && host.charCodeAt(end - 1) === 46) end--;
      const suffix = this.#suffix;
      if (end > suffix.length) {
        const hostLower = host.length === end ? host.toLowerCase() : host.slice(0, end).toLowerCase();
        if (hostLower.endsWith(suffix)) {
          const nameEnd = hostLower.length - suffix.length;
          if (hostLower.lastIndexOf('.', nameEnd - 1) === -1) {
            if (!isDnsLabel(hostLower, 0, nameEnd)) return { kind: AddressKind.BadHost, name: '', path: url };
            return { kind: AddressKind.Endpoint, name: hostLower.slice(0, nameEnd), path: url };
          }
        }
      }
    }
    if (url.startsWith('/e/')) {
      let end = 3;
      while (end < url.length) {
        const c = url.charCodeAt(end);
        if (c === 47 /* / */ || c === 63 /* ? */) break;
        end++;
      }
      const raw = url.slice(3, end);
      if (!isDnsLabel(raw)) return { kind: AddressKind.NotFound, name: '', path: url };
      let path = end < url.length ? url.slice(end) : '/';
      if (path.charCodeAt(0) === 63) path = '/' + path;
      return { kind: AddressKind.Endpoint, name: raw, path };
    }
    if (isOwnPath(url, '/healthz')) return { kind: AddressKind.Healthz, name: '', path: url };
    if (isOwnPath(url, '/readyz')) return { kind: AddressKind.Readyz, name: '', path: url };
    return { kind: AddressKind.NotFound, name: '', path: url };
  }
}

/**
 * Security helpers of the request target (RFC 9112 §3.2, RFC 3986 §5.2.4). See docs/security.md.
 */

/** Characters allowed in a Host field value: uri-host (reg-name, IP literal) and `:port`. */
const HOST_CHARS: Uint8Array = (() => {
  const table = new Uint8Array(128);
  const allowed = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:[]%";
  for (let i = 0; i < allowed.length; i++) table[allowed.charCodeAt(i)] = 1;
  return table;
})();

/** True when a Host value is syntactically valid (empty is valid: RFC 9112 §3.2). */
export function isValidHostValue(host: string): boolean {
  if (host.length > 255) return false;
  for (let i = 0; i < host.length; i++) {
    const c = host.charCodeAt(i);
    if (c >= 128 || HOST_CHARS[c] === 0) return false;
  }
  return true;
}

/** `http://authority/path?query` (scheme case-insensitive); userinfo is refused by the caller. */
const ABSOLUTE_FORM = /^https?:\/\/([^/?#]*)([/?][^#]*)?$/i;

/**
 * Splits an absolute-form request target into the authority (which replaces Host, RFC 9112
 * §3.2.2) and the origin-form path. Returns null for anything else that does not start with
 * `/` (asterisk-form, authority-form, other schemes, userinfo), which the proxy refuses.
 */
export function splitAbsoluteForm(target: string): { authority: string; path: string } | null {
  const m = ABSOLUTE_FORM.exec(target);
  if (m === null) return null;
  const authority = m[1];
  if (authority.length === 0 || authority.includes('@') || !isValidHostValue(authority)) return null;
  let path = m[2] ?? '/';
  if (path.charCodeAt(0) === 63 /* ? */) path = '/' + path;
  return { authority, path };
}

/**
 * True when the path (before `?`) has a `.` or `..` segment, literal or percent-encoded, with
 * `/`, `\`, `%2F` or `%5C` as separators. Such a path could climb out of a route's base path
 * on an upstream that normalizes it, so the proxy refuses it instead of forwarding it.
 */
export function hasDotSegment(path: string): boolean {
  let end = path.indexOf('?');
  if (end < 0) end = path.length;
  // Fast path: no dot and no escape, nothing to look at.
  const dot = path.indexOf('.');
  const pct = path.indexOf('%');
  if ((dot < 0 || dot >= end) && (pct < 0 || pct >= end)) return false;
  let dots = 0; // dots in the current segment, -1 once it holds anything else
  let i = 0;
  while (i <= end) {
    let sep = i === end;
    let step = 1;
    let isDot = false;
    if (!sep) {
      const c = path.charCodeAt(i);
      if (c === 47 /* / */ || c === 92 /* \ */) sep = true;
      else if (c === 46 /* . */) isDot = true;
      else if (c === 37 /* % */ && i + 2 < end + 1) {
        const hex = path.slice(i + 1, i + 3).toLowerCase();
        if (hex === '2f' || hex === '5c') sep = true;
        else if (hex === '2e') isDot = true;
        step = 3;
      }
    }
    if (sep) {
      if (dots === 1 || dots === 2) return true;
      dots = 0;
    } else if (isDot) {
      if (dots >= 0) dots++;
    } else {
      dots = -1;
    }
    i += step;
  }
  return false;
}
