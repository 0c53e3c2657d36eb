import { OutgoingMessage, STATUS_CODES, type ServerResponse } from 'node:http';

/**
 * `ServerResponse.writeHead` for a header list the gateway's own upstream parser produced
 * (upstream/h1-parser.ts): names there are tokens and values hold no control character, which is
 * exactly what writeHead checks again, with two regular expressions, for every header of every
 * response. Here the lines node never looks at are joined into one string and only the headers
 * that steer node's framing and keep-alive (Content-Length, Date, Connection, Transfer-Encoding,
 * Trailer, Keep-Alive, Expect) go through node's own `_storeHeader`, so node still decides
 * chunking, `Connection: keep-alive`/`close` and the Date header as writeHead would
 * (docs/performance.md, "Response heads without the second validation").
 *
 * HTTP/1.x responses only. Returns false when this node's `OutgoingMessage` lacks what the
 * shortcut needs (the caller then uses writeHead).
 */
export function writeCheckedHead(res: ServerResponse, status: number, reason: string | undefined, headers: string[]): boolean {
  const r = res as unknown as InternalResponse;
  if (!SUPPORTED || r._header || (r as unknown as Record<symbol, unknown>)[kOutHeaders!] != null) return false;
  const message = reason || STATUS_CODES[status] || 'unknown';
  r.statusMessage = message;
  r.statusCode = status;
  if (status === 204 || status === 304 || status < 200) r._hasBody = false;
  // writeHead's rule: a client that asked for 100-continue and got a final status may still send its body.
  if (r._expect_continue && !r._sent100) r.shouldKeepAlive = false;
  let lines = `HTTP/1.1 ${status} ${message}\r\n`;
  let steering: string[] | null = null;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    if (name.length < STEERING_LENGTH.length && STEERING_LENGTH[name.length] === 1 && STEERING.has(name.toLowerCase())) {
      (steering ??= []).push(name, headers[i + 1]);
      continue;
    }
    lines += `${name}: ${headers[i + 1]}\r\n`;
  }
  r._storeHeader(lines, steering);
  return true;
}

/** The header names node's `matchHeader` acts on (lower case). */
const STEERING: ReadonlySet<string> = new Set(['connection', 'content-length', 'date', 'expect', 'keep-alive', 'trailer', 'transfer-encoding']);
/** 1 at the lengths of those names: other names are not lower-cased. */
const STEERING_LENGTH: Uint8Array = (() => {
  const table = new Uint8Array(Math.max(...[...STEERING].map((n) => n.length)) + 1);
  for (const n of STEERING) table[n.length] = 1;
  return table;
})();

interface InternalResponse {
  _header: string | null;
  _hasBody: boolean;
  _expect_continue: boolean;
  _sent100: boolean;
  shouldKeepAlive: boolean;
  statusCode: number;
  statusMessage: string;
  _storeHeader(firstLine: string, headers: string[] | null): void;
}

/** node keeps headers set with setHeader under this symbol; a response that has some goes through writeHead. */
const kOutHeaders: symbol | undefined = Object.getOwnPropertySymbols(new OutgoingMessage()).find((s) => s.description === 'kOutHeaders');
const SUPPORTED = kOutHeaders !== undefined && typeof (OutgoingMessage.prototype as unknown as InternalResponse)._storeHeader === 'function';
