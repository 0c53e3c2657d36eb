import { describe, expect, it } from 'vitest';
import { FrameTracker, closeFrame } from '../../../src/proxy/tunnel.js';

function frame(opcode: number, payload: Buffer, masked: boolean): Buffer {
  const len = payload.length;
  const ext = len < 126 ? Buffer.alloc(0) : len < 65536 ? Buffer.from([len >> 8, len & 0xff]) : Buffer.alloc(8);
  if (len >= 65536) ext.writeUInt32BE(len, 4);
  const second = (masked ? 0x80 : 0) | (len < 126 ? len : len < 65536 ? 126 : 127);
  return Buffer.concat([Buffer.from([0x80 | opcode, second]), ext, masked ? Buffer.from([1, 2, 3, 4]) : Buffer.alloc(0), payload]);
}

describe('FrameTracker', () => {
  it('follows frames of every length form, split anywhere', () => {
    const stream = Buffer.concat([frame(1, Buffer.alloc(5), false), frame(2, Buffer.alloc(300), true), frame(2, Buffer.alloc(70_000), false)]);
    for (const step of [1, 3, 7, 1000, stream.length]) {
      const t = new FrameTracker();
      const boundaries: number[] = [];
      for (let i = 0; i < stream.length; i += step) {
        t.feed(stream.subarray(i, Math.min(stream.length, i + step)));
        if (t.atBoundary) boundaries.push(Math.min(stream.length, i + step));
      }
      expect(t.atBoundary).toBe(true);
      expect(t.closeSeen).toBe(false);
      // Never at a boundary inside the 300-byte frame's header or payload.
      expect(boundaries.some((b) => b > 7 && b < 7 + 2 + 2 + 4 + 300)).toBe(false);
    }
  });

  it('is not at a boundary in the middle of a header or payload', () => {
    const t = new FrameTracker();
    t.feed(frame(1, Buffer.alloc(10), false).subarray(0, 1));
    expect(t.atBoundary).toBe(false);
    t.feed(Buffer.from([10, 0, 0]));
    expect(t.atBoundary).toBe(false);
  });

  it('notices a close frame', () => {
    const t = new FrameTracker();
    t.feed(closeFrame(1000, true));
    expect(t.closeSeen).toBe(true);
    expect(t.atBoundary).toBe(true);
  });

  it('builds close frames with the status code, masked towards the upstream', () => {
    expect([...closeFrame(1001, false)]).toEqual([0x88, 2, 0x03, 0xe9]);
    const masked = closeFrame(1011, true);
    expect(masked[1]).toBe(0x82);
    const code = ((masked[6] ^ masked[2]) << 8) | (masked[7] ^ masked[3]);
    expect(code).toBe(1011);
  });
});
