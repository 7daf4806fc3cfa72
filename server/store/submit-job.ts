import type { Sql, TransactionSql } from "postgres";
import type { TaskPlan } from "../task-plan.js";
import { taskInsertCtes } from "./insert-tasks.js";
import type { JobRow } from "./read-jobs.js";

/** A job to insert: its root tasks are `plan`'s rows. */
export interface NewJob {
  name: string;
  clusterId: number;
  plan: TaskPlan;
  /** Absent or null when the submit carries none. */
  idempotencyKey?: string | null;
}

/** A submit named an idempotency key that a job already has: nothing was written. */
export const KEY_USED = "key-used";

/** Whether an error is the unique index of idempotency keys refusing a key already used. */
export function isKeyUsed(e: unknown): boolean {
  const err = e as { code?: string; constraint_name?: string } | null;
  return err?.code === "23505" && err.constraint_name === "jobs_by_idempotency_key";
}

/** A job as inserted, with the ids of its tasks handed to runners. */
export interface SubmittedJob extends JobRow {
  /**
   * Comma-separated, in the order of the job's plan rows that have `leaseTo`;
   * null when it has none.
   */
  handed: string | null;
}

/**
 * Inserts jobs, their root tasks and their dependencies in one statement: one
 * round trip and one commit for all of them, atomic without an explicit
 * transaction. Returns the jobs in the order given. The caller hands the
 * tasks with `leaseTo` to their runners and wakes the runners of the clusters
 * that got ready work (`readyClusters`) once it returns, committed
 * (`Dispatcher.handOver`, `Dispatcher.workReady`).
 */
export async function submitJobs(sql: Sql | TransactionSql, jobs: readonly NewJob[], leaseTtlMs: number): Promise<SubmittedJob[] | typeof KEY_USED> {
  // One plan for all: the jobs' rows are renumbered in place (they are not
  // used for anything else afterwards).
  const plan: TaskPlan = jobs.length === 1 ? jobs[0].plan : { rows: [], depFrom: [], depTo: [] };
  jobs.forEach((job, j) => {
    if (job.plan === plan) {
      for (const r of plan.rows) r.jobOrd = 1;
      return;
    }
    const offset = plan.rows.length;
    for (const r of job.plan.rows) {
      r.ord += offset;
      r.jobOrd = j + 1;
      plan.rows.push(r);
    }
    for (const f of job.plan.depFrom) plan.depFrom.push(f + offset);
    for (const t of job.plan.depTo) plan.depTo.push(t + offset);
  });
  const input = JSON.stringify(
    jobs.map((j, i) => ({ ord: i + 1, name: j.name, cluster_id: j.clusterId, open_tasks: j.plan.rows.length, idempotency_key: j.idempotencyKey })),
  );
  const inserted = sql<SubmittedJob[]>`
    WITH new_jobs AS MATERIALIZED (
      -- Ids in the given order, drawn first so that tasks can name their job.
      SELECT j.*, nextval(pg_get_serial_sequence('jobs', 'id')) AS id
      FROM json_to_recordset(${input}::text::json) AS j(ord int, name text, cluster_id int, open_tasks int, idempotency_key text)
    ), job AS (
      -- A key used already fails the statement (the unique index): rare, and
      -- it keeps the common case free of any lookup.
      INSERT INTO jobs (id, name, cluster_id, open_tasks, idempotency_key)
      OVERRIDING SYSTEM VALUE
      SELECT id, name, cluster_id, open_tasks, idempotency_key FROM new_jobs
      RETURNING id, name, cluster_id, state, created_at, started_at, finished_at, start_at, recurrent_task_id, tick_at
    ), ${taskInsertCtes(sql, plan, sql`(SELECT array_agg(id ORDER BY ord) FROM new_jobs)[r.job_ord]`, leaseTtlMs)}
    SELECT job.*, h.ids AS handed
    FROM job JOIN new_jobs n ON n.id = job.id
    LEFT JOIN (
      SELECT job_ord, string_agg(id::text, ',' ORDER BY ord) AS ids FROM rows WHERE lease_to IS NOT NULL GROUP BY job_ord
    ) h ON h.job_ord = n.ord
    ORDER BY job.id`;
  try {
    return await inserted;
  } catch (e) {
    if (isKeyUsed(e)) return KEY_USED;
    throw e;
  }
}
