/**
 * Messages between the benchmark (parent) and its worker processes (runners
 * and the submitter), over Node's IPC channel.
 */

/** Parent to child. */
export type ToChild =
  /** Start working now (runners: open the work stream / start the pool; submitter: begin submitting). */
  | { type: "start" }
  /** Stop gracefully, then send `stats` and exit. */
  | { type: "stop" };

/** Child to parent. */
export type FromChild =
  /** Modules are loaded and the process waits for `start`. */
  | { type: "loaded" }
  /** The child started working at `at` (wall-clock ms). */
  | { type: "started"; at: number }
  /** Tasks whose execution has begun so far, and when the last one began. */
  | { type: "progress"; executed: number; lastAt: number }
  /** Final numbers, sent after `stop`. `latencies` are submit-to-start times in ms. */
  | { type: "stats"; executed: number; latencies: number[] }
  /** The submitter finished: how many jobs it submitted (after the warm-up) and when. */
  | {
      type: "submitted";
      count: number;
      /** Jobs submitted during the warm-up, before `firstAt`. */
      warmup: number;
      firstAt: number;
      lastAt: number;
      maxLagMs: number;
      errors: number;
      /** How long the submit calls took (until the server answered). */
      callP50Ms: number;
      callP99Ms: number;
      /** CPU the submitter used while submitting. */
      cpuMs: number;
    }
  | { type: "error"; message: string };

/** The task input every no-op task carries: its submit time (wall-clock ms). */
export interface NoopInput {
  t: number;
  /** Submitted during the warm-up: counted, but its latency is not recorded. */
  w?: 1;
}
