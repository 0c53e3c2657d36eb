import { createServer } from 'node:net';

/**
 * Hands out replica ports from CONTROLLER_PORT_RANGE. A port is given only if nothing listens
 * on it now (checked by binding 0.0.0.0, which on Linux also collides with a 127.0.0.1 listener)
 * and this gateway has not already handed it to a replica that has yet to bind it.
 */
export class PortAllocator {
  readonly #from: number;
  readonly #to: number;
  readonly #reserved = new Set<number>();
  #next: number;

  constructor(range: string | { from: number; to: number }) {
    const [from, to] = typeof range === 'string' ? range.split('-').map(Number) : [range.from, range.to];
    if (!(Number.isInteger(from) && Number.isInteger(to) && from >= 1 && to <= 65535 && from <= to)) {
      throw new Error(`invalid port range ${JSON.stringify(range)}`);
    }
    this.#from = from;
    this.#to = to;
    // A random start spreads restarts over the range, so a port held in TIME_WAIT or by a
    // leftover process of a crashed gateway is not tried first every time.
    this.#next = from + Math.floor(Math.random() * (to - from + 1));
  }

  /** Reserves a free port; tries `preferred` first (a restarted replica keeps its port if it can). */
  async allocate(preferred?: number): Promise<number> {
    if (preferred !== undefined && preferred >= this.#from && preferred <= this.#to && !this.#reserved.has(preferred)) {
      this.#reserved.add(preferred);
      if (await isPortFree(preferred)) return preferred;
      this.#reserved.delete(preferred);
    }
    const size = this.#to - this.#from + 1;
    for (let i = 0; i < size; i++) {
      const port = this.#next;
      this.#next = port >= this.#to ? this.#from : port + 1;
      if (this.#reserved.has(port)) continue;
      this.#reserved.add(port);
      if (await isPortFree(port)) return port;
      this.#reserved.delete(port);
    }
    throw new Error(`no free port in ${this.#from}-${this.#to}`);
  }

  release(port: number | undefined): void {
    if (port !== undefined) this.#reserved.delete(port);
  }
}

export function isPortFree(port: number, host = '0.0.0.0'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}
