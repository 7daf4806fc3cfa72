import { KEY_USED, isKeyUsed } from "./submit-job.js";
import type { Sql } from "postgres";
import { type TaskPlan, appendPlan, emptyPlan } from "../task-plan.js";
import { retryOnDeadlock } from "./deadlock.js";
import { SCHEDULE_CHANNEL, notifyReady } from "./channels.js";
import { taskInsertCtes } from "./insert-tasks.js";
import type { JobRow } from "./read-jobs.js";

interface StoredPlan {
  rows: (Omit<TaskPlan["rows"][number], "input"> & { input: string })[];
  depFrom: number[];
  depTo: number[];
}

function planToJson(plan: TaskPlan): string {
  const stored: StoredPlan = {
    rows: plan.rows.map((r) => ({ ...r, input: Buffer.from(r.input.buffer, r.input.byteOffset, r.input.byteLength).toString("base64") })),
    depFrom: plan.depFrom,
    depTo: plan.depTo,
  };
  return JSON.stringify(stored);
}

function planFromJson(stored: StoredPlan, jobId: string): TaskPlan {
  return {
    rows: stored.rows.map((r) => ({ ...r, jobId, input: Buffer.from(r.input, "base64") })),
    depFrom: stored.depFrom,
    depTo: stored.depTo,
  };
}

/**
 * Stores a job that starts at `startAt`: the job row (state scheduled) and its
 * validated task plan, in one statement. Its tasks are created when it is due.
 */
export async function scheduleJob(
  sql: Sql,
  name: string,
  clusterId: number,
  plan: TaskPlan,
  startAt: Date,
  idempotencyKey: string | null,
): Promise<JobRow | typeof KEY_USED> {
  const inserted = sql<JobRow[]>`
    WITH job AS (
      INSERT INTO jobs (name, cluster_id, open_tasks, state, start_at, idempotency_key)
      VALUES (${name}, ${clusterId}, ${plan.rows.length}, 'scheduled', ${startAt}, ${idempotencyKey})
      RETURNING id, name, cluster_id, state, created_at, started_at, finished_at, start_at, recurrent_task_id, tick_at
    ), stored AS (
      INSERT INTO scheduled_jobs (job_id, start_at, plan)
      SELECT id, ${startAt}, ${planToJson(plan)}::text::jsonb FROM job
      RETURNING 1
    )
    SELECT job.*, (SELECT count(*) FROM stored) AS stored,
           pg_notify(${SCHEDULE_CHANNEL}, ${String(startAt.getTime())}) AS notified
    FROM job`;
  try {
    const [job] = await inserted;
    return job;
  } catch (e) {
    if (isKeyUsed(e)) return KEY_USED;
    throw e;
  }
}

/**
 * Queues up to `limit` scheduled jobs due at `now`: creates their tasks, marks
 * them queued and wakes the runners of their clusters, in one transaction. Job
 * rows are locked first (SKIP LOCKED: one being cancelled right now is left to
 * the cancellation), as every writer of a job does. Returns how many started.
 */
export async function startDueJobs(sql: Sql, now: Date, limit: number): Promise<number> {
  return retryOnDeadlock(() =>
    sql.begin(async (tx) => {
      const due = await tx<{ job_id: string; plan: StoredPlan }[]>`
        WITH due AS MATERIALIZED (
          -- Found through scheduled_jobs' start-time index first, so that the
          -- jobs table (mostly scheduled jobs, perhaps) is only read by key.
          SELECT job_id FROM scheduled_jobs WHERE start_at <= ${now} ORDER BY start_at LIMIT ${limit}
        ), locked AS (
          SELECT j.id FROM jobs j
          WHERE j.id IN (SELECT job_id FROM due) AND j.state = 'scheduled'
          FOR NO KEY UPDATE OF j SKIP LOCKED
        )
        DELETE FROM scheduled_jobs s USING locked WHERE s.job_id = locked.id
        RETURNING s.job_id, s.plan`;
      if (due.length === 0) return 0;
      const plan = emptyPlan();
      for (const d of due) appendPlan(plan, planFromJson(d.plan, d.job_id));
      const clusters = [...new Set(plan.rows.filter((r) => r.depsLeft === 0).map((r) => String(r.clusterId)))];
      await tx`
        WITH ${taskInsertCtes(tx, plan, tx`NULL::bigint`)}, queued AS (
          UPDATE jobs SET state = 'queued' WHERE id = ANY(${due.map((d) => d.job_id)}::bigint[]) RETURNING 1
        )
        SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM deps), (SELECT count(*) FROM queued),
               (SELECT count(*) FROM (${notifyReady(tx, clusters)}) AS n)`;
      return due.length;
    }),
  );
}

/** When the next scheduled job is due, or null if none is. */
export async function nextScheduledStart(sql: Sql): Promise<Date | null> {
  const [row] = await sql<{ at: Date | null }[]>`SELECT min(start_at) AS at FROM scheduled_jobs`;
  return row.at;
}
