/**
 * Bytes as a string of one character per byte (what node:http writes heads with). `latin1Slice`
 * is what `toString('latin1')` ends in, without its argument handling.
 */
export function latin1(buf: Buffer, start = 0, end = buf.length): string {
  return (buf as Buffer & { latin1Slice(start: number, end: number): string }).latin1Slice(start, end);
}
