/**
 * An HTTP/1.1 response parser for the gateway's own upstream client (h1-client.ts): framing by
 * RFC 9112 §6.3, strict about what makes responses smuggle (duplicate or malformed
 * Content-Length, Content-Length beside Transfer-Encoding, obs-fold, bare CR or LF, control
 * characters), the same things undici's llhttp refuses. Errors carry llhttp's `HPE_*` codes so
 * the gateway classifies them as protocol failures (502) exactly as before.
 */

import { latin1 } from '../lib/latin1.js';

/** What the parser reports, in order: one head, body pieces, the end. */
export interface ResponseSink {
  /** A final (non-1xx) response head. `headers` is a flat name, value list as received. */
  onHead(status: number, reason: string, headers: string[], keepAlive: boolean, keepAliveTimeoutMs: number): void;
  /** Body bytes (a view into the socket's chunk: used before the next read). */
  onBody(chunk: Buffer): void;
  /** The response is complete; trailers of a chunked body as a flat list (null: none). */
  onEnd(trailers: string[] | null): void;
}

export class ParseError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ParseError';
  }
}

export const MAX_HEAD_BYTES = 64 * 1024;

const enum State {
  Head = 0,
  Length = 1,
  Close = 2,
  ChunkSize = 3,
  ChunkSizeWs = 4,
  ChunkExt = 5,
  ChunkSizeLf = 6,
  ChunkData = 7,
  ChunkDataCr = 8,
  ChunkDataLf = 9,
  Trailers = 10,
  Done = 11,
}

const CR = 13;
const LF = 10;
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
const CRLF = Buffer.from('\r\n', 'latin1');

/** tchar (RFC 9110 §5.6.2): 1 for characters allowed in a header name. */
const TCHAR: Uint8Array = (() => {
  const t = new Uint8Array(256);
  for (const c of "!#$%&'*+-.^_`|~") t[c.charCodeAt(0)] = 1;
  for (let c = 0x30; c <= 0x39; c++) t[c] = 1;
  for (let c = 0x41; c <= 0x5a; c++) t[c] = 1;
  for (let c = 0x61; c <= 0x7a; c++) t[c] = 1;
  return t;
})();

function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x61 && b <= 0x66) return b - 0x57;
  if (b >= 0x41 && b <= 0x46) return b - 0x37;
  return -1;
}

/**
 * Reads the field lines of `buf[from..to)` (a head or a trailer section without its final CRLF
 * CRLF) into `out` as name, value pairs. Names are tchar; values hold HTAB, SP, VCHAR and
 * obs-text only (no CR, LF, NUL or DEL), trimmed of surrounding whitespace; lines end in CRLF;
 * a line starting with whitespace (obs-fold) or a space before the colon is refused.
 */
function readFields(buf: Buffer, text: string, from: number, to: number, out: string[]): void {
  let pos = from;
  while (pos < to) {
    let k = pos;
    let b = buf[k];
    if (b === 0x20 || b === 0x09) throw new ParseError('HPE_INVALID_HEADER_TOKEN', 'obsolete line folding in a header');
    while (k < to) {
      b = buf[k];
      if (b === 0x3a) break;
      if (TCHAR[b] !== 1) throw new ParseError('HPE_INVALID_HEADER_TOKEN', 'invalid character in a header name');
      k++;
    }
    if (k === pos || k >= to) throw new ParseError('HPE_INVALID_HEADER_TOKEN', 'malformed header line');
    const colon = k++;
    while (k < to && (buf[k] === 0x20 || buf[k] === 0x09)) k++;
    const vs = k;
    while (k < to) {
      b = buf[k];
      if (b === CR) break;
      if ((b < 0x20 && b !== 0x09) || b === 0x7f) throw new ParseError('HPE_INVALID_HEADER_TOKEN', 'invalid character in a header value');
      k++;
    }
    // A CR ends the line only with its LF (a bare CR is refused).
    if (k < to && buf[k + 1] !== LF) throw new ParseError('HPE_INVALID_HEADER_TOKEN', 'invalid character in a header value');
    let ve = k;
    while (ve > vs && (buf[ve - 1] === 0x20 || buf[ve - 1] === 0x09)) ve--;
    out.push(text.slice(pos, colon), text.slice(vs, ve));
    pos = k + 2;
  }
}

