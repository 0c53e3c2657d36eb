/**
 * Finds the top-level `usage` object (and whether `choices` is an empty array) in JSON text fed
 * in pieces, the way an HTTP parser reads a message: no copy of the document is kept. The usage
 * object is read where it lies in the chunk; only a usage object split across chunks is copied
 * (bounded), so the common response allocates nothing.
 *
 * This runs on every metered response, so the state lives in locals during a feed (V8 keeps them
 * in registers) and strings nobody reads are skipped in a tight loop, or natively when long.
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
export const USAGE_MAX_BYTES = 4096;
/** Past this many bytes of one skipped string, the search for its end goes native (long message content). */
const NATIVE_SKIP_AFTER = 32;

const enum Key {
  Other = 0,
  Usage = 1,
  Choices = 2,
}

const USAGE_KEY = 'usage';
const CHOICES_KEY = 'choices';

export interface Usage {
  prompt: number;
  completion: number;
}

export class UsageScanner {
  #depth = 0;
  #inString = false;
  #escape = false;
  /** At depth 1, the next string is a key (after `{` or `,`). */
  #expectKey = false;
  /** Reading a top-level key, matched against "usage" and "choices" as its bytes pass. */
  #inKey = false;
  #keyLen = 0;
  #keyIsUsage = false;
  #keyIsChoices = false;
  #lastKey: Key = Key.Other;
  /** After the `:` of a top-level key, before its value starts. */
  #awaitValue = false;
  #capturing = false;
  #choicesOpen = false;
  /** `choices` seen as `[]`. */
  choicesEmpty = false;
  /** Bytes of a usage object begun in an earlier piece (allocated only when one is split). */
  #spill: Buffer | null = null;
  /** Bytes of the usage object in earlier pieces (counted past the bound, kept up to it). */
  #spillLen = 0;
  /** A top-level usage object (within the bound) ended; its counts, or null when malformed. */
  #seen = false;
  #usage: Usage | null = null;

  reset(): void {
    this.#depth = 0;
    this.#inString = false;
    this.#escape = false;
    this.#expectKey = false;
    this.#inKey = false;
    this.#lastKey = Key.Other;
    this.#awaitValue = false;
    this.#capturing = false;
    this.#spillLen = 0;
    this.#choicesOpen = false;
    this.choicesEmpty = false;
    this.#seen = false;
    this.#usage = null;
  }

  /** True when a `usage` object was seen. */
  get hasUsage(): boolean {
    return this.#seen;
  }

  /** The counts of the last `usage` object seen, or null when absent or malformed. */
  usage(): Usage | null {
    return this.#usage;
  }

