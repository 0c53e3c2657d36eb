import { connect, type Socket } from 'node:net';

/**
 * Raw-TCP client for security tests: writes exact bytes to the gateway and collects what comes
 * back, parsed into responses (status, headers, body) where it can be framed.
 */

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface RawResult {
  /** Everything received, as latin1 text. */
  text: string;
  responses: RawResponse[];
  /** The gateway closed the connection (FIN or reset) before `idleMs` passed with no data. */
  closed: boolean;
  /** ms from the last write to the close (or -1). */
  closedAfterMs: number;
}

/** Splits a byte stream of HTTP/1.1 responses; stops at the first thing it cannot frame. */
export function parseResponses(text: string): RawResponse[] {
  const out: RawResponse[] = [];
  let pos = 0;
  while (pos < text.length) {
    const headEnd = text.indexOf('\r\n\r\n', pos);
    if (headEnd < 0) break;
    const lines = text.slice(pos, headEnd).split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (!m) break;
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const c = l.indexOf(':');
      if (c > 0) headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
    }
    let bodyStart = headEnd + 4;
    let body = '';
    if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
      for (;;) {
        const eol = text.indexOf('\r\n', bodyStart);
        if (eol < 0) break;
        const size = parseInt(text.slice(bodyStart, eol), 16);
        bodyStart = eol + 2;
        if (!size) {
          bodyStart += 2;
          break;
        }
        body += text.slice(bodyStart, bodyStart + size);
        bodyStart += size + 2;
      }
    } else {
      const len = Number(headers['content-length'] ?? 0);
      body = text.slice(bodyStart, bodyStart + len);
      bodyStart += len;
    }
    out.push({ status: Number(m[1]), headers, body });
    pos = bodyStart;
  }
  return out;
}

export interface RawSendOptions {
  /** Resolve after this long with no data and no close (default 400 ms). */
  idleMs?: number;
  /** Hard cap (default 5000 ms). */
  maxMs?: number;
  /** Write the payload in these pieces, `delayMs` apart (default: one write). */
  pieces?: (string | Buffer)[];
  delayMs?: number;
  /** Resolve as soon as this many responses were parsed (default: wait for close or idle). */
  untilResponses?: number;
}

/** Sends `payload` on a fresh connection and collects the answer. */
export function rawSend(port: number, payload: string | Buffer, opts: RawSendOptions = {}): Promise<RawResult> {
  const idleMs = opts.idleMs ?? 400;
  const maxMs = opts.maxMs ?? 5000;
  return new Promise((resolve) => {
    const socket: Socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let idle: NodeJS.Timeout | undefined;
    let lastWrite = Date.now();
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(idle);
      clearTimeout(hard);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      resolve({ text, responses: parseResponses(text), closed, closedAfterMs: closed ? Date.now() - lastWrite : -1 });
    };
    const armIdle = () => {
      clearTimeout(idle);
      idle = setTimeout(() => finish(false), idleMs);
    };
    const hard = setTimeout(() => finish(false), maxMs);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (opts.untilResponses !== undefined && parseResponses(Buffer.concat(chunks).toString('latin1')).length >= opts.untilResponses) {
        finish(false);
        return;
      }
      armIdle();
    });
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('connect', async () => {
      const pieces = opts.pieces ?? [payload];
      for (let i = 0; i < pieces.length; i++) {
        if (socket.destroyed) return;
        socket.write(pieces[i]);
        lastWrite = Date.now();
        if (i < pieces.length - 1 && opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
      }
      armIdle();
    });
  });
}

/** `GET path HTTP/1.1` with the given Host and extra header lines, CRLF framed. */
export function rawRequest(method: string, target: string, headerLines: string[], body = ''): string {
  return `${method} ${target} HTTP/1.1\r\n${headerLines.map((h) => h + '\r\n').join('')}\r\n${body}`;
}
