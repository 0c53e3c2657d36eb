import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { HttpError } from '../errors/to-http.js';

/**
 * The one writer of an error response straight onto a socket that has no ServerResponse (a
 * connection refused before node:http made a request of it: over the connection cap, CONNECT, a
 * request node's parser rejected). The connection always closes afterwards.
 */
export function writeRawError(socket: Duplex, http: HttpError, requestId: string, status = http.status): void {
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n`;
  for (const name in http.headers) head += `${name}: ${http.headers[name]}\r\n`;
  head += `x-request-id: ${requestId}\r\ncontent-length: ${Buffer.byteLength(http.body)}\r\nconnection: close\r\n\r\n`;
  socket.end(head + http.body);
  (socket as Duplex & { destroySoon?: () => void }).destroySoon?.();
}
