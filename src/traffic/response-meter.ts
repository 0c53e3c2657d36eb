import { USAGE_BYTES, UsageScanner, usageAtEnd, type Usage } from './usage-scanner.js';

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const SPACE = 0x20;
const DATA = [0x64, 0x61, 0x74, 0x61];

/** An event held back for filtering that grows past this is passed on as it is. */
export const HELD_EVENT_MAX_BYTES = 1024 * 1024;

export const enum MeterMode {
  None = 0,
  Json = 1,
  Sse = 2,
}

const enum Line {
  Field = 0,
  AfterColon = 1,
  Data = 2,
  Skip = 3,
}

/** Picks the mode from a response's Content-Type (null: none). */
export function meterModeFor(contentType: string | undefined): MeterMode {
  if (contentType === undefined) return MeterMode.None;
  // The values servers send, recognised without a lower-cased copy.
  if (contentType === 'application/json') return MeterMode.Json;
  if (contentType === 'text/event-stream' || contentType === 'text/event-stream; charset=utf-8') return MeterMode.Sse;
  const ct = contentType.toLowerCase();
  if (ct.includes('text/event-stream')) return MeterMode.Sse;
  if (ct.includes('json')) return MeterMode.Json;
  return MeterMode.None;
}

/**
 * Reads `usage` from a response as its bytes pass: a JSON body's top-level `usage`, or the last
 * SSE event carrying one. Pass-through mode never holds a byte. Filter mode (the gateway asked for
 * the usage chunk, the client did not) holds each event only until its blank line and drops the
 * usage-only event (`choices: []`).
 */
export class ResponseMeter {
  /** Made on first use: a JSON body read whole from its end, or a stream of content chunks, needs none. */
  #scanner: UsageScanner | null = null;
  readonly #mode: MeterMode;
  readonly #filter: boolean;
  /** The response's Content-Length (-1: unknown): a chunk this long is the whole body. */
  readonly #length: number;
  /** JSON: the usage was read from the whole body at once; the rest passes unread. */
  #settled = false;
  usage: Usage | null = null;
  /** Events seen (SSE). */
  events = 0;
  #line: Line = Line.Field;
  #fieldLen = 0;
  #fieldIsData = true;
  #lineEmpty = true;
  #lastCR = false;
  #eventHasData = false;
  /** Bytes of the event held back (filter mode only; allocated when first needed). */
  #pending: Buffer[] | null = null;
  #pendingLen = 0;
  #passEvent = false;

  constructor(mode: MeterMode, filter: boolean, length = -1) {
    this.#mode = mode;
    this.#filter = filter && mode === MeterMode.Sse;
    this.#length = length;
  }

