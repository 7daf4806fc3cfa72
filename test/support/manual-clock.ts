import type { Clock } from "../../server/maintenance/clock.js";

/**
 * A clock that moves only when told: `advance(ms)` moves it forward and runs
 * the timers due by then, in time order. It starts at the real time, so that
 * what the database stamps with its own now() reads as about the same time.
 */
export class ManualClock implements Clock {
  private time: number;
  private readonly timers = new Set<{ time: number; fn: () => void }>();

  constructor(start = Date.now()) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  at(time: number, fn: () => void): () => void {
    if (time <= this.time) {
      // Due already: run it as a timer would, after the caller's turn.
      const immediate = setImmediate(fn);
      return () => clearImmediate(immediate);
    }
    const timer = { time, fn };
    this.timers.add(timer);
    return () => this.timers.delete(timer);
  }

  /** Moves the clock forward by `ms` and runs the timers due by then. */
  advance(ms: number): void {
    if (ms < 0) throw new RangeError("a clock only moves forward");
    this.time += ms;
    const due = [...this.timers].filter((t) => t.time <= this.time).sort((a, b) => a.time - b.time);
    for (const t of due) {
      this.timers.delete(t);
      t.fn();
    }
  }
}
