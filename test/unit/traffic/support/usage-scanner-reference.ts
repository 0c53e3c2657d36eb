// The byte-by-byte usage scanner as it was before the hot-path work (issue 15, item 5): the
// reference the rewritten src/traffic/usage-scanner.ts must agree with on every input. Two fixes:
// a finished usage object is copied, so a later unfinished one cannot overwrite it; a key spelled
// with an escape (`us\"age`) is no longer taken for `usage`.
/**
 * Finds the top-level `usage` object (and whether `choices` is an empty array) in JSON text fed
 * in pieces, byte by byte, the way an HTTP parser reads a message: no copy of the document is
 * kept, only the bytes of the `usage` value itself (bounded).
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;

/** A `usage` object bigger than this is not one (and is ignored). */
const USAGE_MAX_BYTES = 4096;
const KEY_MAX = 16;

const enum Key {
  Other = 0,
  Usage = 1,
  Choices = 2,
}

interface Usage {
  prompt: number;
  completion: number;
}

export class ReferenceUsageScanner {
  #depth = 0;
  #inString = false;
  #escape = false;
  /** At depth 1, the next string is a key (after `{` or `,`). */
  #expectKey = false;
  #keyBytes: number[] = [];
  #capturingKey = false;
  #lastKey: Key = Key.Other;
  /** After the `:` of a top-level key, before its value starts. */
  #awaitValue = false;
  #capture: Buffer | null = null;
  #captureLen = 0;
  #capturing = false;
  #choicesOpen = false;
  /** `choices` seen as `[]`. */
  choicesEmpty = false;
  /** Raw bytes of the last top-level `usage` object. */
  #usageRaw: Buffer | null = null;

  reset(): void {
    this.#depth = 0;
    this.#inString = false;
    this.#escape = false;
    this.#expectKey = false;
    this.#capturingKey = false;
    this.#lastKey = Key.Other;
    this.#awaitValue = false;
    this.#capturing = false;
    this.#captureLen = 0;
    this.#choicesOpen = false;
    this.choicesEmpty = false;
    this.#usageRaw = null;
  }

  /** True when a `usage` object was seen. */
  get hasUsage(): boolean {
    return this.#usageRaw !== null;
  }

  feed(buf: Buffer, start = 0, end = buf.length): void {
    // Next backslash at or after i in this chunk: -2 unknown, -1 none (searched once, kept, so
    // the skipping below stays linear in the chunk).
    let backslash = -2;
    for (let i = start; i < end; i++) {
      // Inside a string that is not being kept: jump to the next quote or backslash natively
      // (message content is most of an LLM response's bytes).
      if (this.#inString && !this.#escape && !this.#capturing && !this.#capturingKey) {
        const q = buf.indexOf(QUOTE, i);
        let next = q < 0 || q >= end ? end : q;
        if (backslash !== -1 && backslash < i) backslash = buf.indexOf(BACKSLASH, i);
        if (backslash >= 0 && backslash < next) next = backslash;
        if (next >= end) return;
        i = next;
      }
      this.#byte(buf[i]);
    }
  }

