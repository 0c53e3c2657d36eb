import { OutgoingMessage, STATUS_CODES, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { latin1 } from '../lib/latin1.js';

/**
 * `ServerResponse.writeHead` for a header list the gateway's own upstream parser produced
 * (upstream/h1-parser.ts): names there are tokens and values hold no control character, which is
 * exactly what writeHead checks again, with two regular expressions, for every header of every
 * response. Here the lines node never looks at are joined into one string and only the headers
 * that steer node's framing and keep-alive (Content-Length, Date, Connection, Transfer-Encoding,
 * Trailer, Keep-Alive, Expect) go through node's own `_storeHeader`, so node still decides
 * chunking, `Connection: keep-alive`/`close` and the Date header as writeHead would
 * (docs/performance.md, "Response writes").
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

/** A last body piece up to this size is sent as a string with the head (one copy, one write). */
const SMALL_BODY_BYTES = 4096;

/**
 * Ends a response with `body`, the rest of its body. A small one, when the head is stored
 * (writeCheckedHead or writeHead) and not yet sent, leaves with the head in one `write` of one
 * string (latin1 maps bytes to characters one to one, so the string is the body's exact bytes):
 * `res.end(chunk)` would queue the chunk and an empty end marker and send them with a `writev`.
 * A larger body, or a response not alone on its connection with nothing queued (pipelined
 * requests wait their turn in node's queue), goes through `res.end`.
 */
export function endWithBody(res: ServerResponse, body: Buffer): void {
  if (body.length > SMALL_BODY_BYTES) {
    res.end(body);
    return;
  }
  const r = res as unknown as InternalResponse;
  const socket = r.socket;
  if (
    SUPPORTED &&
    socket !== null &&
    socket._httpMessage === res &&
    socket.writable &&
    !socket.writableCorked &&
    typeof r._header === 'string' &&
    !r._headerSent &&
    r._hasBody &&
    !r.chunkedEncoding &&
    r.outputData.length === 0 &&
    !r.finished
  ) {
    r._headerSent = true;
    socket.write(r._header + latin1(body), 'latin1');
    // Nothing is left to send: end() only marks the response finished (and writes nothing
    // more once the socket took the bytes).
    res.end();
    return;
  }
  res.end(latin1(body), 'latin1');
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
  socket: (Socket & { _httpMessage?: unknown }) | null;
  _header: string | null;
  _headerSent: boolean;
  chunkedEncoding: boolean;
  finished: boolean;
  outputData: unknown[];
  _hasBody: boolean;
  _expect_continue: boolean;
  _sent100: boolean;
  shouldKeepAlive: boolean;
  statusCode: number;
  statusMessage: string;
  _storeHeader(firstLine: string, headers: string[] | null): void;
}

/** node keeps headers set with setHeader under this symbol; a response that has some goes through writeHead. */
const probe = new OutgoingMessage();
const kOutHeaders: symbol | undefined = Object.getOwnPropertySymbols(probe).find((s) => s.description === 'kOutHeaders');
const SUPPORTED =
  kOutHeaders !== undefined &&
  typeof (probe as unknown as InternalResponse)._storeHeader === 'function' &&
  Array.isArray((probe as unknown as InternalResponse).outputData);
