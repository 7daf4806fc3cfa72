import type { Sql } from "postgres";
import { nextRetryAt, queueDueRetries } from "../store/task-retries.js";
import { SleepLoop } from "./sleep-loop.js";

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
export class RetryScheduler {
  private readonly loop: SleepLoop;

  constructor(
    private readonly sql: Sql,
    private readonly config: RetrySchedulerConfig,
    onError: (error: unknown) => void,
  ) {
    this.loop = new SleepLoop(() => this.pass(), onError, config.maxIntervalMs);
  }

  start(): void {
    this.loop.start();
  }

  stop(): void {
    this.loop.stop();
  }

  /** A retry comes due at `at`: pass then at the latest. */
  wakeAt(at: Date): void {
    this.loop.wake(at.getTime() - Date.now());
  }

  private async pass(): Promise<number> {
    const { batchSize, maxIntervalMs } = this.config;
    while ((await queueDueRetries(this.sql, batchSize)) === batchSize && !this.loop.isStopped);
    const next = await nextRetryAt(this.sql);
    // A few milliseconds late, so that it is due in the database's clock too.
    const due = next ? next.getTime() - Date.now() + 5 : maxIntervalMs;
    return Math.max(5, Math.min(maxIntervalMs, due));
  }
}