  feed(buf: Buffer, start = 0, end = buf.length): void {
    let depth = this.#depth;
    let inString = this.#inString;
    let escape = this.#escape;
    let expectKey = this.#expectKey;
    let inKey = this.#inKey;
    let keyLen = this.#keyLen;
    let keyIsUsage = this.#keyIsUsage;
    let keyIsChoices = this.#keyIsChoices;
    let lastKey = this.#lastKey;
    let awaitValue = this.#awaitValue;
    let capturing = this.#capturing;
    let choicesOpen = this.#choicesOpen;
    // Where the usage object's bytes start in this piece.
    let captureFrom = start;
    // Next backslash at or after i: -2 not searched yet, -1 none in the buffer (searched once, so
    // the native skipping stays linear in the piece).
    let backslash = -2;
    for (let i = start; i < end; i++) {
      const b = buf[i];
      if (inString) {
        if (escape) {
          escape = false;
        } else if (b === BACKSLASH) {
          escape = true;
          // A key spelled with an escape is not taken for "usage" or "choices" (`us\"age` is not
          // `usage`); so a key that matches always holds those bytes as they are (see the SSE meter).
          if (inKey) keyIsUsage = keyIsChoices = false;
        } else if (b === QUOTE) {
          inString = false;
          if (inKey) {
            inKey = false;
            expectKey = false;
            lastKey = keyIsUsage && keyLen === 5 ? Key.Usage : keyIsChoices && keyLen === 7 ? Key.Choices : Key.Other;
          }
        } else if (inKey) {
          if (keyLen < 5 && b !== USAGE_KEY.charCodeAt(keyLen)) keyIsUsage = false;
          if (keyLen < 7 && b !== CHOICES_KEY.charCodeAt(keyLen)) keyIsChoices = false;
          keyLen++;
        } else {
          // A string nobody reads (message content is most of a response): jump to its next
          // quote or backslash, in JS for short runs, natively for long ones.
          let j = i + 1;
          const fast = j + NATIVE_SKIP_AFTER < end ? j + NATIVE_SKIP_AFTER : end;
          while (j < fast) {
            const c = buf[j];
            if (c === QUOTE || c === BACKSLASH) break;
            j++;
          }
          if (j === fast && j < end) {
            const q = buf.indexOf(QUOTE, j);
            let next = q < 0 || q >= end ? end : q;
            if (backslash !== -1 && backslash < j) backslash = buf.indexOf(BACKSLASH, j);
            if (backslash >= 0 && backslash < next) next = backslash;
            j = next;
          }
          i = j - 1;
        }
        continue;
      }
      if (b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09) continue;
      if (awaitValue) {
        awaitValue = false;
        if (lastKey === Key.Usage && b === LBRACE) {
          capturing = true;
          captureFrom = i;
          this.#spillLen = 0;
        } else if (lastKey === Key.Choices && b === LBRACKET) choicesOpen = true;
      } else if (choicesOpen) {
        choicesOpen = false;
        if (b === RBRACKET) this.choicesEmpty = true;
      }
      switch (b) {
        case QUOTE:
          inString = true;
          if (depth === 1 && expectKey) {
            inKey = true;
            keyLen = 0;
            keyIsUsage = true;
            keyIsChoices = true;
          }
          break;
        case LBRACE:
        case LBRACKET:
          depth++;
          expectKey = depth === 1 && b === LBRACE;
          break;
        case RBRACE:
        case RBRACKET:
          depth--;
          if (capturing && depth === 1) {
            capturing = false;
            this.#endCapture(buf, captureFrom, i + 1);
          }
          break;
        case COMMA:
          if (depth === 1) expectKey = true;
          break;
        case COLON:
          if (depth === 1) awaitValue = true;
          break;
        default:
      }
    }
    if (capturing) this.#keep(buf, captureFrom, end);
    this.#depth = depth;
    this.#inString = inString;
    this.#escape = escape;
    this.#expectKey = expectKey;
    this.#inKey = inKey;
    this.#keyLen = keyLen;
    this.#keyIsUsage = keyIsUsage;
    this.#keyIsChoices = keyIsChoices;
    this.#lastKey = lastKey;
    this.#awaitValue = awaitValue;
    this.#capturing = capturing;
    this.#choicesOpen = choicesOpen;
  }

  /** The piece ends inside the usage object: its bytes so far are copied (up to the bound). */
  #keep(buf: Buffer, from: number, to: number): void {
    const len = this.#spillLen;
    this.#spillLen = len + (to - from);
    if (len >= USAGE_MAX_BYTES) return;
    const take = Math.min(to, from + (USAGE_MAX_BYTES - len));
    let spill = this.#spill;
    if (spill === null || spill.length < len + (take - from)) {
      // Small first (a usage object is ~100 bytes), grown up to the bound.
      const bigger = Buffer.allocUnsafe(Math.min(USAGE_MAX_BYTES, Math.max(256, 2 * (len + (take - from)))));
      if (spill !== null && len > 0) spill.copy(bigger, 0, 0, len);
      this.#spill = spill = bigger;
    }
    buf.copy(spill, len, from, take);
  }

  #endCapture(buf: Buffer, from: number, to: number): void {
    const len = this.#spillLen;
    const total = len + (to - from);
    // Too big to be a usage object: ignored (an earlier one stays).
    if (total > USAGE_MAX_BYTES) {
      this.#spillLen = 0;
      return;
    }
    this.#seen = true;
    if (len === 0) {
      this.#usage = readUsage(buf, from, to);
      return;
    }
    this.#keep(buf, from, to);
    this.#spillLen = 0;
    this.#usage = readUsage(this.#spill!, 0, total);
  }
}

/** Steps back over whitespace from `i`; the index of the first byte that is not (or start - 1). */
function backOverSpace(buf: Buffer, i: number, start: number): number {
  while (i >= start && isSpace(buf[i])) i--;
  return i;
}

/**
 * The usage of a whole JSON document whose last top-level member is `"usage": {...}` (where
 * OpenAI-style servers put it), read backwards from the end: the usage object's few dozen bytes
 * instead of the whole body. `undefined` when the document does not end that way (or the usage
 * object is over the bound): then the forward scan decides. For a valid JSON document this is
 * exactly what the forward scan finds (the last top-level `usage` wins there too).
 */
