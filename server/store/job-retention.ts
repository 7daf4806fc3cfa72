import type { Sql } from "postgres";

/**
 * Deletes up to `limit` completed, failed or cancelled jobs that finished more
 * than `retentionMs` ago, oldest first by creation (a job that finished before
 * a time was created before it, so `jobs_by_created` finds them; no index
 * names finished_at, which completing a job sets), with their
 * tasks and every row that names them: dependency edges, job hook statuses
 * and subtasks, file tasks and their path lists, log lines and progress
 * (nothing references tasks or jobs by a foreign key: migrations 0007, 0009
 * and 0018), in one statement. SKIP LOCKED leaves jobs another
 * server is deleting to it. Returns how many jobs were deleted.
 */
export async function deleteExpiredJobs(sql: Sql, retentionMs: number, limit: number): Promise<number> {
  const [{ deleted }] = await sql<{ deleted: number }[]>`
    WITH expired AS MATERIALIZED (
      SELECT id FROM jobs
      WHERE created_at < now() - ${retentionMs}::bigint * interval '1 millisecond'
        AND finished_at < now() - ${retentionMs}::bigint * interval '1 millisecond'
        AND state IN ('completed', 'failed', 'cancelled')
      ORDER BY created_at
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED
    ), edges AS (
      DELETE FROM task_dependencies d USING tasks t, expired e
      WHERE t.job_id = e.id AND d.task_id = t.id
      RETURNING 1
    ), hook_status_gone AS (
      DELETE FROM task_hook_status h USING tasks t, expired e WHERE t.job_id = e.id AND h.task_id = t.id RETURNING 1
    ), hook_subtasks_gone AS (
      DELETE FROM task_hook_subtasks h USING tasks t, expired e WHERE t.job_id = e.id AND h.task_id = t.id RETURNING 1
    ), tasks_gone AS (
      DELETE FROM tasks t USING expired e WHERE t.job_id = e.id RETURNING 1
    ), file_tasks_gone AS (
      -- Their path states go with them (a trigger of file_tasks).
      DELETE FROM file_tasks f USING expired e WHERE f.job_id = e.id RETURNING 1
    ), path_lists_gone AS (
      -- Their paths go with them (a trigger of path_lists).
      DELETE FROM path_lists p USING expired e WHERE p.job_id = e.id RETURNING 1
    ), logs_gone AS (
      DELETE FROM task_logs l USING expired e WHERE l.job_id = e.id RETURNING 1
    ), progress_gone AS (
      DELETE FROM job_progress p USING expired e WHERE p.job_id = e.id RETURNING 1
    ), gone AS (
      -- By id = ANY, which only an index lookup answers: IN (SELECT ...) let
      -- the planner walk every job when statistics said the set was large.
      DELETE FROM jobs WHERE id = ANY((SELECT array_agg(id) FROM expired)::bigint[]) RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone)::int AS deleted, (SELECT count(*) FROM edges) AS edges, (SELECT count(*) FROM tasks_gone) AS tasks,
           (SELECT count(*) FROM logs_gone) AS logs,
           (SELECT count(*) FROM progress_gone) AS progress,
           (SELECT count(*) FROM hook_status_gone) + (SELECT count(*) FROM hook_subtasks_gone) AS hook_rows,
           (SELECT count(*) FROM file_tasks_gone) + (SELECT count(*) FROM path_lists_gone) AS file_rows`;
  return deleted;
}
