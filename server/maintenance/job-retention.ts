import type { Sql } from "postgres";
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
 * batches found through the `jobs_finished` index, so that the task table
 * does not grow without bound. Every server runs it; SKIP LOCKED keeps them
 * out of each other's way.
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
    if (this.config.retentionMs > 0) this.loop.start();
  }

  stop(): void {
    this.loop.stop();
  }

  /** Deletes what has expired now; returns how many jobs. */
  async prune(): Promise<number> {
    let total = 0;
    for (;;) {
      // The jobs, their tasks and the dependency edges between those tasks
      // (no foreign keys: migrations 0007 and 0009), in one statement.
      const [{ deleted }] = await this.sql<{ deleted: number }[]>`
        WITH expired AS MATERIALIZED (
          SELECT id FROM jobs
          WHERE finished_at < now() - ${this.config.retentionMs}::bigint * interval '1 millisecond'
            AND state IN ('completed', 'failed', 'cancelled')
          ORDER BY finished_at
          LIMIT ${this.config.batchSize}
          FOR UPDATE SKIP LOCKED
        ), edges AS (
          DELETE FROM task_dependencies d USING tasks t, expired e
          WHERE t.job_id = e.id AND d.task_id = t.id
          RETURNING 1
        ), tasks_gone AS (
          DELETE FROM tasks t USING expired e WHERE t.job_id = e.id RETURNING 1
        ), gone AS (
          DELETE FROM jobs WHERE id IN (SELECT id FROM expired) RETURNING 1
        )
        SELECT (SELECT count(*) FROM gone)::int AS deleted, (SELECT count(*) FROM edges) AS edges, (SELECT count(*) FROM tasks_gone) AS tasks`;
      total += deleted;
      if (deleted < this.config.batchSize) return total;
    }
  }
}
