/**
 * IP address parsing without regexes or allocation on the IPv4 path. Every address is held as
 * four 32-bit words of an IPv6 address; IPv4 `a.b.c.d` is stored as `::ffff:a.b.c.d`, so an
 * IPv4-mapped IPv6 peer (`::ffff:10.0.0.1`, what a dual-stack socket reports) matches IPv4
 * CIDRs and plain IPv4 addresses alike.
 */

const V4_MAPPED_WORD2 = 0x0000ffff;

/** Parses dotted IPv4 in s[start..end) into a 32-bit number, or -1. */
function parseIPv4(s: string, start: number, end: number): number {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let parts = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || parts === 3) return -1;
      value = value * 256 + octet;
      parts++;
      octet = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return -1; // no leading zeros (octal ambiguity)
      octet = octet * 10 + (c - 48);
      if (octet > 255 || ++digits > 3) return -1;
    } else {
      return -1;
    }
  }
  if (digits === 0 || parts !== 3) return -1;
  return value * 256 + octet;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** Parses IPv6 (with `::`, embedded IPv4, zone id) in s[start..end) into 8 groups. */
function parseIPv6(s: string, start: number, end: number, groups: Uint16Array): boolean {
  const zone = s.indexOf('%', start);
  if (zone >= 0 && zone < end) end = zone;
  let count = 0;
  let gap = -1; // group index where `::` sits
  let i = start;
  if (end - start >= 2 && s.charCodeAt(start) === 58 && s.charCodeAt(start + 1) === 58) {
    gap = 0;
    i = start + 2;
    if (i === end) {
      groups.fill(0);
      return true;
    }
  } else if (s.charCodeAt(start) === 58) {
    return false;
  }
  while (i < end) {
    // One group: hex digits up to ':' or end, or an embedded IPv4 tail.
    let j = i;
    let value = 0;
    let sawDot = false;
    while (j < end) {
      const c = s.charCodeAt(j);
      if (c === 58) break;
      if (c === 46) sawDot = true;
      j++;
    }
    if (sawDot) {
      if (j !== end || count > 6) return false;
      const v4 = parseIPv4(s, i, end);
      if (v4 < 0) return false;
      groups[count++] = Math.floor(v4 / 65536);
      groups[count++] = v4 & 0xffff;
      i = end;
      break;
    }
    const len = j - i;
    if (len === 0 || len > 4 || count >= 8) return false;
    for (let k = i; k < j; k++) {
      const h = hexValue(s.charCodeAt(k));
      if (h < 0) return false;
      value = value * 16 + h;
    }
    groups[count++] = value;
    if (j === end) {
      i = end;
      break;
    }
    // j is at ':'
    if (j + 1 < end && s.charCodeAt(j + 1) === 58) {
      if (gap >= 0) return false;
      gap = count;
      i = j + 2;
      if (i === end) break;
    } else {
      i = j + 1;
      if (i === end) return false; // trailing single ':'
    }
  }
  if (gap < 0) return count === 8;
  if (count > 7) return false;
  const tail = count - gap;
  for (let k = 7; k >= 8 - tail; k--) groups[k] = groups[k - (8 - count)];
  for (let k = gap; k < 8 - tail; k++) groups[k] = 0;
  return true;
}

const GROUPS = new Uint16Array(8);

/**
 * Parses an IPv4 or IPv6 address (optionally `[...]`-bracketed) into `out` (4 words). Returns
 * false when it is not an address. `out` is written in place so the caller can reuse it.
 */
export function parseIpInto(address: string, out: Uint32Array): boolean {
  let start = 0;
  let end = address.length;
  if (end === 0 || end > 64) return false;
  if (address.charCodeAt(0) === 91) {
    if (address.charCodeAt(end - 1) !== 93) return false;
    start = 1;
    end -= 1;
  }
  if (address.indexOf(':', start) < 0) {
    const v4 = parseIPv4(address, start, end);
    if (v4 < 0) return false;
    out[0] = 0;
    out[1] = 0;
    out[2] = V4_MAPPED_WORD2;
    out[3] = v4;
    return true;
  }
  if (!parseIPv6(address, start, end, GROUPS)) return false;
  out[0] = ((GROUPS[0] << 16) | GROUPS[1]) >>> 0;
  out[1] = ((GROUPS[2] << 16) | GROUPS[3]) >>> 0;
  out[2] = ((GROUPS[4] << 16) | GROUPS[5]) >>> 0;
  out[3] = ((GROUPS[6] << 16) | GROUPS[7]) >>> 0;
  return true;
}

/** True when the parsed words are an IPv4 (or IPv4-mapped) address. */
export function isV4(words: Uint32Array): boolean {
  return words[0] === 0 && words[1] === 0 && words[2] === V4_MAPPED_WORD2;
}
