import { describe, expect, it } from 'vitest';
import { MAX_HEAD_BYTES, ParseError, ResponseParser, type ResponseSink } from '../../../src/upstream/h1-parser.js';

interface Parsed {
  status: number;
  reason: string;
  headers: string[];
  keepAlive: boolean;
  keepAliveTimeoutMs: number;
  body: Buffer;
  ended: boolean;
  trailers: string[] | null;
  /** Offset execute() returned for the last piece fed. */
  used: number;
}

class Recorder implements ResponseSink {
  heads = 0;
  r: Parsed = { status: 0, reason: '', headers: [], keepAlive: false, keepAliveTimeoutMs: -1, body: Buffer.alloc(0), ended: false, trailers: null, used: 0 };
  #body: Buffer[] = [];
  onHead(status: number, reason: string, headers: string[], keepAlive: boolean, keepAliveTimeoutMs: number): void {
    this.heads++;
    Object.assign(this.r, { status, reason, headers, keepAlive, keepAliveTimeoutMs });
  }
  onBody(chunk: Buffer): void {
    // Views into the fed chunk: copied, as the client's handler must use them before the next read.
    this.#body.push(Buffer.from(chunk));
    this.r.body = Buffer.concat(this.#body);
  }
  onEnd(trailers: string[] | null): void {
    this.r.ended = true;
    this.r.trailers = trailers;
  }
}

/** Feeds `raw` in pieces cut at `cuts` (offsets), returns what the sink saw. */
function parse(raw: string | Buffer, opts: { head?: boolean; cuts?: number[]; close?: boolean } = {}): Parsed {
  const bytes = typeof raw === 'string' ? Buffer.from(raw, 'latin1') : raw;
  const rec = new Recorder();
  const p = new ResponseParser(rec);
  p.expect(opts.head ?? false);
  const cuts = [0, ...(opts.cuts ?? []), bytes.length];
  for (let i = 0; i + 1 < cuts.length; i++) {
    const piece = bytes.subarray(cuts[i], cuts[i + 1]);
    if (piece.length === 0) continue;
    rec.r.used = cuts[i] + p.execute(piece);
    if (rec.r.ended) break;
  }
  if (opts.close) p.closed();
  return rec.r;
}

function parseError(raw: string, opts: { head?: boolean } = {}): string {
  try {
    parse(raw, opts);
  } catch (err) {
    expect(err).toBeInstanceOf(ParseError);
    return (err as ParseError).code;
  }
  throw new Error('no parse error');
}

const OK = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello';
const CHUNKED = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\ngrpc-status: 0\r\nx-t: a b\r\n\r\n';

describe('ResponseParser', () => {
  it('reads a Content-Length response: status, reason, headers as received, body, end', () => {
    const r = parse(OK);
    expect(r).toMatchObject({ status: 200, reason: 'OK', headers: ['Content-Type', 'text/plain', 'Content-Length', '5'], keepAlive: true, ended: true, trailers: null });
    expect(r.body.toString()).toBe('hello');
    expect(r.used).toBe(OK.length);
  });

  it('gives the same result however the bytes are split (every single cut, and byte by byte)', () => {
    for (const raw of [OK, CHUNKED]) {
      const whole = parse(raw);
      for (let cut = 1; cut < raw.length; cut++) {
        const r = parse(raw, { cuts: [cut] });
        expect({ ...r, used: 0 }, `cut at ${cut}`).toEqual({ ...whole, used: 0 });
      }
      const bytewise = parse(raw, { cuts: Array.from({ length: raw.length }, (_, i) => i) });
      expect({ ...bytewise, used: 0 }).toEqual({ ...whole, used: 0 });
    }
  });

  it('decodes chunked bodies with extensions and trailers', () => {
    const r = parse(CHUNKED);
    expect(r.body.toString()).toBe('hello world');
    expect(r.trailers).toEqual(['grpc-status', '0', 'x-t', 'a b']);
    expect(r.ended).toBe(true);
    const plain = parse('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n');
    expect(plain.body.toString()).toBe('0123456789');
    expect(plain.trailers).toBeNull();
  });

  it('reads a body without length or chunking to the end of the connection, which then is not kept', () => {
    const raw = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nstreamed until close';
    const open = parse(raw);
    expect(open.ended).toBe(false);
    expect(open.keepAlive).toBe(false);
    const r = parse(raw, { close: true });
    expect(r.body.toString()).toBe('streamed until close');
    expect(r.ended).toBe(true);
    // A last coding other than chunked: also to the end of the connection (RFC 9112 §6.3).
    const gz = parse('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc', { close: true });
    expect(gz.body.toString()).toBe('abc');
    expect(gz.keepAlive).toBe(false);
  });

  it('has no body for HEAD, 204 and 304 whatever the headers say', () => {
    const head = parse('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n', { head: true });
    expect(head).toMatchObject({ status: 200, ended: true });
    expect(head.body.length).toBe(0);
    for (const status of [204, 304]) {
      const r = parse(`HTTP/1.1 ${status} X\r\nContent-Length: 7\r\n\r\n`);
      expect(r).toMatchObject({ status, ended: true });
    }
  });

  it('skips interim 1xx responses and reports the final one', () => {
    const r = parse('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n' + OK);
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('hello');
    expect(parseError('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n')).toBe('HPE_UNEXPECTED_UPGRADE');
  });

  it('works out keep-alive from the version, Connection and Keep-Alive', () => {
    expect(parse('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n').keepAlive).toBe(false);
    expect(parse('HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n').keepAlive).toBe(true);
    expect(parse('HTTP/1.1 200 OK\r\nConnection: foo, close\r\nContent-Length: 0\r\n\r\n').keepAlive).toBe(false);
    expect(parse('HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 0\r\n\r\n').keepAlive).toBe(true);
    expect(parse('HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=100\r\nContent-Length: 0\r\n\r\n').keepAliveTimeoutMs).toBe(5000);
    expect(parse('HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n')).toMatchObject({ status: 200, reason: '' });
  });

  it('stops at the end of the response and says where: later bytes are not read as a response', () => {
    const r = parse(`${OK}HTTP/1.1 200 OK\r\n`);
    expect(r.ended).toBe(true);
    expect(r.used).toBe(OK.length);
  });

  it('refuses what makes a response ambiguous or malformed, with llhttp error codes', () => {
    const cases: [string, string][] = [
      ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello', 'HPE_UNEXPECTED_CONTENT_LENGTH'],
      ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'HPE_UNEXPECTED_CONTENT_LENGTH'],
      ['HTTP/1.1 200 OK\r\nContent-Length: 1,1\r\n\r\nx', 'HPE_INVALID_CONTENT_LENGTH'],
      ['HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello', 'HPE_INVALID_CONTENT_LENGTH'],
      ['HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\nx', 'HPE_INVALID_CONTENT_LENGTH'],
      ['HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
      ['HTTP/1.1 200 OK\r\nX-A : 1\r\nContent-Length: 0\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
      ['HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
      ['HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
      ['HTTP/1.1 200 OK\r\nX-A: a\nInjected: 1\r\nContent-Length: 0\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
      ['HTTP/1.1 200 OK\r\nNoColon\r\n\r\n', 'HPE_INVALID_HEADER_TOKEN'],
      ['HTTP/1.1 200 OK\nContent-Length: 0\n\n', 'HPE_CR_EXPECTED'],
      ['HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n', 'HPE_INVALID_CONSTANT'],
      ['HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n', 'HPE_INVALID_CONSTANT'],
      ['HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n', 'HPE_INVALID_STATUS'],
      ['HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n', 'HPE_INVALID_STATUS'],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 'HPE_INVALID_CHUNK_SIZE'],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1234567890abc\r\n', 'HPE_INVALID_CHUNK_SIZE'],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n', 'HPE_STRICT'],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n', 'HPE_INVALID_CHUNK_SIZE'],
    ];
    for (const [raw, code] of cases) expect(parseError(raw), JSON.stringify(raw)).toBe(code);
  });

  it('bounds the head at 64 KiB, complete or not', () => {
    const big = `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(MAX_HEAD_BYTES)}\r\n`;
    expect(parseError(big)).toBe('HPE_HEADER_OVERFLOW');
    expect(parseError(`${big}\r\n`)).toBe('HPE_HEADER_OVERFLOW');
  });

  it('is reused response after response on one connection', () => {
    const rec = new Recorder();
    const p = new ResponseParser(rec);
    for (let i = 0; i < 3; i++) {
      rec.r.ended = false;
      p.expect(false);
      expect(p.busy).toBe(true);
      expect(p.execute(Buffer.from(i === 1 ? CHUNKED : OK, 'latin1'))).toBe((i === 1 ? CHUNKED : OK).length);
      expect(rec.r.ended).toBe(true);
      expect(p.busy).toBe(false);
    }
    expect(rec.heads).toBe(3);
  });
});
