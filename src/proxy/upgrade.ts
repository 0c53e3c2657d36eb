import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

/**
 * What an HTTP/1.1 upgrade brings besides its request: the raw client socket node:http handed
 * over in its 'upgrade' event. Only WebSocket upgrades become tunnels (after a checked 101);
 * every other upgrade (`h2c`, ...) is turned back into a plain request (`plainRequestHead`) so it
 * takes the normal path with all its limits.
 */

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** The Sec-WebSocket-Accept an upstream must answer for `key` (RFC 6455 §4.2.2). */
export function websocketAccept(key: string): string {
  return createHash('sha1').update(key + WS_GUID).digest('base64');
}

export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const upgrade = req.headers.upgrade;
  return typeof upgrade === 'string' && upgrade.trim().toLowerCase() === 'websocket';
}

/**
 * The request head again, without `Upgrade` (and the `upgrade` token of `Connection`), for
 * node:http to parse a second time as an ordinary request. The values come from node's strict
 * parser, so they hold no CR/LF; the body that follows is framed by that second parse.
 */
export function plainRequestHead(req: IncomingMessage): Buffer {
  let text = `${req.method} ${req.url} HTTP/${req.httpVersionMajor}.${req.httpVersionMinor}\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i].toLowerCase();
    let value = raw[i + 1];
    if (lower === 'upgrade') continue;
    if (lower === 'connection') {
      value = value
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t.length > 0 && t.toLowerCase() !== 'upgrade')
        .join(', ');
      if (value === '') continue;
    }
    text += `${raw[i]}: ${value}\r\n`;
  }
  return Buffer.from(`${text}\r\n`, 'latin1');
}

/** Splits the `token` query parameter out of a request target; `path` keeps every other byte. */
export function extractQueryToken(target: string): { path: string; token: string | undefined } {
  const q = target.indexOf('?');
  if (q < 0) return { path: target, token: undefined };
  const query = target.slice(q + 1);
  if (!query.includes('token=')) return { path: target, token: undefined };
  let token: string | undefined;
  const kept: string[] = [];
  for (const part of query.split('&')) {
    const eq = part.indexOf('=');
    const name = eq < 0 ? part : part.slice(0, eq);
    if (name === 'token') {
      if (token === undefined && eq >= 0) {
        try {
          token = decodeURIComponent(part.slice(eq + 1).replace(/\+/g, ' '));
        } catch {
          token = '';
        }
      }
      continue;
    }
    kept.push(part);
  }
  const base = target.slice(0, q);
  return { path: kept.length > 0 ? `${base}?${kept.join('&')}` : base, token };
}

/** The client side of a WebSocket upgrade while the Exchange decides. */
export class UpgradeRequest {
  constructor(
    readonly socket: Socket,
    /** Bytes the client sent after the head: a client must wait for the 101 (RFC 6455 §4.1). */
    readonly early: Buffer,
  ) {}
}
