import type { IncomingMessage } from 'node:http';

/** The client went away before its body was all there. */
export class BodyAbortedError extends Error {
  constructor() {
    super('client aborted the request body');
  }
}

export interface BodyListener {
  data(chunk: Buffer): void;
  end(): void;
  /** A stream error, or BodyAbortedError when the client left mid-body. */
  fail(err: Error): void;
}

/**
 * Follows a request body's events until it ends or fails; returns the function that stops
 * following (called before `end` and `fail` reach the listener, and by a listener that stops early).
 */
export function followBody(req: IncomingMessage, listener: BodyListener): () => void {
  const stop = () => {
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('error', onError);
    req.off('aborted', onAborted);
  };
  const onData = (chunk: Buffer) => listener.data(chunk);
  const onEnd = () => {
    stop();
    listener.end();
  };
  const onError = (err: Error) => {
    stop();
    listener.fail(err);
  };
  const onAborted = () => {
    stop();
    listener.fail(new BodyAbortedError());
  };
  req.on('data', onData);
  req.on('end', onEnd);
  req.on('error', onError);
  req.on('aborted', onAborted);
  return stop;
}
