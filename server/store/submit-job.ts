import type { Sql } from "postgres";
import type { TaskPlan } from "../task-plan.js";
import { taskInsertCtes } from "./insert-tasks.js";
import type { JobRow } from "./read-jobs.js";

/**
 * Inserts a job, its root tasks and their dependencies in one statement: one
 * round trip, atomic without an explicit transaction. The caller wakes the
 * runners of the clusters that got ready work (`readyClusters(plan)`) once it
 * returns, committed (`Dispatcher.workReady`).
 */
export async function submitJob(sql: Sql, name: string, clusterId: number, plan: TaskPlan): Promise<JobRow> {
  const [job] = await sql<JobRow[]>`
    WITH job AS (
      INSERT INTO jobs (name, cluster_id, open_tasks)
      VALUES (${name}, ${clusterId}, ${plan.rows.length})
      RETURNING id, name, cluster_id, state, created_at, started_at, finished_at, start_at, recurrent_task_id, tick_at
    ), ${taskInsertCtes(sql, plan, sql`(SELECT id FROM job)`)}
    SELECT job.*, (SELECT count(*) FROM inserted) + (SELECT count(*) FROM deps) AS written
    FROM job`;
  return job;
}
