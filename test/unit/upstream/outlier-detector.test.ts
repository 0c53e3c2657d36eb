import type { LazyPool } from '../../../src/upstream/pool-registry.js';
import { describe, expect, it } from 'vitest';
import { OutlierDetector } from '../../../src/upstream/outlier-detector.js';
import { RouteState } from '../../../src/upstream/route-state.js';

const NO_POOL = null as unknown as LazyPool;
const route = () => new RouteState({ id: 'r', url: 'http://127.0.0.1:1', weight: 1, status: 'healthy' }, NO_POOL);

describe('outlier detector', () => {
  const detector = new OutlierDetector({ failuresToEject: 3, baseMs: 5000, maxMs: 40_000 });

  it('ejects after 3 consecutive connect failures, for the base time', () => {
    const r = route();
    expect(detector.recordConnectFailure(r, 0)).toBe(false);
    expect(detector.recordConnectFailure(r, 1)).toBe(false);
    expect(r.isEjected(2)).toBe(false);
    expect(detector.recordConnectFailure(r, 2)).toBe(true);
    expect(r.isEjected(2)).toBe(true);
    expect(r.isEjected(5001)).toBe(true);
    expect(r.isEjected(5002)).toBe(false);
  });

  it('a success in between resets the count', () => {
    const r = route();
    detector.recordConnectFailure(r, 0);
    detector.recordConnectFailure(r, 0);
    detector.recordSuccess(r);
    expect(detector.recordConnectFailure(r, 0)).toBe(false);
    expect(detector.recordConnectFailure(r, 0)).toBe(false);
    expect(detector.recordConnectFailure(r, 0)).toBe(true);
  });

  it('doubles while it keeps failing (one failure after an ejection re-ejects), capped at the maximum', () => {
    const r = route();
    for (let i = 0; i < 3; i++) detector.recordConnectFailure(r, 0);
    expect(r.ejectedUntil).toBe(5000);
    const durations: number[] = [];
    let now = 5000;
    for (let i = 0; i < 5; i++) {
      expect(detector.recordConnectFailure(r, now)).toBe(true);
      durations.push(r.ejectedUntil - now);
      now = r.ejectedUntil;
    }
    expect(durations).toEqual([10_000, 20_000, 40_000, 40_000, 40_000]);
  });

  it('returns on success: the ejection and its doubling are forgotten', () => {
    const r = route();
    for (let i = 0; i < 4; i++) detector.recordConnectFailure(r, 0);
    expect(r.isEjected(1)).toBe(true);
    detector.recordSuccess(r);
    expect(r.isEjected(1)).toBe(false);
    expect(detector.recordConnectFailure(r, 1)).toBe(false);
    detector.recordConnectFailure(r, 1);
    detector.recordConnectFailure(r, 1);
    expect(r.ejectedUntil).toBe(5001);
  });
});

describe('outlier detector under concurrency', () => {
  it('failures of attempts already under way while ejected do not extend or double the ejection', () => {
    const detector = new OutlierDetector({ failuresToEject: 3, baseMs: 5000, maxMs: 300_000 });
    const r = route();
    for (let i = 0; i < 3; i++) detector.recordConnectFailure(r, 0);
    // 30 concurrent connects that were dispatched before the ejection all fail now.
    for (let i = 0; i < 30; i++) expect(detector.recordConnectFailure(r, 10)).toBe(false);
    expect(r.ejectedUntil).toBe(5000);
    // The first failure after the ejection ends doubles it, once.
    expect(detector.recordConnectFailure(r, 5000)).toBe(true);
    expect(r.ejectedUntil).toBe(15_000);
  });
});
