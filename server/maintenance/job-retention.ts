import type { Sql } from "postgres";
import { deleteExpiredJobs } from "../store/job-retention.js";
import { deleteOldFinishCounts } from "../store/queue-stats.js";
import { SleepLoop } from "./sleep-loop.js";

export interface JobRetentionConfig {
  /** Finished jobs older than this are deleted with their tasks; 0 keeps them forever. */
  retentionMs: number;
  /** How often to look. */
  intervalMs: number;
  /** Jobs deleted per statement. */
  batchSize: number;
}

export const JobRetentionDefaults: JobRetentionConfig = {
  retentionMs: 0,
  intervalMs: 3_600_000,
  batchSize: 1_000,
};

/**
 * Deletes completed, failed and cancelled jobs (their tasks and dependencies
 * go with them) once they finished longer ago than the retention, in small
 * batches, so that the task table does not grow without bound; and, whether
 * or not jobs are kept forever, the counts of finished jobs older than the
 * console shows. Every server runs it; SKIP LOCKED keeps them out of each
 * other's way.
 */
export class JobRetention {
  private readonly loop: SleepLoop;

  constructor(
    private readonly sql: Sql,
    private readonly config: JobRetentionConfig,
    onError: (e: unknown) => void,
  ) {
    this.loop = new SleepLoop(async () => {
      await this.prune();
      return config.intervalMs;
    }, onError, config.intervalMs);
  }

  start(): void {
    this.loop.start();
  }

  stop(): void {
    this.loop.stop();
  }

  /** Deletes what has expired now; returns how many jobs. */
  async prune(): Promise<number> {
    const { retentionMs, batchSize } = this.config;
    await deleteOldFinishCounts(this.sql);
    let total = 0;
    if (retentionMs <= 0) return total;
    for (;;) {
      const deleted = await deleteExpiredJobs(this.sql, retentionMs, batchSize);
      total += deleted;
      if (deleted < batchSize) return total;
    }
  }
}
