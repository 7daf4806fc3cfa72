import type { Sql } from "postgres";
import { notifyReadyOf } from "./channels.js";
import { queueReady } from "./insert-tasks.js";

/**
 * Puts up to `limit` failed tasks whose retry backoff is over back into
 * ready_tasks, in one statement: takes their task_retries rows (SKIP LOCKED:
 * servers share the work), queues those still queued (a task cancelled or
 * deleted meanwhile is dropped) and wakes their clusters' runners. Returns
 * how many rows came due.
 */
export async function queueDueRetries(sql: Sql, limit: number): Promise<number> {
  const [row] = await sql<{ due: number }[]>`
    WITH due AS (
      DELETE FROM task_retries r
      WHERE r.task_id = ANY((
        SELECT coalesce(array_agg(task_id), '{}') FROM (
          SELECT task_id FROM task_retries WHERE retry_at <= now() ORDER BY retry_at LIMIT ${limit} FOR UPDATE SKIP LOCKED
        ) x
      )::bigint[])
      RETURNING r.task_id
    ), again AS (
      SELECT t.id, t.cluster_id, t.name, t.major, t.minor
      FROM tasks t WHERE t.id = ANY((SELECT coalesce(array_agg(task_id), '{}') FROM due)::bigint[])
        AND t.state = 'queued' AND t.deps_left = 0
    ), queued AS (
      ${queueReady(sql, "again")} ON CONFLICT DO NOTHING
      RETURNING cluster_id
    )
    SELECT (SELECT count(*) FROM due)::int AS due, ${notifyReadyOf(sql, "queued")} AS notified`;
  return row.due;
}

/** When the next retry comes due, or null when none waits. */
export async function nextRetryAt(sql: Sql): Promise<Date | null> {
  const [row] = await sql<{ at: Date | null }[]>`SELECT min(retry_at) AS at FROM task_retries`;
  return row.at;
}
