import type { Sql } from "postgres";
import type { TaskPlan } from "../task-plan.js";
import { TASKS_CHANNEL, readyClusters, taskInsertCtes } from "./insert-tasks.js";
import type { JobRow } from "./read-jobs.js";

/**
 * Inserts a job, its root tasks and their dependencies, and wakes the runners of
 * the clusters that got ready work, in one statement: one round trip, atomic
 * without an explicit transaction.
 */
export async function submitJob(sql: Sql, name: string, clusterId: number, plan: TaskPlan): Promise<JobRow> {
  const [job] = await sql<JobRow[]>`
    WITH job AS (
      INSERT INTO jobs (name, cluster_id, open_tasks)
      VALUES (${name}, ${clusterId}, ${plan.rows.length})
      RETURNING id, name, cluster_id, state, created_at, started_at, finished_at, start_at, recurrent_task_id, tick_at
    ), ${taskInsertCtes(sql, plan, sql`(SELECT id FROM job)`)}
    SELECT job.*, (SELECT count(*) FROM inserted) + (SELECT count(*) FROM deps) AS written,
           (SELECT count(pg_notify(${TASKS_CHANNEL}, c)) FROM unnest(${readyClusters(plan)}::text[]) AS c) AS notified
    FROM job`;
  return job;
}
