import type { Sql } from "postgres";
import { expireLeases, nextLeaseExpiry } from "../store/leases.js";
import { DueRowsLoop } from "./sleep-loop.js";

export interface LeaseExpiryConfig {
  /** The longest it sleeps between checks when no lease is due sooner. */
  maxIntervalMs: number;
  /**
   * The shortest: leases end all the time under load (one `task_leases` row
   * per lease statement, due a lease period after it), and one pass handles
   * every row due by then. A lease is returned at most this late.
   */
  minIntervalMs: number;
  /** Due lease rows (each naming the tasks of one lease statement) handled per statement. */
  batchSize: number;
}

export const LeaseExpiryDefaults: LeaseExpiryConfig = {
  maxIntervalMs: 5_000,
  minIntervalMs: 1_000,
  batchSize: 200,
};

/**
 * Returns the tasks of runners that stopped extending their leases to the queue.
 * It sleeps until the earliest lease is due (read from the expiry index of
 * `task_leases`), but at least `minIntervalMs`, so it costs a few indexed
 * queries per lease period, not a scan per lease. Every server
 * runs one; SKIP LOCKED makes them share the work without conflict.
 */
export class LeaseExpiry extends DueRowsLoop {
  constructor(
    sql: Sql,
    config: LeaseExpiryConfig,
    onError: (error: unknown) => void,
    /** Told how many tasks' leases ran out, per statement (the metrics count them). */
    onExpired?: (tasks: number) => void,
  ) {
    super(
      {
        handle: (limit) => expireLeases(sql, limit, onExpired),
        next: () => nextLeaseExpiry(sql),
        batchSize: config.batchSize,
        minMs: config.minIntervalMs,
        maxMs: config.maxIntervalMs,
      },
      onError,
    );
  }
}
