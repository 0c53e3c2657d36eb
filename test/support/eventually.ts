/**
 * The one way tests wait: poll a probe until it returns something truthy. Never sleep to
 * synchronise; a sleep is only right where elapsed time is itself what is tested.
 */

export interface EventuallyOptions {
  /** Give up after this long (default 5 s; the machine is shared, so be generous). */
  timeoutMs?: number;
  /** Pause between probes (default 50 ms). */
  stepMs?: number;
  /** What is awaited, for the timeout message. */
  what?: string;
}

/**
 * Resolves with the probe's first truthy result. A probe that throws counts as "not yet"
 * (an assertion inside works); on timeout the last error or value is in the message.
 */
export async function eventually<T>(probe: () => T | Promise<T>, opts: EventuallyOptions | number = {}, stepMsArg?: number): Promise<NonNullable<T>> {
  // (probe, timeoutMs, stepMs) is the short form of (probe, { timeoutMs, stepMs }).
  const { timeoutMs = 5000, stepMs = stepMsArg ?? 50, what = 'condition' } = typeof opts === 'number' ? { timeoutMs: opts } : opts;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value as NonNullable<T>;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`${what} not met within ${timeoutMs} ms; last: ${detail}`);
    }
    await sleep(stepMs);
  }
}

/** Waits out `ms`. For tests where time passing is the point (a timeout, a grace period), not to wait for a state. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