/** Whether a comma-separated list (Connection) holds `token`, case-insensitively. */
function listHas(list: string, token: string): boolean {
  const lower = list.toLowerCase();
  let at = lower.indexOf(token);
  while (at >= 0) {
    let before = at - 1;
    while (before >= 0 && (lower.charCodeAt(before) === 0x20 || lower.charCodeAt(before) === 0x09)) before--;
    let after = at + token.length;
    while (after < lower.length && (lower.charCodeAt(after) === 0x20 || lower.charCodeAt(after) === 0x09)) after++;
    if ((before < 0 || lower.charCodeAt(before) === 0x2c) && (after >= lower.length || lower.charCodeAt(after) === 0x2c)) return true;
    at = lower.indexOf(token, at + 1);
  }
  return false;
}

/** `timeout=N` of a Keep-Alive value, in seconds (-1: absent or malformed). */
function keepAliveTimeoutOf(value: string): number {
  const at = value.toLowerCase().indexOf('timeout=');
  if (at < 0) return -1;
  let n = 0;
  let digits = 0;
  for (let i = at + 8; i < value.length && digits < 9; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x30 || c > 0x39) break;
    n = n * 10 + (c - 0x30);
    digits++;
  }
  return digits === 0 ? -1 : n;
}

/**
 * One connection's response parser, reused for every response on it. `expect()` arms it for the
 * next response (HEAD answers have no body); `execute()` feeds bytes; `closed()` reports the end
 * of the connection (which completes a close-delimited body and fails anything else).
 */
export class ResponseParser {
  #sink: ResponseSink;
  #state: State = State.Done;
  #noBody = false;
  /** Bytes of an unfinished head or trailer section, kept across reads (the two never overlap). */
  #pending: Buffer | null = null;
  #remaining = 0;
  #sizeDigits = 0;

  constructor(sink: ResponseSink) {
    this.#sink = sink;
  }

  /** Ready for the response to a request just written (`isHead`: it answers a HEAD). */
  expect(isHead: boolean): void {
    this.#state = State.Head;
    this.#noBody = isHead;
    this.#pending = null;
  }

  /** True while a response is expected or under way. */
  get busy(): boolean {
    return this.#state !== State.Done;
  }

