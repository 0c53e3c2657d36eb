import type { IncomingMessage } from 'node:http';

/** The client went away before its body was all there (nothing was sent upstream). */
export class BodyAbortedError extends Error {
  constructor() {
    super('client aborted the request body');
  }
}

/**
 * Reads a request body whose length the client declared (Content-Length; node's parser holds
 * the client to it) and that is small enough to hold, so that it can go upstream in the same
 * write as the request head: one syscall and no stream pipeline instead of a head write, a body
 * write and the listeners that pipe the request into undici.
 */
export function readWholeBody(req: IncomingMessage, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let first: Buffer | null = null;
    let chunks: Buffer[] | null = null;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
    };
    const onData = (chunk: Buffer) => {
      if (first === null) first = chunk;
      else (chunks ??= [first]).push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks !== null ? Buffer.concat(chunks, length) : (first ?? Buffer.alloc(0)));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onAborted = () => {
      cleanup();
      reject(new BodyAbortedError());
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}
