import { isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';

/**
 * Which `Host` values the admin listener answers to. A browser sends the name it resolved in
 * `Host`, so a page on `evil.example` that rebinds its DNS to 127.0.0.1 still says
 * `Host: evil.example`: answering only to our own names and addresses defeats DNS rebinding
 * (the defence Envoy, the Kubernetes API server and Jupyter use). Allowed: `localhost`, the
 * machine's own host name, the loopback literals, ADMIN_HOST itself, the bound address, the
 * socket's own local address, ADMIN_ALLOWED_HOSTS and, when bound to a wildcard address, every
 * interface address.
 */

const WILDCARDS: ReadonlySet<string> = new Set(['0.0.0.0', '::', '']);

/** `Host` header → lower-case host without port, brackets or a trailing dot; null if malformed. */
export function hostnameOf(host: string): string | null {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    if (end < 0) return null;
    const rest = h.slice(end + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return null;
    return h.slice(1, end);
  }
  const colon = h.indexOf(':');
  if (colon >= 0) {
    if (!/^\d{1,5}$/.test(h.slice(colon + 1))) return null;
    h = h.slice(0, colon);
  }
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h === '' ? null : h;
}

function normalizeAddress(address: string): string {
  const a = address.toLowerCase().split('%')[0];
  // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
  return a.startsWith('::ffff:') && isIP(a.slice(7)) === 4 ? a.slice(7) : a;
}

export interface AdminHostPolicyOptions {
  /** ADMIN_HOST as configured. */
  adminHost: string;
  /** ADMIN_ALLOWED_HOSTS. */
  allowedHosts: readonly string[];
}

export class AdminHostPolicy {
  readonly #names = new Set<string>(['localhost', '127.0.0.1', '::1', hostname().toLowerCase()]);
  readonly #wildcard: boolean;
  #interfaces: Set<string> | null = null;
  #interfacesAt = 0;

  constructor(opts: AdminHostPolicyOptions) {
    const own = hostnameOf(opts.adminHost.includes(':') && !opts.adminHost.startsWith('[') ? `[${opts.adminHost}]` : opts.adminHost);
    if (own) this.#names.add(normalizeAddress(own));
    for (const name of opts.allowedHosts) {
      const h = hostnameOf(name);
      if (h) this.#names.add(normalizeAddress(h));
    }
    this.#wildcard = WILDCARDS.has(opts.adminHost.replace(/^\[|\]$/g, ''));
  }

  /** The address the listener actually bound (known after listen()). */
  addBoundAddress(address: string): void {
    this.#names.add(normalizeAddress(address));
  }

  /** `hostHeader` absent (HTTP/1.0) is allowed: a browser always sends one. */
  allows(hostHeader: string | undefined, localAddress: string | undefined): boolean {
    if (hostHeader === undefined) return true;
    const host = hostnameOf(hostHeader);
    if (host === null) return false;
    const name = isIP(host) ? normalizeAddress(host) : host;
    if (this.#names.has(name)) return true;
    if (isIP(name) === 0) return false;
    if (localAddress !== undefined && normalizeAddress(localAddress) === name) return true;
    return this.#wildcard && this.#interfaceAddresses().has(name);
  }

  /** Interface addresses, re-read at most every 10 s (a lookup only happens for unknown IP literals). */
  #interfaceAddresses(): Set<string> {
    const now = Date.now();
    if (this.#interfaces === null || now - this.#interfacesAt > 10_000) {
      this.#interfaces = new Set(
        Object.values(networkInterfaces())
          .flat()
          .filter((i) => i !== undefined)
          .map((i) => normalizeAddress(i.address)),
      );
      this.#interfacesAt = now;
    }
    return this.#interfaces;
  }
}