  /**
   * Feeds bytes. Returns the offset just past the response's last byte when it ended in this
   * chunk, or the chunk's length. Throws ParseError on a malformed response.
   */
  execute(chunk: Buffer): number {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      switch (this.#state) {
        case State.Head: {
          i = this.#readHead(chunk, i);
          break;
        }
        case State.Length: {
          const take = Math.min(this.#remaining, n - i);
          this.#remaining -= take;
          const piece = take === n && i === 0 ? chunk : chunk.subarray(i, i + take);
          i += take;
          if (this.#remaining === 0) this.#state = State.Done;
          this.#sink.onBody(piece);
          if (this.#state === State.Done) {
            this.#sink.onEnd(null);
            return i;
          }
          break;
        }
        case State.Close:
          this.#sink.onBody(i === 0 ? chunk : chunk.subarray(i));
          return n;
        case State.ChunkSize: {
          const b = chunk[i];
          const v = hexValue(b);
          if (v >= 0) {
            if (++this.#sizeDigits > 12) throw new ParseError('HPE_INVALID_CHUNK_SIZE', 'chunk size too large');
            this.#remaining = this.#remaining * 16 + v;
          } else if (this.#sizeDigits === 0) {
            throw new ParseError('HPE_INVALID_CHUNK_SIZE', 'invalid chunk size');
          } else if (b === CR) {
            this.#state = State.ChunkSizeLf;
          } else if (b === 0x3b) {
            this.#state = State.ChunkExt;
          } else if (b === 0x20 || b === 0x09) {
            this.#state = State.ChunkSizeWs;
          } else {
            throw new ParseError('HPE_INVALID_CHUNK_SIZE', 'invalid chunk size');
          }
          i++;
          break;
        }
        case State.ChunkSizeWs: {
          const b = chunk[i];
          if (b === CR) this.#state = State.ChunkSizeLf;
          else if (b === 0x3b) this.#state = State.ChunkExt;
          else if (b !== 0x20 && b !== 0x09) throw new ParseError('HPE_INVALID_CHUNK_SIZE', 'invalid chunk size');
          i++;
          break;
        }
        case State.ChunkExt: {
          const b = chunk[i];
          if (b === CR) this.#state = State.ChunkSizeLf;
          else if ((b < 0x20 && b !== 0x09) || b === 0x7f) throw new ParseError('HPE_INVALID_CHUNK_SIZE', 'invalid chunk extension');
          i++;
          break;
        }
        case State.ChunkSizeLf: {
          if (chunk[i] !== LF) throw new ParseError('HPE_STRICT', 'expected LF after chunk size');
          i++;
          if (this.#remaining === 0) {
            this.#state = State.Trailers;
            this.#pending = null;
          } else {
            this.#state = State.ChunkData;
          }
          break;
        }
        case State.ChunkData: {
          const take = Math.min(this.#remaining, n - i);
          this.#remaining -= take;
          const piece = chunk.subarray(i, i + take);
          i += take;
          if (this.#remaining === 0) this.#state = State.ChunkDataCr;
          this.#sink.onBody(piece);
          break;
        }
        case State.ChunkDataCr:
          if (chunk[i] !== CR) throw new ParseError('HPE_STRICT', 'expected CRLF after chunk data');
          this.#state = State.ChunkDataLf;
          i++;
          break;
        case State.ChunkDataLf:
          if (chunk[i] !== LF) throw new ParseError('HPE_STRICT', 'expected CRLF after chunk data');
          this.#state = State.ChunkSize;
          this.#remaining = 0;
          this.#sizeDigits = 0;
          i++;
          break;
        case State.Trailers: {
          const end = this.#readTrailers(chunk, i);
          return end < 0 ? n : end;
        }
        case State.Done:
          // Bytes past the end of the response: the caller decides (an idle connection must not talk).
          return i;
      }
      if ((this.#state as State) === State.Done) return i;
    }
    return n;
  }

  /** The connection ended: completes a close-delimited body; anything else was cut short. */
  closed(): void {
    if (this.#state === State.Close) {
      this.#state = State.Done;
      this.#sink.onEnd(null);
    }
  }

  #readHead(chunk: Buffer, i: number): number {
    let buf: Buffer;
    let searchFrom: number;
    if (this.#pending === null) {
      buf = i === 0 ? chunk : chunk.subarray(i);
      searchFrom = 0;
    } else {
      searchFrom = Math.max(0, this.#pending.length - 3);
      buf = Buffer.concat([this.#pending, i === 0 ? chunk : chunk.subarray(i)]);
    }
    const at = buf.indexOf(HEAD_END, searchFrom);
    if (at < 0) {
      if (buf.length > MAX_HEAD_BYTES) throw new ParseError('HPE_HEADER_OVERFLOW', 'response head too large');
      // A head with bare LF line ends never completes: refuse it now instead of waiting for a timeout.
      for (let lf = buf.indexOf(LF, searchFrom); lf >= 0; lf = buf.indexOf(LF, lf + 1)) {
        if (lf === 0 || buf[lf - 1] !== CR) throw new ParseError('HPE_CR_EXPECTED', 'bare LF in the response head');
      }
      // Kept as a copy: the socket's chunk memory is reused after this read.
      this.#pending = Buffer.from(buf);
      return chunk.length;
    }
    if (at > MAX_HEAD_BYTES) throw new ParseError('HPE_HEADER_OVERFLOW', 'response head too large');
    const before = this.#pending === null ? 0 : this.#pending.length;
    this.#pending = null;
    const consumed = at + 4 - before;
    this.#parseHead(buf, at);
    return i + consumed;
  }

  /** Parses a head (`buf[0..at)`, without its final CRLF CRLF) and picks the body's framing. */
  #parseHead(buf: Buffer, at: number): void {
    // One string for the whole head; names and values are slices of it. The bytes are scanned
    // in the Buffer (a typed-array read per byte), each once.
    const head = latin1(buf, 0, at);
    let lineEnd = buf.indexOf(CRLF);
    if (lineEnd < 0 || lineEnd > at) lineEnd = at;
    // Status line: HTTP/1.x SP 3DIGIT [SP reason]
    if (
      lineEnd < 12 ||
      !head.startsWith('HTTP/1.') ||
      (buf[7] !== 0x30 && buf[7] !== 0x31) ||
      buf[8] !== 0x20 ||
      (lineEnd > 12 && buf[12] !== 0x20)
    ) {
      throw new ParseError('HPE_INVALID_CONSTANT', 'malformed status line');
    }
    let status = 0;
    for (let k = 9; k < 12; k++) {
      const c = buf[k] - 0x30;
      if (c < 0 || c > 9) throw new ParseError('HPE_INVALID_STATUS', 'malformed status code');
      status = status * 10 + c;
    }
    if (status < 100) throw new ParseError('HPE_INVALID_STATUS', 'malformed status code');
    for (let k = 12; k < lineEnd; k++) {
      const b = buf[k];
      if ((b < 0x20 && b !== 0x09) || b === 0x7f) throw new ParseError('HPE_INVALID_STATUS', 'invalid character in the reason phrase');
    }
    const reason = lineEnd > 13 ? head.slice(13, lineEnd) : '';
    const http10 = buf[7] === 0x30;

    const headers: string[] = [];
    readFields(buf, head, lineEnd + 2, at, headers);
    let contentLength = -1;
    let chunked = false;
    let transferEncoding: string | null = null;
    let close = http10;
    let keepAliveTimeout = -1;
    for (let h = 0; h < headers.length; h += 2) {
      const len = headers[h].length;
      if (len !== 14 && len !== 17 && len !== 10) continue;
      const lower = headers[h].toLowerCase();
      const value = headers[h + 1];
      if (lower === 'content-length') {
        if (contentLength >= 0) throw new ParseError('HPE_UNEXPECTED_CONTENT_LENGTH', 'duplicate Content-Length');
        contentLength = parseLength(value);
      } else if (lower === 'transfer-encoding') {
        transferEncoding = transferEncoding === null ? value : `${transferEncoding}, ${value}`;
      } else if (lower === 'connection') {
        if (listHas(value, 'close')) close = true;
        else if (http10 && listHas(value, 'keep-alive')) close = false;
      } else if (lower === 'keep-alive') {
        keepAliveTimeout = keepAliveTimeoutOf(value);
      }
    }

    if (status < 200) {
      // 101 answers an upgrade this client never asks for; other 1xx are interim: skip them.
      if (status === 101) throw new ParseError('HPE_UNEXPECTED_UPGRADE', 'upstream switched protocols unasked');
      this.#state = State.Head;
      return;
    }
    if (transferEncoding !== null) {
      if (contentLength >= 0) throw new ParseError('HPE_UNEXPECTED_CONTENT_LENGTH', 'Content-Length with Transfer-Encoding');
      const last = transferEncoding.slice(transferEncoding.lastIndexOf(',') + 1).trim().toLowerCase();
      chunked = last === 'chunked';
      // RFC 9112 §6.3: a response whose last coding is not chunked runs to the end of the connection.
      if (!chunked) close = true;
    }
    const noBody = this.#noBody || status === 204 || status === 304;
    if (noBody) this.#state = State.Done;
    else if (chunked) {
      this.#state = State.ChunkSize;
      this.#remaining = 0;
      this.#sizeDigits = 0;
    } else if (contentLength >= 0) {
      this.#remaining = contentLength;
      this.#state = contentLength === 0 ? State.Done : State.Length;
    } else {
      this.#state = State.Close;
      close = true;
    }
    this.#sink.onHead(status, reason, headers, !close, keepAliveTimeout < 0 ? -1 : keepAliveTimeout * 1000);
    if (this.#state === State.Done) this.#sink.onEnd(null);
  }

  /** Reads the trailer section; returns the offset past it, or -1 when more bytes are needed. */
  #readTrailers(chunk: Buffer, i: number): number {
    const before = this.#pending === null ? 0 : this.#pending.length;
    const buf = this.#pending === null ? chunk.subarray(i) : Buffer.concat([this.#pending, chunk.subarray(i)]);
    if (buf.length >= 2 && buf[0] === CR && buf[1] === LF) {
      this.#finishTrailers(null);
      return i + 2 - before;
    }
    const at = buf.length < 2 ? -1 : buf.indexOf(HEAD_END);
    if (at < 0) {
      if (buf.length > MAX_HEAD_BYTES) throw new ParseError('HPE_HEADER_OVERFLOW', 'trailers too large');
      this.#pending = Buffer.from(buf);
      return -1;
    }
    const trailers: string[] = [];
    readFields(buf, latin1(buf, 0, at), 0, at, trailers);
    this.#finishTrailers(trailers);
    return i + at + 4 - before;
  }

  #finishTrailers(trailers: string[] | null): void {
    this.#pending = null;
    this.#state = State.Done;
    this.#sink.onEnd(trailers);
  }
}

/** Content-Length: digits only (no sign, list or spaces inside), at most 15 of them. */
function parseLength(value: string): number {
  if (value.length === 0 || value.length > 15) throw new ParseError('HPE_INVALID_CONTENT_LENGTH', 'invalid Content-Length');
  let n = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i) - 0x30;
    if (c < 0 || c > 9) throw new ParseError('HPE_INVALID_CONTENT_LENGTH', 'invalid Content-Length');
    n = n * 10 + c;
  }
  return n;
}
