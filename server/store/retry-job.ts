import type { Sql } from "postgres";
import { retryOnDeadlock } from "./deadlock.js";
import { notifyReady } from "./channels.js";
import { queueReady } from "./insert-tasks.js";
import type { JobStateName } from "./read-jobs.js";

export type RetryOutcome =
  | { kind: "retried"; requeued: number }
  | { kind: "missing" }
  | { kind: "not-failed"; state: JobStateName }
  | { kind: "never-started" };

/**
 * Queues the failed and cancelled tasks of a failed or cancelled job again, with
 * their failure counts reset, and reopens the job. Dependency counts are left as
 * they are: they only ever count computed dependencies, so they are still right.
 */
export async function retryJob(sql: Sql, jobId: string): Promise<RetryOutcome> {
  return retryOnDeadlock(() =>
    sql.begin(async (tx) => {
      const [job] = await tx<{ state: JobStateName; has_tasks: boolean }[]>`
        SELECT state, EXISTS (SELECT 1 FROM tasks WHERE job_id = ${jobId}) AS has_tasks FROM jobs WHERE id = ${jobId} FOR NO KEY UPDATE`;
      if (!job) return { kind: "missing" } as const;
      if (job.state !== "failed" && job.state !== "cancelled") return { kind: "not-failed", state: job.state } as const;
      if (!job.has_tasks) return { kind: "never-started" } as const;
      const requeued = await tx<{ cluster_id: number; deps_left: number }[]>`
        WITH requeued AS (
          UPDATE tasks SET state = 'queued', failures = 0, finished_at = NULL
          WHERE job_id = ${jobId} AND state IN ('failed', 'cancelled')
          RETURNING id, cluster_id, name, major, minor, deps_left
        ), ready AS (
          ${queueReady(tx, "requeued")} WHERE deps_left = 0
          ON CONFLICT DO NOTHING
        )
        SELECT cluster_id, deps_left FROM requeued`;
      await tx`
        UPDATE jobs j
        SET state = (CASE WHEN j.started_at IS NULL THEN 'queued' ELSE 'started' END)::job_state,
            finished_at = NULL,
            open_tasks = (SELECT count(*) FROM tasks t WHERE t.job_id = j.id AND t.state <> 'computed')
        WHERE j.id = ${jobId}`;
      const clusters = [...new Set(requeued.filter((r) => r.deps_left === 0).map((r) => String(r.cluster_id)))];
      await notifyReady(tx, clusters);
      return { kind: "retried", requeued: requeued.length } as const;
    }),
  );
}
