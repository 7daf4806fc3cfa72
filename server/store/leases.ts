import type { Sql } from "postgres";
import { TASKS_CHANNEL } from "./insert-tasks.js";

export interface LeaseRef {
  taskId: string;
  lease: number;
}

/**
 * Extends the leases a runner still holds. Rows locked by a concurrent
 * completion or cancellation are skipped rather than waited on; a lease is
 * reported lost only if, in this statement's snapshot, the task is no longer
 * running under that lease number.
 */
export async function extendLeases(
  sql: Sql,
  leases: readonly LeaseRef[],
  leaseTtlMs: number,
): Promise<{ expiresAt: Date; lost: LeaseRef[] }> {
  const rows = await sql<{ id: string; lease: number; extended: boolean; expires_at: Date }[]>`
    WITH wanted AS (
      SELECT * FROM unnest(${leases.map((l) => l.taskId)}::bigint[], ${leases.map((l) => l.lease)}::int[]) AS w(id, lease)
    ), extended AS (
      UPDATE tasks t SET lease_expires_at = now() + ${leaseTtlMs}::int * interval '1 millisecond'
      -- One primary-key lookup per lease, locked, then the update by id = ANY:
      -- plans that stay right whatever the statistics say about running tasks
      -- (see lockRunning in complete-tasks.ts).
      WHERE t.id = ANY((
        SELECT array_agg(r.id) FROM wanted w CROSS JOIN LATERAL (
          SELECT t2.id FROM tasks t2
          WHERE t2.id = w.id AND t2.lease = w.lease AND t2.state = 'running'
          OFFSET 0
          FOR NO KEY UPDATE SKIP LOCKED
        ) r
      )::bigint[])
      RETURNING t.id
    )
    SELECT w.id::text, w.lease,
           (w.id IN (SELECT id FROM extended)) OR coalesce(t.state = 'running' AND t.lease = w.lease, false) AS extended,
           now() + ${leaseTtlMs}::int * interval '1 millisecond' AS expires_at
    FROM wanted w LEFT JOIN tasks t ON t.id = w.id`;
  return {
    expiresAt: rows[0]?.expires_at ?? new Date(Date.now() + leaseTtlMs),
    lost: rows.filter((r) => !r.extended).map((r) => ({ taskId: r.id, lease: r.lease })),
  };
}

/**
 * Returns tasks whose lease ran out to the queue (at most `limit` per call),
 * found through the `tasks_lease_expiry` index, and wakes their clusters.
 * SKIP LOCKED: a task locked right now is being completed or cancelled.
 */
export async function expireLeases(sql: Sql, limit: number): Promise<number> {
  const [row] = await sql<{ expired: number }[]>`
    WITH expired AS (
      UPDATE tasks t SET state = 'queued', runner_id = NULL, lease_expires_at = NULL
      WHERE t.id = ANY((
        SELECT array_agg(id) FROM (
          SELECT id FROM tasks
          WHERE lease_expires_at < now() AND state = 'running'
          ORDER BY lease_expires_at
          LIMIT ${limit}
          FOR NO KEY UPDATE SKIP LOCKED
        ) expired
      )::bigint[])
      RETURNING t.cluster_id, t.deps_left
    )
    SELECT (SELECT count(*) FROM expired)::int AS expired,
           (SELECT count(pg_notify(${TASKS_CHANNEL}, c::text)) FROM (SELECT DISTINCT cluster_id AS c FROM expired) x) AS notified`;
  return row.expired;
}

/**
 * When the next running lease ends, or null when nothing is running
 * (`lease_expires_at` is set exactly while a task is running).
 */
export async function nextLeaseExpiry(sql: Sql): Promise<Date | null> {
  const [row] = await sql<{ at: Date | null }[]>`SELECT min(lease_expires_at) AS at FROM tasks WHERE lease_expires_at IS NOT NULL`;
  return row.at;
}
