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
