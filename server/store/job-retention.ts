import type { Sql } from "postgres";

/**
 * Deletes up to `limit` completed, failed or cancelled jobs that finished more
 * than `retentionMs` ago, found through the `jobs_finished` index, with their
 * tasks and the dependency edges between those tasks (no foreign keys:
 * migrations 0007 and 0009), in one statement. SKIP LOCKED leaves jobs another
 * server is deleting to it. Returns how many jobs were deleted.
 */
export async function deleteExpiredJobs(sql: Sql, retentionMs: number, limit: number): Promise<number> {
  const [{ deleted }] = await sql<{ deleted: number }[]>`
    WITH expired AS MATERIALIZED (
      SELECT id FROM jobs
      WHERE finished_at < now() - ${retentionMs}::bigint * interval '1 millisecond'
        AND state IN ('completed', 'failed', 'cancelled')
      ORDER BY finished_at
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED
    ), edges AS (
      DELETE FROM task_dependencies d USING tasks t, expired e
      WHERE t.job_id = e.id AND d.task_id = t.id
      RETURNING 1
    ), tasks_gone AS (
      DELETE FROM tasks t USING expired e WHERE t.job_id = e.id RETURNING 1
    ), gone AS (
      -- By id = ANY, which only an index lookup answers: IN (SELECT ...) let
      -- the planner walk every job when statistics said the set was large.
      DELETE FROM jobs WHERE id = ANY((SELECT array_agg(id) FROM expired)::bigint[]) RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone)::int AS deleted, (SELECT count(*) FROM edges) AS edges, (SELECT count(*) FROM tasks_gone) AS tasks`;
  return deleted;
}
