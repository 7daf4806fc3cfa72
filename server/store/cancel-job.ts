import type { Sql, TransactionSql } from "postgres";
import { retryOnDeadlock } from "./deadlock.js";
import { notifyCancelled } from "./channels.js";
import type { JobStateName } from "./read-jobs.js";

export type CancelOutcome = { kind: "cancelled" } | { kind: "missing" } | { kind: "finished"; state: JobStateName };

/**
 * Cancels a scheduled, queued or started job (a scheduled one never starts): its queued and running tasks become
 * cancelled (so later results for them are refused) and servers are told to
 * stop the runners that hold them. The job row is locked first, as every writer
 * of a job's tasks does.
 */
export async function cancelJob(sql: Sql, jobId: string): Promise<CancelOutcome> {
  return retryOnDeadlock(() =>
    sql.begin(async (tx) => {
      const [job] = await tx<{ state: JobStateName }[]>`SELECT state FROM jobs WHERE id = ${jobId} FOR NO KEY UPDATE`;
      if (!job) return { kind: "missing" } as const;
      if (job.state !== "queued" && job.state !== "started" && job.state !== "scheduled") {
        return { kind: "finished", state: job.state } as const;
      }
      if (job.state === "scheduled") await tx`DELETE FROM scheduled_jobs WHERE job_id = ${jobId}`;
      await cancelTasksOf(tx, [jobId]);
      await tx`UPDATE jobs SET state = 'cancelled', finished_at = now() WHERE id = ${jobId}`;
      await notifyCancelled(tx, [jobId]);
      return { kind: "cancelled" } as const;
    }),
  );
}

/**
 * Cancels the queued and running tasks of these jobs, whose rows the caller has
 * locked: their ready-queue rows go first, then the tasks. (A lease takes a
 * ready row before its task, so the same order here never deadlocks with one.)
 */
export async function cancelTasksOf(tx: TransactionSql, jobIds: readonly string[]): Promise<void> {
  await tx`
    DELETE FROM ready_tasks r USING tasks t
    WHERE t.job_id = ANY(${jobIds}::bigint[]) AND t.state = 'queued' AND r.cluster_id = t.cluster_id AND r.id = t.id`;
  await tx`
    UPDATE tasks SET state = 'cancelled', finished_at = now(), runner_id = NULL, lease_expires_at = NULL
    WHERE job_id = ANY(${jobIds}::bigint[]) AND state IN ('queued', 'running')`;
}
