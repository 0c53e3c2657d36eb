import { fstatSync, write as fsWrite, writeSync } from 'node:fs';
import type { Logger } from 'pino';

/** What the data plane needs from an access log. */
export interface AccessLogSink {
  /** False when LOG_LEVEL is above info: the data plane then skips the log entirely. */
  readonly enabled: boolean;
  /**
   * The line of one proxied HTTP request, from positional values so the hot path allocates no
   * fields object. `ttfbMs` < 0 and undefined strings are left out of the line.
   */
  request(
    requestId: string,
    method: string,
    path: string,
    endpoint: string | undefined,
    route: string | undefined,
    status: number,
    bytes: number,
    durationMs: number,
    ttfbMs: number,
    errCode: string | undefined,
    /** Traffic control's fields (docs/traffic-control.md); < 0 leaves them out. */
    priority?: number,
    promptTokens?: number,
    completionTokens?: number,
  ): void;
  /** Any other line (WebSocket sessions): a flat object of fields. */
  info(fields: Record<string, unknown>, msg: string): void;
}

/** An access log on a pino logger (the general logger, when no AccessLog is given: tests, library use). */
export function pinoAccessSink(logger: Logger): AccessLogSink {
  return {
    enabled: logger.isLevelEnabled('info'),
    request(requestId, method, path, endpoint, route, status, bytes, durationMs, ttfbMs, errCode, priority = -1, promptTokens = -1, completionTokens = -1) {
      logger.info(
        {
          request_id: requestId,
          method,
          path,
          endpoint,
          route,
          status,
          bytes,
          duration_ms: Math.round(durationMs * 1000) / 1000,
          ttfb_ms: ttfbMs < 0 ? undefined : Math.round(ttfbMs * 1000) / 1000,
          err_code: errCode,
          priority: priority < 0 ? undefined : priority,
          prompt_tokens: promptTokens < 0 ? undefined : promptTokens,
          completion_tokens: completionTokens < 0 ? undefined : completionTokens,
        },
        'request',
      );
    },
    info: (fields, msg) => logger.info(fields, msg),
  };
}

/** Where batches go: an fd written with fs.write (the thread pool), or a test's function. */
export type BatchWriter = (batch: Buffer, done: (err: NodeJS.ErrnoException | null, written: number) => void) => void;

export interface AccessLogOptions {
  /** LOG_LEVEL: access lines are `info`, so a level above it turns the log off. */
  level: string;
  /** Default: fs.write on fd 1 (stdout). */
  writer?: BatchWriter;
  /** For the exit-time flush; default 1 when no writer is given, none otherwise. */
  fd?: number;
  /** A batch is written once this many bytes are buffered (default 64 KiB)... */
  flushBytes?: number;
  /** ...or this long after its first line (default 100 ms). */
  flushIntervalMs?: number;
  /** Lines arriving while this many bytes wait (buffered plus being written) are dropped (default 4 MiB). */
  maxPendingBytes?: number;
}

const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };

/**
 * JSON string literal in pure ASCII (anything else as \uXXXX), so a batch can be encoded as
 * latin1 (a copy, no UTF-8 pass). The common all-printable-ASCII case skips JSON.stringify.
 */
function quote(s: string): string {
  // A compiled character class beats a charCodeAt loop here (the common case: nothing to escape).
  return NEEDS_ESCAPE.test(s) ? quoteSlow(s) : `"${s}"`;
}

/** Anything outside printable ASCII, a quote or a backslash. */
const NEEDS_ESCAPE = /[^\x20\x21\x23-\x5b\x5d-\x7e]/;

/**
 * The quoted form of the last string seen: a gateway's lines repeat the same method, endpoint
 * and route, so most lines reuse it (a pointer comparison) instead of scanning and concatenating.
 */
class LastQuoted {
  #raw = '';
  #quoted = '""';
  get(s: string): string {
    if (s !== this.#raw) {
      this.#raw = s;
      this.#quoted = quote(s);
    }
    return this.#quoted;
  }
}

function quoteSlow(s: string): string {
  const json = JSON.stringify(s);
  let out = '';
  let from = 0;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (c > 0x7e) {
      out += json.slice(from, i) + `\\u${c.toString(16).padStart(4, '0')}`;
      from = i + 1;
    }
  }
  return from === 0 ? json : out + json.slice(from);
}

/** Milliseconds with three decimals, from integers (a double's shortest-digits formatting costs ~4× more). */
function ms3(ms: number): string {
  const us = Math.round(ms * 1000);
  const frac = us % 1000;
  if (frac === 0) return String(us / 1000);
  let f = frac < 10 ? `00${frac}` : frac < 100 ? `0${frac}` : String(frac);
  // Trailing zeros dropped, as JSON.stringify would: 1.250 -> 1.25.
  while (f.charCodeAt(f.length - 1) === 48) f = f.slice(0, -1);
  return `${(us - frac) / 1000}.${f}`;
}

