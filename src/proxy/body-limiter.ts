import { Transform, type TransformCallback } from 'node:stream';
import { GatewayError } from '../errors/gateway-error.js';

/**
 * Counts the bytes of a request body of unknown length (chunked upload) and fails the stream
 * past the limit. Bodies with a Content-Length are checked up front instead and never pass here.
 */
export class BodyLimiter extends Transform {
  readonly #limit: number;
  #seen = 0;

  constructor(limit: number) {
    super();
    this.#limit = limit;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.#seen += chunk.length;
    if (this.#seen > this.#limit) {
      done(new GatewayError('GW_BODY_TOO_LARGE', { message: `request body is over ${this.#limit} bytes` }));
      return;
    }
    done(null, chunk);
  }
}