  /** Feeds a chunk; returns what to send to the client now (the chunk itself unless filtering). */
  onData(chunk: Buffer): Buffer | null {
    if (this.#mode === MeterMode.Json) {
      if (this.#settled) return chunk;
      // The whole body in one chunk (the usual non-streamed answer): its usage is its last
      // member, read from the end; otherwise the forward scan reads it as the bytes pass.
      if (chunk.length === this.#length) {
        const usage = usageAtEnd(chunk);
        if (usage !== undefined) {
          this.usage = usage;
          this.#settled = true;
          return chunk;
        }
      }
      this.#scan().feed(chunk);
      return chunk;
    }
    if (!this.#filter) {
      this.#sse(chunk, null);
      return chunk;
    }
    const out: Buffer[] = [];
    this.#sse(chunk, out);
    if (out.length === 0) return null;
    return out.length === 1 ? out[0] : Buffer.concat(out);
  }

  /** End of the body: a JSON body's usage, and any held bytes of an unterminated event. */
  end(): Buffer | null {
    if (this.#mode === MeterMode.Json) {
      if (!this.#settled) this.usage = this.#scanner === null ? null : this.#scanner.usage();
      return null;
    }
    if (this.#eventHasData) this.#dispatch(null, null);
    if (this.#pendingLen === 0) return null;
    const rest = Buffer.concat(this.#pending!);
    this.#pending = null;
    this.#pendingLen = 0;
    return rest;
  }

  #sse(chunk: Buffer, out: Buffer[] | null): void {
    let eventStart = 0;
    const n = chunk.length;
    // Next "usage" in the chunk at or after a data line: -2 not searched yet, -1 none left.
    let usageAt = -2;
    for (let i = 0; i < n; i++) {
      const b = chunk[i];
      if (this.#lastCR) {
        this.#lastCR = false;
        if (b === LF) {
          // The LF of a CRLF: the line already ended at the CR, but the event's bytes end here.
          if (this.#eventEndsAfterLF) {
            this.#eventEndsAfterLF = false;
            this.#finishEvent(chunk, eventStart, i + 1, out);
            eventStart = i + 1;
          }
          continue;
        }
        if (this.#eventEndsAfterLF) {
          this.#eventEndsAfterLF = false;
          this.#finishEvent(chunk, eventStart, i, out);
          eventStart = i;
        }
      }
      if (b === LF || b === CR) {
        const blank = this.#lineEmpty;
        if (!blank && this.#line === Line.Data) this.#dataLineEnd();
        this.#line = Line.Field;
        this.#fieldLen = 0;
        this.#fieldIsData = true;
        this.#lineEmpty = true;
        if (b === CR) this.#lastCR = true;
        if (blank) {
          if (b === CR) this.#eventEndsAfterLF = true;
          else {
            this.#finishEvent(chunk, eventStart, i + 1, out);
            eventStart = i + 1;
          }
        }
        continue;
      }
      this.#lineEmpty = false;
      switch (this.#line) {
        case Line.Field:
          if (b === COLON) {
            this.#line = this.#fieldIsData && this.#fieldLen === 4 ? Line.AfterColon : Line.Skip;
          } else {
            if (this.#fieldLen >= 4 || b !== DATA[this.#fieldLen]) this.#fieldIsData = false;
            this.#fieldLen++;
          }
          break;
        case Line.AfterColon: {
          const first = !this.#eventHasData;
          this.#startData();
          this.#line = Line.Data;
          // The value starts after one optional space and runs to the end of the line.
          const from = b === SPACE ? i + 1 : i;
          let j = from;
          while (j < n && chunk[j] !== LF && chunk[j] !== CR) j++;
          i = j - 1;
          // The event's only data line, whole in this chunk, and no "usage" in its bytes: no
          // usage object can be in it (a matching key holds those bytes as they are), so the
          // scanner need not read it. Content chunks of a stream are all like that.
          if (first && blankLineAt(chunk, j)) {
            if (usageAt !== -1 && usageAt < from) usageAt = chunk.indexOf(USAGE_BYTES, from);
            if (usageAt < 0 || usageAt >= j) break;
          }
          this.#scan().feed(chunk, from, j);
          break;
        }
        case Line.Data: {
          // Feed the run of value bytes up to the end of the line in one call.
          let j = i;
          while (j < n && chunk[j] !== LF && chunk[j] !== CR) j++;
          this.#scan().feed(chunk, i, j);
          i = j - 1;
          break;
        }
        default:
      }
    }
    if (out !== null && eventStart < n) this.#hold(chunk.subarray(eventStart), out);
  }

  #eventEndsAfterLF = false;

  #scan(): UsageScanner {
    return (this.#scanner ??= new UsageScanner());
  }

  #startData(): void {
    // A second data line of the same event joins the first with a newline.
    if (this.#eventHasData) this.#scan().feed(NEWLINE, 0, 1);
    this.#eventHasData = true;
  }

  #dataLineEnd(): void {
    // "data:" with nothing after it still is a (empty) data line.
  }

  #finishEvent(chunk: Buffer, start: number, end: number, out: Buffer[] | null): void {
    const usageOnly = this.#dispatch(chunk, out);
    if (out === null) return;
    if (this.#passEvent) {
      this.#passEvent = false;
      if (end > start) out.push(chunk.subarray(start, end));
      return;
    }
    const pending = this.#pending;
    this.#pending = null;
    this.#pendingLen = 0;
    if (usageOnly) return;
    if (pending !== null) for (const p of pending) out.push(p);
    if (end > start) out.push(chunk.subarray(start, end));
  }

  /** An event ended: keeps its usage; true when it carried nothing but usage. */
  #dispatch(_chunk: Buffer | null, _out: Buffer[] | null): boolean {
    if (!this.#eventHasData) return false;
    this.events++;
    const s = this.#scanner;
    let usageOnly = false;
    if (s !== null) {
      if (s.hasUsage) {
        const u = s.usage();
        if (u !== null) {
          this.usage = u;
          usageOnly = s.choicesEmpty;
        }
      }
      s.reset();
    }
    this.#eventHasData = false;
    return usageOnly;
  }

  #hold(bytes: Buffer, out: Buffer[]): void {
    if (this.#passEvent) {
      out.push(bytes);
      return;
    }
    // Copy: the chunk's memory belongs to the connection once we return.
    const copy = Buffer.from(bytes);
    const pending = (this.#pending ??= []);
    pending.push(copy);
    this.#pendingLen += copy.length;
    if (this.#pendingLen > HELD_EVENT_MAX_BYTES) {
      // Too big to be a usage chunk: let it through and stop holding this event.
      for (const p of pending) out.push(p);
      this.#pending = null;
      this.#pendingLen = 0;
      this.#passEvent = true;
    }
  }
}

const NEWLINE = Buffer.from('\n');

/** The line ending at `j` (LF, CR or CRLF there) is followed by a blank line within the chunk. */
function blankLineAt(chunk: Buffer, j: number): boolean {
  const n = chunk.length;
  if (j >= n) return false;
  let k = j + 1;
  if (chunk[j] === CR && k < n && chunk[k] === LF) k++;
  return k < n && (chunk[k] === LF || chunk[k] === CR);
}
