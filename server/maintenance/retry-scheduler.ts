import type { Sql } from "postgres";
import { nextRetryAt, queueDueRetries } from "../store/task-retries.js";
import { SleepLoop, passOverDueRows } from "./sleep-loop.js";

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

  private pass(): Promise<number> {
    const { batchSize, maxIntervalMs } = this.config;
    const rows = { handle: (limit: number) => queueDueRetries(this.sql, limit), next: () => nextRetryAt(this.sql), batchSize, minMs: 5, maxMs: maxIntervalMs };
    return passOverDueRows(rows, () => this.loop.isStopped);
  }
}