/**
 * The access log: one JSON line per request, in the shape pino writes
 * (`{"level":"info","time":…,"pid":…,<fields>,"msg":"request"}`), without pino on the hot path.
 * Lines are appended to an in-memory batch that goes out in one asynchronous write (the thread
 * pool, never the event loop) when it reaches 64 KiB or 100 ms after its first line; only one
 * write is in flight at a time. If the destination cannot keep up (a slow disk, a full pipe),
 * lines past `maxPendingBytes` are dropped and counted (`dropped`, exported as
 * modelgate_access_log_dropped_lines_total) instead of slowing requests or growing without bound.
 * The fields are fixed by the proxy (no headers, query strings or tokens), so no redaction pass.
 */
export class AccessLog implements AccessLogSink {
  readonly enabled: boolean;
  /** Lines dropped because the destination fell behind. */
  dropped = 0;
  readonly #write: BatchWriter;
  readonly #fd: number | undefined;
  readonly #flushBytes: number;
  readonly #flushIntervalMs: number;
  readonly #maxPending: number;
  /** Pipes and sockets: at most PIPE_BUF per write, cut at a line end, so workers sharing stdout never interleave inside a line. */
  readonly #maxWrite: number;
  readonly #prefix: string;
  /** Size of each batch buffer (flushBytes, at least 4 KiB). */
  readonly #chunkBytes: number;
  /** The buffer lines are being copied into, and how far it is filled. */
  #cur: Buffer;
  #off = 0;
  /** Filled buffers (and oversized lines) waiting for the write in flight. */
  #queue: Buffer[] = [];
  #queued = 0;
  /** Buffers a finished write gave back. */
  readonly #spare: Buffer[] = [];
  #inFlight = 0;
  #writing = false;
  #timer: NodeJS.Timeout | null = null;
  readonly #method = new LastQuoted();
  readonly #endpoint = new LastQuoted();
  readonly #route = new LastQuoted();
  #lastMs = 0;
  #lastTime = '';
  readonly #onTimer = (): void => {
    this.#timer = null;
    this.#flush();
  };

  constructor(opts: AccessLogOptions) {
    this.enabled = (LEVELS[opts.level] ?? LEVELS.info) <= LEVELS.info;
    this.#fd = opts.writer ? opts.fd : (opts.fd ?? 1);
    const fd = this.#fd ?? 1;
    this.#write = opts.writer ?? ((batch, done) => fsWrite(fd, batch, 0, batch.length, null, done));
    this.#flushBytes = opts.flushBytes ?? 64 * 1024;
    this.#flushIntervalMs = opts.flushIntervalMs ?? 100;
    this.#chunkBytes = Math.max(4096, this.#flushBytes);
    this.#cur = Buffer.allocUnsafeSlow(this.#chunkBytes);
    this.#maxPending = opts.maxPendingBytes ?? 4 * 1024 * 1024;
    this.#prefix = `,"pid":${process.pid},`;
    this.#maxWrite = Infinity;
    if (!opts.writer) {
      try {
        const st = fstatSync(fd);
        if (st.isFIFO() || st.isSocket()) this.#maxWrite = 4096;
      } catch {
        // not a valid fd: writes fail and are counted as dropped
      }
    }
  }

  isLevelEnabled(level: string): boolean {
    return this.enabled && (LEVELS[level] ?? Infinity) >= LEVELS.info;
  }

  request(
    requestId: string,
    method: string,
    path: string,
    endpoint: string | undefined,
    route: string | undefined,
    status: number,
    bytes: number,
    durationMs: number,
    ttfbMs: number,
    errCode: string | undefined,
    priority = -1,
    promptTokens = -1,
    completionTokens = -1,
  ): void {
    if (!this.enabled) return;
    if (this.#buffered + this.#inFlight >= this.#maxPending) {
      this.dropped++;
      return;
    }
    let line = `${this.#head()}"request_id":${quote(requestId)},"method":${this.#method.get(method)},"path":${quote(path)}`;
    if (endpoint !== undefined) line += `,"endpoint":${this.#endpoint.get(endpoint)}`;
    if (route !== undefined) line += `,"route":${this.#route.get(route)}`;
    line += `,"status":${status},"bytes":${bytes},"duration_ms":${ms3(durationMs)}`;
    if (ttfbMs >= 0) line += `,"ttfb_ms":${ms3(ttfbMs)}`;
    if (errCode !== undefined) line += `,"err_code":${quote(errCode)}`;
    if (priority >= 0) line += `,"priority":${priority}`;
    if (promptTokens >= 0) line += `,"prompt_tokens":${promptTokens}`;
    if (completionTokens >= 0) line += `,"completion_tokens":${completionTokens}`;
    this.#append(`${line},"msg":"request"}\n`);
  }

  info(fields: Record<string, unknown>, msg: string): void {
    if (!this.enabled) return;
    if (this.#buffered + this.#inFlight >= this.#maxPending) {
      this.dropped++;
      return;
    }
    let line = this.#head();
    for (const key in fields) {
      const v = fields[key];
      if (v === undefined) continue;
      switch (typeof v) {
        case 'number':
          line += `"${key}":${Number.isFinite(v) ? v : 'null'},`;
          break;
        case 'string':
          line += `"${key}":${quote(v)},`;
          break;
        case 'boolean':
          line += `"${key}":${v},`;
          break;
        default:
          line += `"${key}":${JSON.stringify(v) ?? 'null'},`;
      }
    }
    this.#append(`${line}"msg":${quote(msg)}}\n`);
  }

  /** `{"level":"info","time":…,"pid":…,` with the time string made once per millisecond. */
  #head(): string {
    const now = Date.now();
    if (now !== this.#lastMs) {
      this.#lastMs = now;
      this.#lastTime = `{"level":"info","time":"${new Date(now).toISOString()}"${this.#prefix}`;
    }
    return this.#lastTime;
  }

  #append(line: string): void {
    // Lines are ASCII (quote()), so string length is byte length. Each line is copied into the
    // batch buffer at once: no string outlives the request (nothing for the scavenger to copy or
    // promote), and a flush is a slice instead of a join and a second copy.
    const len = line.length;
    if (this.#off + len > this.#cur.length) {
      this.#seal();
      if (len > this.#cur.length) {
        this.#queue.push(Buffer.from(line, 'latin1'));
        this.#queued += len;
      }
    }
    if (len <= this.#cur.length - this.#off) {
      this.#cur.write(line, this.#off, len, 'latin1');
      this.#off += len;
    }
    if (!this.#writing) this.#flushWhenDue();
  }

  /** Writes at once when a batch's worth (or a sealed buffer) waits; otherwise the timer writes what waits. */
  #flushWhenDue(): void {
    if (this.#queue.length > 0 || this.#off >= this.#flushBytes) this.#flush();
    else if (this.#off > 0 && this.#timer === null) {
      this.#timer = setTimeout(this.#onTimer, this.#flushIntervalMs);
      this.#timer.unref();
    }
  }

  /** Bytes buffered and not yet handed to a write. */
  get #buffered(): number {
    return this.#queued + this.#off;
  }

  /** The current buffer's lines join the queue; writing goes on in a fresh (or recycled) buffer. */
  #seal(): void {
    if (this.#off === 0) return;
    this.#queue.push(this.#cur.subarray(0, this.#off));
    this.#queued += this.#off;
    this.#cur = this.#spare.pop() ?? Buffer.allocUnsafeSlow(this.#chunkBytes);
    this.#off = 0;
  }

  #flush(): void {
    if (this.#writing || this.#buffered === 0) return;
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    if (this.#queue.length === 0) this.#seal();
    const batch = this.#queue.shift()!;
    this.#queued -= batch.length;
    this.#send(batch);
  }

  #send(whole: Buffer): void {
    this.#writing = true;
    this.#inFlight = whole.length;
    let batch = whole;
    if (batch.length > this.#maxWrite) {
      const end = batch.lastIndexOf(10, this.#maxWrite - 1);
      batch = batch.subarray(0, end < 0 ? batch.indexOf(10) + 1 || batch.length : end + 1);
    }
    this.#write(batch, (err, written) => {
      if (err) {
        if (err.code === 'EAGAIN') {
          // A non-blocking pipe is full: try again shortly, keep what waits (bounded by maxPendingBytes).
          setTimeout(() => this.#send(whole), 10).unref();
          return;
        }
        // The destination is gone (EPIPE, EBADF, ...): the batch is lost, and counted.
        this.dropped += countLines(whole);
      } else if (written < whole.length) {
        this.#send(whole.subarray(written));
        return;
      }
      this.#writing = false;
      this.#inFlight = 0;
      // The write is done with the buffer (a partial write's rest is a view of the same memory):
      // keep one for the next seal instead of allocating. Batch buffers are the only ones of
      // exactly that size: an oversized line is longer.
      if (whole.buffer.byteLength === this.#chunkBytes && this.#spare.length < 2) this.#spare.push(Buffer.from(whole.buffer, 0, this.#chunkBytes));
      this.#flushWhenDue();
    });
  }

  /** Writes what is buffered synchronously (process exit); a batch already being written is left to its write. */
  flushSync(): void {
    if (this.#buffered === 0 || this.#fd === undefined) return;
    this.#seal();
    const batches = this.#queue;
    this.#queue = [];
    this.#queued = 0;
    try {
      for (const batch of batches) {
        let off = 0;
        while (off < batch.length) off += writeSync(this.#fd, batch, off);
      }
    } catch {
      // stdout already gone
    }
  }

  /** Writes what is buffered now (tests, shutdown); resolves when nothing is left to write. */
  async flush(): Promise<void> {
    for (let i = 0; i < 1000 && (this.#writing || this.#buffered > 0); i++) {
      this.#flush();
      await new Promise((r) => setTimeout(r, 1));
    }
  }
}

function countLines(batch: Buffer): number {
  let n = 0;
  for (let i = batch.indexOf(10); i >= 0; i = batch.indexOf(10, i + 1)) n++;
  return n;
}
