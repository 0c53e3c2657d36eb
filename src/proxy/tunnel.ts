import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { EndpointRuntime } from './endpoint-runtime.js';

/**
 * The only part of an upgrade that differs from an HTTP request: once the upstream switched
 * protocols (a checked `101`), the two sockets are joined both ways. Everything before that —
 * admission, hold queue, pick, retry, errors, finish — is the Exchange's common life cycle.
 *
 * The gateway is no WebSocket endpoint, but it follows the frame boundaries in both directions
 * (a few bytes of header per frame) so that, when it ends a tunnel itself, it can say why with a
 * proper close frame instead of a bare TCP close: 1001 (going away: idle timeout, drain, endpoint
 * deleted), 1008 (policy: the token is no longer valid) or 1011 (the upstream was lost without
 * closing). A frame cut in the middle gets no close frame (it would corrupt the stream).
 */

export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_POLICY_VIOLATION = 1008;
export const CLOSE_INTERNAL_ERROR = 1011;

/** Follows WebSocket frame boundaries in one direction of a tunnel (RFC 6455 §5.2). */
export class FrameTracker {
  /** Payload bytes of the current frame still to come. */
  #remaining = 0;
  readonly #header = Buffer.alloc(14);
  #headerLength = 0;
  /** A close frame passed: the sender already said goodbye. */
  closeSeen = false;

  get atBoundary(): boolean {
    return this.#remaining === 0 && this.#headerLength === 0;
  }

  feed(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.#remaining > 0) {
        const n = Math.min(this.#remaining, chunk.length - i);
        this.#remaining -= n;
        i += n;
        continue;
      }
      this.#header[this.#headerLength++] = chunk[i++];
      if (this.#headerLength < 2) continue;
      const h = this.#header;
      const len7 = h[1] & 0x7f;
      const needed = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (h[1] & 0x80 ? 4 : 0);
      if (this.#headerLength < needed) continue;
      const length = len7 === 126 ? h.readUInt16BE(2) : len7 === 127 ? h.readUInt32BE(2) * 2 ** 32 + h.readUInt32BE(6) : len7;
      if ((h[0] & 0x0f) === 0x8) this.closeSeen = true;
      this.#remaining = length;
      this.#headerLength = 0;
    }
  }
}

/** A close frame with a status code; masked when the gateway speaks as the client (to the upstream). */
export function closeFrame(code: number, masked: boolean): Buffer {
  if (!masked) return Buffer.from([0x88, 2, code >> 8, code & 0xff]);
  const mask = randomBytes(4);
  return Buffer.from([0x88, 0x82, mask[0], mask[1], mask[2], mask[3], (code >> 8) ^ mask[0], (code & 0xff) ^ mask[1]]);
}

export interface TunnelOwner {
  /** The tunnel closed (both sides ended); called once. */
  tunnelClosed(reason: string): void;
}

/** Two sockets joined after a 101; closes both when either ends, fails or idles. */
export class Tunnel {
  readonly #client: Duplex;
  readonly #upstream: Duplex;
  readonly #owner: TunnelOwner;
  readonly #toUpstream = new FrameTracker();
  readonly #toClient = new FrameTracker();
  bytesIn = 0;
  bytesOut = 0;
  #closed = false;

  constructor(client: Duplex, upstream: Duplex, owner: TunnelOwner) {
    this.#client = client;
    this.#upstream = upstream;
    this.#owner = owner;
  }

