import type { Sql } from "postgres";
import { nextRetryAt, queueDueRetries } from "../store/task-retries.js";
import { DueRowsLoop } from "./sleep-loop.js";

export interface RetrySchedulerConfig {
  /** Retries queued per statement. */
  batchSize: number;
  /**
   * The longest sleep between passes: a server wakes its loop for the retries
   * it delays itself, so this only bounds how late a retry delayed by a server
   * that stopped is queued.
   */
  maxIntervalMs: number;
}

export const RetrySchedulerDefaults: RetrySchedulerConfig = {
  batchSize: 1_000,
  maxIntervalMs: 5_000,
};

/**
 * Queues failed tasks again once their retry backoff is over (task_retries).
 * It sleeps until the next retry is due; the results that delay a retry wake
 * it for theirs (`wakeAt`).
 */
export class RetryScheduler extends DueRowsLoop {
  constructor(sql: Sql, config: RetrySchedulerConfig, onError: (error: unknown) => void) {
    super(
      { handle: (limit) => queueDueRetries(sql, limit), next: () => nextRetryAt(sql), batchSize: config.batchSize, minMs: 5, maxMs: config.maxIntervalMs },
      onError,
    );
  }
}
