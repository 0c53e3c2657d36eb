import { networkInterfaces } from 'node:os';

/**
 * The gateway's own listeners (data plane and admin API), so the admin API can refuse a route
 * that points back at them: such a route makes a proxy loop, or serves the admin listener's
 * `/metrics` and `/v1/*` through the data plane. Names are compared as written (no DNS lookup:
 * a loop through a name this cannot see is still cut by the `Via` hop count, 508).
 */
export class OwnAddresses {
  readonly #listeners: { host: string; port: number }[] = [];
  readonly #appsDomain: string;

  constructor(appsDomain: string) {
    this.#appsDomain = appsDomain.toLowerCase();
  }

  /** A listener bound to `host` (`0.0.0.0`/`::` for every address) on `port`. */
  add(host: string, port: number): void {
    this.#listeners.push({ host: normalise(host), port });
  }

  /** Why `url` reaches one of the listeners, or null when it does not. */
  matches(url: string): string | null {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return null;
    }
    const port = parsed.port !== '' ? Number(parsed.port) : parsed.protocol === 'https:' ? 443 : 80;
    const host = normalise(parsed.hostname);
    for (const listener of this.#listeners) {
      if (listener.port !== port) continue;
      if (host === listener.host || (isWildcard(listener.host) && this.#isLocal(host)) || (isLoopback(listener.host) && isLoopback(host))) {
        return `points at this gateway's own listener on port ${port} (a proxy loop)`;
      }
    }
    return null;
  }

  #isLocal(host: string): boolean {
    if (isLoopback(host) || isWildcard(host)) return true;
    if (host === this.#appsDomain || host.endsWith(`.${this.#appsDomain}`)) return true;
    for (const list of Object.values(networkInterfaces())) {
      for (const info of list ?? []) if (normalise(info.address) === host) return true;
    }
    return false;
  }
}

function normalise(host: string): string {
  const h = host.toLowerCase();
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host.endsWith('.localhost') || host === '::1' || host.startsWith('127.') || host.startsWith('::ffff:127.');
}
