import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * A raw-TCP upstream that records the exact bytes it receives on each connection and frames
 * them itself (Content-Length or chunked, as RFC 9112 says), so a test can count how many
 * requests an upstream really saw and check the bytes of each one. It answers every request
 * with one fixed HTTP/1.1 response (or `respond` bytes of the test's choosing).
 */

export interface RawRequest {
  /** The request line, e.g. `GET /x HTTP/1.1`. */
  line: string;
  method: string;
  target: string;
  /** Header lines in order, exactly as received (name and value). */
  headers: [string, string][];
  /** The framed body after chunked decoding, if any. */
  body: Buffer;
  /** The bytes of this request on the wire (head + framed body). */
  raw: Buffer;
}

export interface RawConnection {
  /** Every byte received on this connection, in order. */
  data: Buffer;
  requests: RawRequest[];
  /** Bytes the recorder could not frame (a malformed request); non-empty means a problem. */
  garbage: string;
  closed: boolean;
}

export interface RawUpstream {
  server: Server;
  port: number;
  url: string;
  connections: RawConnection[];
  /** Every request across connections, in arrival order. */
  requests: RawRequest[];
  /** Headers of request `i` as a lower-case name → values map. */
  headerValues(req: RawRequest, name: string): string[];
  reset(): void;
  close(): Promise<void>;
}

export const FIXED_RESPONSE = 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok';

export interface RawUpstreamOptions {
  /** Bytes written back for each request (default FIXED_RESPONSE). */
  respond?: (req: RawRequest) => string | Buffer;
}

/** Tries to frame one request at the start of `buf`; returns null when more bytes are needed. */
function frameOne(buf: Buffer): { req: RawRequest; used: number } | null | 'bad' {
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd < 0) return buf.length > 64 * 1024 ? 'bad' : null;
  const head = buf.subarray(0, headEnd).toString('latin1');
  const lines = head.split('\r\n');
  const line = lines[0];
  const parts = line.split(' ');
  if (parts.length !== 3 || !parts[2].startsWith('HTTP/1.')) return 'bad';
  const headers: [string, string][] = [];
  let contentLength = -1;
  let chunked = false;
  for (const h of lines.slice(1)) {
    const colon = h.indexOf(':');
    if (colon <= 0) return 'bad';
    const name = h.slice(0, colon);
    const value = h.slice(colon + 1).trim();
    headers.push([name, value]);
    const lower = name.toLowerCase();
    if (lower === 'content-length') {
      if (contentLength >= 0 || !/^\d+$/.test(value)) return 'bad';
      contentLength = Number(value);
    } else if (lower === 'transfer-encoding') {
      if (value.toLowerCase() !== 'chunked' || chunked) return 'bad';
      chunked = true;
    }
  }
  if (chunked && contentLength >= 0) return 'bad';
  let pos = headEnd + 4;
  let body = Buffer.alloc(0);
  if (chunked) {
    const parts: Buffer[] = [];
    for (;;) {
      const eol = buf.indexOf('\r\n', pos);
      if (eol < 0) return null;
      const sizeText = buf.subarray(pos, eol).toString('latin1').split(';')[0];
      if (!/^[0-9a-fA-F]+$/.test(sizeText)) return 'bad';
      const size = parseInt(sizeText, 16);
      pos = eol + 2;
      if (size === 0) {
        // Trailers (none expected) end with an empty line.
        const end = buf.indexOf('\r\n', pos);
        if (end < 0) return null;
        if (end !== pos) {
          const trailerEnd = buf.indexOf('\r\n\r\n', pos);
          if (trailerEnd < 0) return null;
          pos = trailerEnd + 4;
        } else {
          pos = end + 2;
        }
        break;
      }
      if (buf.length < pos + size + 2) return null;
      parts.push(buf.subarray(pos, pos + size));
      if (buf[pos + size] !== 13 || buf[pos + size + 1] !== 10) return 'bad';
      pos += size + 2;
    }
    body = Buffer.concat(parts);
  } else if (contentLength > 0) {
    if (buf.length < pos + contentLength) return null;
    body = Buffer.from(buf.subarray(pos, pos + contentLength));
    pos += contentLength;
  }
  return {
    req: { line, method: parts[0], target: parts[1], headers, body, raw: Buffer.from(buf.subarray(0, pos)) },
    used: pos,
  };
}

export async function startRawUpstream(opts: RawUpstreamOptions = {}): Promise<RawUpstream> {
  const connections: RawConnection[] = [];
  const requests: RawRequest[] = [];
  const sockets = new Set<Socket>();
  const respond = opts.respond ?? (() => FIXED_RESPONSE);
  const server = createServer((socket) => {
    sockets.add(socket);
    const conn: RawConnection = { data: Buffer.alloc(0), requests: [], garbage: '', closed: false };
    connections.push(conn);
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      conn.data = Buffer.concat([conn.data, chunk]);
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        const framed = frameOne(pending);
        if (framed === null) return;
        if (framed === 'bad') {
          conn.garbage += pending.toString('latin1');
          pending = Buffer.alloc(0);
          socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
          return;
        }
        pending = pending.subarray(framed.used);
        conn.requests.push(framed.req);
        requests.push(framed.req);
        if (!socket.destroyed) socket.write(respond(framed.req));
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      conn.closed = true;
      sockets.delete(socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    connections,
    requests,
    headerValues(req, name) {
      const lower = name.toLowerCase();
      return req.headers.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v);
    },
    reset() {
      connections.length = 0;
      requests.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