  #byte(b: number): void {
    if (this.#capturing) this.#keep(b);
    if (this.#inString) {
      if (this.#escape) this.#escape = false;
      else if (b === BACKSLASH) {
        this.#escape = true;
        // (Added: a key with an escape never matches; the original dropped the escaped bytes.)
        if (this.#capturingKey) this.#keyBytes.push(0);
      }
      else if (b === QUOTE) {
        this.#inString = false;
        if (this.#capturingKey) this.#endKey();
      } else if (this.#capturingKey && this.#keyBytes.length <= KEY_MAX) this.#keyBytes.push(b);
      return;
    }
    if (b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09) return;
    if (this.#awaitValue) {
      this.#awaitValue = false;
      if (this.#lastKey === Key.Usage && b === LBRACE) this.#startCapture(b);
      else if (this.#lastKey === Key.Choices && b === LBRACKET) this.#choicesOpen = true;
    } else if (this.#choicesOpen) {
      this.#choicesOpen = false;
      if (b === RBRACKET) this.choicesEmpty = true;
    }
    switch (b) {
      case QUOTE:
        this.#inString = true;
        if (this.#depth === 1 && this.#expectKey) {
          this.#capturingKey = true;
          this.#keyBytes.length = 0;
        }
        return;
      case LBRACE:
      case LBRACKET:
        this.#depth++;
        this.#expectKey = this.#depth === 1 && b === LBRACE;
        return;
      case RBRACE:
      case RBRACKET:
        this.#depth--;
        if (this.#capturing && this.#depth === 1) this.#endCapture();
        return;
      case COMMA:
        if (this.#depth === 1) this.#expectKey = true;
        return;
      case COLON:
        if (this.#depth === 1) this.#awaitValue = true;
        return;
      default:
    }
  }

  #endKey(): void {
    this.#capturingKey = false;
    this.#expectKey = false;
    const k = this.#keyBytes;
    // "usage" / "choices", compared without building a string.
    if (k.length === 5 && k[0] === 0x75 && k[1] === 0x73 && k[2] === 0x61 && k[3] === 0x67 && k[4] === 0x65) this.#lastKey = Key.Usage;
    else if (k.length === 7 && k[0] === 0x63 && k[1] === 0x68 && k[2] === 0x6f && k[3] === 0x69 && k[4] === 0x63 && k[5] === 0x65 && k[6] === 0x73) {
      this.#lastKey = Key.Choices;
    } else this.#lastKey = Key.Other;
  }

  #startCapture(b: number): void {
    // Small first (a usage object is ~100 bytes), grown up to the bound.
    this.#capture ??= Buffer.allocUnsafe(256);
    this.#capturing = true;
    this.#captureLen = 0;
    this.#keep(b);
  }

  #keep(b: number): void {
    const len = this.#captureLen++;
    if (len >= USAGE_MAX_BYTES) return;
    let cap = this.#capture!;
    if (len === cap.length) {
      const bigger = Buffer.allocUnsafe(Math.min(USAGE_MAX_BYTES, cap.length * 2));
      cap.copy(bigger);
      this.#capture = cap = bigger;
    }
    cap[len] = b;
  }

  #endCapture(): void {
    this.#capturing = false;
    // The capture buffer is this scanner's own; it is not reused before usage() reads it.
    // (Copied here: the original kept a view that a later, unfinished capture overwrote.)
    if (this.#captureLen <= USAGE_MAX_BYTES) this.#usageRaw = Buffer.from(this.#capture!.subarray(0, this.#captureLen));
  }

  /** The counts of the `usage` object seen, or null when absent or malformed. */
  usage(): Usage | null {
    const raw = this.#usageRaw;
    return raw === null ? null : readUsage(raw);
  }
}

const enum Field {
  None = 0,
  Prompt = 1,
  Completion = 2,
}

/** Which count a key of the usage object names (OpenAI and Responses-API spellings). */
function fieldOf(raw: Buffer, start: number, end: number): Field {
  const len = end - start;
  if (len === 13 && raw.toString('latin1', start, end) === 'prompt_tokens') return Field.Prompt;
  if (len === 17 && raw.toString('latin1', start, end) === 'completion_tokens') return Field.Completion;
  if (len === 12 && raw.toString('latin1', start, end) === 'input_tokens') return Field.Prompt;
  if (len === 13 && raw.toString('latin1', start, end) === 'output_tokens') return Field.Completion;
  return Field.None;
}

/**
 * Reads the two counts from the bytes of a `usage` object without JSON.parse (this runs once per
 * metered response). Only keys of the object itself count; a count must be a plain non-negative
 * integer. Anything malformed around a count makes it absent; the structure was already checked
 * by the scanner (balanced braces, strings closed).
 */
function readUsage(raw: Buffer): Usage | null {
  let prompt = -1;
  let completion = -1;
  let depth = 0;
  let i = 0;
  const n = raw.length;
  while (i < n) {
    const b = raw[i];
    if (b === QUOTE) {
      const start = i + 1;
      let j = start;
      while (j < n && raw[j] !== QUOTE) j += raw[j] === BACKSLASH ? 2 : 1;
      const field = depth === 1 ? fieldOf(raw, start, j) : Field.None;
      i = j + 1;
      if (field === Field.None) continue;
      while (i < n && (raw[i] === 0x20 || raw[i] === 0x0a || raw[i] === 0x0d || raw[i] === 0x09)) i++;
      if (raw[i] !== COLON) continue;
      i++;
      while (i < n && (raw[i] === 0x20 || raw[i] === 0x0a || raw[i] === 0x0d || raw[i] === 0x09)) i++;
      let value = 0;
      let digits = 0;
      while (i < n && raw[i] >= 0x30 && raw[i] <= 0x39 && digits < 13) {
        value = value * 10 + (raw[i] - 0x30);
        digits++;
        i++;
      }
      // A number must end there: `12.5`, `1e3`, `12abc` or more than 12 digits are not counts.
      const next = raw[i];
      const ends = next === COMMA || next === RBRACE || next === 0x20 || next === 0x0a || next === 0x0d || next === 0x09;
      if (digits === 0 || digits > 12 || !ends) continue;
      if (field === Field.Prompt) prompt = value;
      else completion = value;
      continue;
    }
    if (b === LBRACE || b === LBRACKET) depth++;
    else if (b === RBRACE || b === RBRACKET) depth--;
    i++;
  }
  if (prompt < 0 && completion < 0) return null;
  return { prompt: prompt < 0 ? 0 : prompt, completion: completion < 0 ? 0 : completion };
}
