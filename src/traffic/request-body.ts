import type { IncomingMessage } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';
import { GatewayError } from '../errors/gateway-error.js';
import { followBody } from '../lib/body-events.js';

/** Bodies larger than this are forwarded untouched (no reservation, no usage request). */
export const BODY_INSPECT_MAX_BYTES = 1024 * 1024;

export type ReadBody = { buffer: Buffer; stream: null } | { buffer: null; stream: Readable };

/**
 * Reads a request body up to `max` bytes. Past the bound it gives back a stream that replays
 * what was read and then the rest, so nothing is lost and nothing more is held.
 */
export function readBodyBounded(req: IncomingMessage, max: number, limit: number): Promise<ReadBody> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = followBody(req, {
      data(chunk) {
        size += chunk.length;
        if (size > limit) {
          stop();
          reject(new GatewayError('GW_BODY_TOO_LARGE', { message: `request body is over ${limit} bytes` }));
          return;
        }
        chunks.push(chunk);
        if (size > max) {
          stop();
          req.pause();
          const replay = new PassThrough();
          for (const c of chunks) replay.write(c);
          req.pipe(replay);
          resolve({ buffer: null, stream: replay });
        }
      },
      end() {
        resolve({ buffer: chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size), stream: null });
      },
      fail: reject,
    });
  });
}

export interface CompletionRequest {
  /** `max_tokens` / `max_completion_tokens` when given (the tokens-per-minute reservation). */
  maxTokens: number;
  /** The body to forward when it was changed (stream_options added), else null. */
  rewritten: Buffer | null;
  /** The gateway asked for the usage chunk: the client did not, so it must not see it. */
  injectedUsage: boolean;
}

/**
 * Looks at an OpenAI-style completion request. Anything that is not a JSON object is forwarded
 * as it is: the upstream owns the answer to a bad request.
 */
export function inspectCompletion(body: Buffer, addUsageRequest: boolean): CompletionRequest {
  const out: CompletionRequest = { maxTokens: 0, rewritten: null, injectedUsage: false };
  let obj: unknown;
  try {
    obj = JSON.parse(body.toString('utf8'));
  } catch {
    return out;
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return out;
  const req = obj as Record<string, unknown>;
  const max = typeof req.max_completion_tokens === 'number' ? req.max_completion_tokens : req.max_tokens;
  if (typeof max === 'number' && Number.isFinite(max) && max > 0) out.maxTokens = Math.floor(max);
  if (addUsageRequest && req.stream === true) {
    const so = req.stream_options;
    const hasInclude = so !== null && typeof so === 'object' && !Array.isArray(so) && 'include_usage' in so;
    if (!hasInclude && (so === undefined || so === null || (typeof so === 'object' && !Array.isArray(so)))) {
      req.stream_options = { ...((so as object | null) ?? {}), include_usage: true };
      out.rewritten = Buffer.from(JSON.stringify(req));
      out.injectedUsage = true;
    }
  }
  return out;
}
