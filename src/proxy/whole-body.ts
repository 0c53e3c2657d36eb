import type { IncomingMessage } from 'node:http';
import { followBody } from '../lib/body-events.js';

/**
 * Reads a request body whose length the client declared (Content-Length; node's parser holds
 * the client to it) and that is small enough to hold, so that it can go upstream in the same
 * write as the request head: one syscall and no stream pipeline instead of a head write, a body
 * write and the listeners that pipe the request into undici. Rejects with BodyAbortedError when
 * the client leaves mid-body.
 */
export function readWholeBody(req: IncomingMessage, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let first: Buffer | null = null;
    let chunks: Buffer[] | null = null;
    followBody(req, {
      data(chunk) {
        if (first === null) first = chunk;
        else (chunks ??= [first]).push(chunk);
      },
      end() {
        resolve(chunks !== null ? Buffer.concat(chunks, length) : (first ?? Buffer.alloc(0)));
      },
      fail: reject,
    });
  });
}