  /** Starts relaying; `responseHead` (the 101) goes to the client first. */
  open(responseHead: string, idleTimeoutMs: number): void {
    const client = this.#client;
    const upstream = this.#upstream;
    client.write(responseHead);
    client.on('data', (chunk: Buffer) => {
      this.bytesIn += chunk.length;
      this.#toUpstream.feed(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      this.bytesOut += chunk.length;
      this.#toClient.feed(chunk);
    });
    // Not `end: true`: an ending side must not end the other before it got its close frame.
    client.pipe(upstream, { end: false });
    upstream.pipe(client, { end: false });
    client.on('error', () => this.close(CLOSE_GOING_AWAY, 'client_error'));
    client.on('close', () => this.close(CLOSE_GOING_AWAY, 'client_closed'));
    client.on('end', () => this.close(CLOSE_GOING_AWAY, 'client_closed'));
    upstream.on('error', () => this.close(CLOSE_INTERNAL_ERROR, 'upstream_error'));
    upstream.on('close', () => this.close(CLOSE_INTERNAL_ERROR, 'upstream_closed'));
    upstream.on('end', () => this.close(CLOSE_INTERNAL_ERROR, 'upstream_closed'));
    const onIdle = () => this.close(CLOSE_GOING_AWAY, 'idle_timeout');
    (client as Duplex & { setTimeout?: (ms: number, cb: () => void) => void }).setTimeout?.(idleTimeoutMs, onIdle);
    (upstream as Duplex & { setTimeout?: (ms: number, cb: () => void) => void }).setTimeout?.(idleTimeoutMs, onIdle);
  }

  /**
   * Ends both sides. Each side that has not said goodbye itself, and is at a frame boundary,
   * first gets a close frame with `code`.
   */
  close(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    const client = this.#client;
    const upstream = this.#upstream;
    client.unpipe(upstream);
    upstream.unpipe(client);
    // The side that closed or failed has no use for a close frame; the other one gets it.
    const clientGone = reason === 'client_closed' || reason === 'client_error';
    const upstreamGone = reason === 'upstream_closed' || reason === 'upstream_error';
    if (!clientGone && client.writable && !this.#toClient.closeSeen && this.#toClient.atBoundary) client.write(closeFrame(code, false));
    if (!upstreamGone && upstream.writable && !this.#toUpstream.closeSeen && this.#toUpstream.atBoundary) upstream.write(closeFrame(code, true));
    client.end();
    upstream.end();
    // A peer that never answers the FIN must not keep the socket.
    setTimeout(() => {
      client.destroy();
      upstream.destroy();
    }, 1000).unref();
    this.#owner.tunnelClosed(reason);
  }
}

/** An exchange whose tunnel is open. */
export interface OpenTunnel {
  /** Re-checks the credentials the tunnel was admitted with; closes it if they are no longer valid. */
  revalidate(): void;
  /** An endpoint changed (`null`: deleted); closes the tunnel if it was this one's and is gone. */
  endpointChanged(name: string, runtime: EndpointRuntime | null): void;
  /** Closes the tunnel with a close frame `code`. */
  closeTunnel(code: number, reason: string): void;
}

/**
 * Every open tunnel of one gateway instance. A tunnel was admitted once, like any request, but
 * lives on: it is re-checked when an endpoint changes and every `revalidateMs` (revocations reach
 * an instance within 1 s), and closed when its endpoint is deleted or its token stops being valid.
 */
export class TunnelSet {
  readonly #open = new Set<OpenTunnel>();
  readonly #revalidateMs: number;
  #timer: NodeJS.Timeout | null = null;

  constructor(revalidateMs: number) {
    this.#revalidateMs = revalidateMs;
  }

  get size(): number {
    return this.#open.size;
  }

  add(tunnel: OpenTunnel): void {
    this.#open.add(tunnel);
    if (this.#timer === null) {
      this.#timer = setInterval(() => this.revalidate(), this.#revalidateMs);
      this.#timer.unref();
    }
  }

  delete(tunnel: OpenTunnel): void {
    this.#open.delete(tunnel);
    if (this.#open.size === 0 && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }

  revalidate(): void {
    for (const t of this.#open) t.revalidate();
  }

  endpointChanged(name: string, runtime: EndpointRuntime | null): void {
    for (const t of this.#open) t.endpointChanged(name, runtime);
  }

  /** Drain and stop: every tunnel gets 1001 (going away). */
  closeAll(): void {
    for (const t of [...this.#open]) t.closeTunnel(CLOSE_GOING_AWAY, 'shutdown');
  }
}