export function usageAtEnd(buf: Buffer, start = 0, end = buf.length): Usage | null | undefined {
  let i = backOverSpace(buf, end - 1, start);
  if (i < start || buf[i] !== RBRACE) return undefined;
  i = backOverSpace(buf, i - 1, start);
  if (i < start || buf[i] !== RBRACE) return undefined;
  const valueEnd = i + 1;
  // Back to the brace that opens the value, following nesting and strings backwards: a quote
  // ends a string (read backwards) unless an odd run of backslashes precedes it.
  let depth = 0;
  for (; i >= start; i--) {
    const b = buf[i];
    if (b === QUOTE) {
      for (i--; ; i--) {
        if (i < start || valueEnd - i > USAGE_MAX_BYTES) return undefined;
        if (buf[i] !== QUOTE) continue;
        let k = i - 1;
        while (k >= start && buf[k] === BACKSLASH) k--;
        if ((i - 1 - k) % 2 === 0) break;
      }
    } else if (b === RBRACE || b === RBRACKET) {
      depth++;
    } else if (b === LBRACE || b === LBRACKET) {
      if (--depth === 0) break;
    }
    if (valueEnd - i > USAGE_MAX_BYTES) return undefined;
  }
  if (i < start || buf[i] !== LBRACE) return undefined;
  const valueStart = i;
  i = backOverSpace(buf, i - 1, start);
  if (i < start || buf[i] !== COLON) return undefined;
  i = backOverSpace(buf, i - 1, start);
  // The key: exactly "usage", its opening quote preceded by `{` or `,` (so not escaped).
  if (i - 6 < start || buf[i] !== QUOTE || buf[i - 6] !== QUOTE || !equals(buf, i - 5, USAGE_BYTES)) return undefined;
  i = backOverSpace(buf, i - 7, start);
  if (i < start || (buf[i] !== COMMA && buf[i] !== LBRACE)) return undefined;
  return readUsage(buf, valueStart, valueEnd);
}

const enum Field {
  None = 0,
  Prompt = 1,
  Completion = 2,
}

const PROMPT_TOKENS = Buffer.from('prompt_tokens');
const COMPLETION_TOKENS = Buffer.from('completion_tokens');
const INPUT_TOKENS = Buffer.from('input_tokens');
const OUTPUT_TOKENS = Buffer.from('output_tokens');
/** The bytes every top-level `usage` key holds as they are (no escapes: see feed). */
export const USAGE_BYTES = Buffer.from(USAGE_KEY);

/** `raw[start..]` begins with `key` (the caller checked the length). */
function equals(raw: Buffer, start: number, key: Buffer): boolean {
  for (let k = 0; k < key.length; k++) if (raw[start + k] !== key[k]) return false;
  return true;
}

/** Which count a key of the usage object names (OpenAI and Responses-API spellings). */
function fieldOf(raw: Buffer, start: number, end: number): Field {
  const len = end - start;
  const first = raw[start];
  if (len === 13 && first === 0x70) return equals(raw, start, PROMPT_TOKENS) ? Field.Prompt : Field.None;
  if (len === 17 && first === 0x63) return equals(raw, start, COMPLETION_TOKENS) ? Field.Completion : Field.None;
  if (len === 12 && first === 0x69) return equals(raw, start, INPUT_TOKENS) ? Field.Prompt : Field.None;
  if (len === 13 && first === 0x6f) return equals(raw, start, OUTPUT_TOKENS) ? Field.Completion : Field.None;
  return Field.None;
}

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

/**
 * Reads the two counts from the bytes of a `usage` object (`raw[start..end)`) without JSON.parse
 * (this runs once per metered response). Only keys of the object itself count; a count must be a
 * plain non-negative integer. Anything malformed around a count makes it absent; the structure
 * was already checked by the scanner (balanced braces, strings closed).
 */
export function readUsage(raw: Buffer, start = 0, end = raw.length): Usage | null {
  let prompt = -1;
  let completion = -1;
  let depth = 0;
  let i = start;
  const n = end;
  while (i < n) {
    const b = raw[i];
    if (b === QUOTE) {
      const from = i + 1;
      let j = from;
      while (j < n && raw[j] !== QUOTE) j += raw[j] === BACKSLASH ? 2 : 1;
      const field = depth === 1 && j <= n ? fieldOf(raw, from, j) : Field.None;
      i = j + 1;
      if (field === Field.None) continue;
      while (i < n && isSpace(raw[i])) i++;
      if (i >= n || raw[i] !== COLON) continue;
      i++;
      while (i < n && isSpace(raw[i])) i++;
      let value = 0;
      let digits = 0;
      while (i < n && raw[i] >= 0x30 && raw[i] <= 0x39 && digits < 13) {
        value = value * 10 + (raw[i] - 0x30);
        digits++;
        i++;
      }
      // A number must end there: `12.5`, `1e3`, `12abc` or more than 12 digits are not counts.
      const next = i < n ? raw[i] : -1;
      const ends = next === COMMA || next === RBRACE || isSpace(next);
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
