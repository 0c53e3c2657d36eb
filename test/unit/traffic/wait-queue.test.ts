import { describe, expect, it } from 'vitest';
import { STARVATION_SHARE, WaitQueue, type Waiter } from '../../../src/traffic/wait-queue.js';

function w(priority: number, name: string): Waiter & { name: string } {
  return { priority, name, seq: 0, queued: false };
}

describe('WaitQueue', () => {
  it('orders by priority (higher first), then arrival', () => {
    const q = new WaitQueue<Waiter & { name: string }>();
    for (const x of [w(1, 'a'), w(5, 'b'), w(9, 'c'), w(5, 'd'), w(9, 'e')]) q.push(x);
    const out: string[] = [];
    for (let x = q.shift(); x !== undefined; x = q.shift()) out.push(x.name);
    expect(out).toEqual(['c', 'e', 'b', 'd', 'a']);
  });

  it('skips waiters that left', () => {
    const q = new WaitQueue<Waiter & { name: string }>();
    const a = w(9, 'a');
    q.push(a);
    q.push(w(1, 'b'));
    expect(q.remove(a)).toBe(true);
    expect(q.remove(a)).toBe(false);
    expect(q.size).toBe(1);
    expect(q.shift()?.name).toBe('b');
    expect(q.shift()).toBeUndefined();
  });

  it(`gives the oldest waiter every ${STARVATION_SHARE}th grant under a steady flow of higher priorities`, () => {
    const q = new WaitQueue<Waiter & { name: string }>();
    q.push(w(0, 'low'));
    let grants = 0;
    let lowAt = -1;
    for (let i = 0; i < 3 * STARVATION_SHARE && lowAt < 0; i++) {
      q.push(w(9, `hi${i}`));
      q.push(w(9, `hi${i}b`));
      grants++;
      if (q.shift()?.name === 'low') lowAt = grants;
    }
    expect(lowAt).toBe(STARVATION_SHARE);
  });
});
