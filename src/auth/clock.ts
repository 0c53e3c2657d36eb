/** Milliseconds since the epoch; injected so caches and expiry checks can be tested. */
export interface Clock {
  now(): number;
}

export const SYSTEM_CLOCK: Clock = { now: Date.now };
