/**
 * Where a background duty reads the time and sleeps. Servers use the system
 * clock; tests pass one they move by hand, so that a schedule an hour away is
 * due at once and nothing waits on the real clock.
 */
export interface Clock {
  /** The time, in epoch milliseconds. */
  now(): number;
  /**
   * Calls `fn` once the clock has reached `time` (epoch milliseconds), never
   * keeping the process alive for it. Returns a function that cancels the call.
   */
  at(time: number, fn: () => void): () => void;
}

/** setTimeout's longest delay; a longer one would fire at once. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  at(time, fn) {
    const timer = setTimeout(fn, Math.min(MAX_TIMEOUT_MS, Math.max(0, time - Date.now())));
    timer.unref();
    return () => clearTimeout(timer);
  },
};
