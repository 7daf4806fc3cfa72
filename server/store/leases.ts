import type { Sql } from "postgres";
import { notifyReadyOf } from "./channels.js";
import { queueReady } from "./insert-tasks.js";
import { reportedRows } from "./reported-rows.js";

export interface LeaseRef {
  taskId: string;
  lease: number;
}

/**
 * Extends the leases a runner still holds (only its own). Rows locked by a concurrent
 * completion or cancellation are skipped rather than waited on; a lease is
 * reported lost only if, in this statement's snapshot, the task is no longer
 * running under that lease number.
 */
export async function extendLeases(
  sql: Sql,
  runnerId: string,
  leases: readonly LeaseRef[],
  leaseTtlMs: number,
): Promise<{ expiresAt: Date; lost: LeaseRef[] }> {
  const rows = await sql<{ id: string; lease: number; extended: boolean; expires_at: Date }[]>`
    WITH wanted AS (
      SELECT w.id, w.lease FROM ${reportedRows(sql, leases, "w")}
    ), extended AS (
      UPDATE tasks t SET lease_expires_at = now() + ${leaseTtlMs}::int * interval '1 millisecond'
      -- One primary-key lookup per lease, locked, then the update by id = ANY:
      -- plans that stay right whatever the statistics say about running tasks
      -- (see reported-rows.ts).
      WHERE t.id = ANY((
        SELECT array_agg(r.id) FROM wanted w CROSS JOIN LATERAL (
          SELECT t2.id FROM tasks t2
          WHERE t2.id = w.id AND t2.lease = w.lease AND t2.state = 'running' AND t2.runner_id = ${runnerId}::uuid
          OFFSET 0
          FOR NO KEY UPDATE SKIP LOCKED
        ) r
      )::bigint[])
      RETURNING t.id
    )
    SELECT w.id::text, w.lease,
           (w.id IN (SELECT id FROM extended))
             OR coalesce(t.state = 'running' AND t.lease = w.lease AND t.runner_id = ${runnerId}::uuid, false) AS extended,
           now() + ${leaseTtlMs}::int * interval '1 millisecond' AS expires_at
    FROM wanted w LEFT JOIN tasks t ON t.id = w.id`;
  return {
    expiresAt: rows[0]?.expires_at ?? new Date(Date.now() + leaseTtlMs),
    lost: rows.filter((r) => !r.extended).map((r) => ({ taskId: r.id, lease: r.lease })),
  };
}

/**
 * Returns tasks whose lease ran out to the queue, and wakes their clusters.
 *
 * Candidates come from the `task_leases` rows that are due (at most `limit` per
 * call): each names the tasks one lease statement took. A task is returned to
 * the queue if it is still running and its own lease end (which its runner
 * extends) has passed. Each due row then either goes, when none of its tasks is
 * running any more, or moves to the latest lease end among those still
 * running. SKIP LOCKED: a task locked right now is being completed, cancelled
 * or extended, and its row stays due, so it is looked at again.
 *
 * Returns the number of due rows handled.
 */
export async function expireLeases(sql: Sql, limit: number): Promise<number> {
  const [row] = await sql<{ due: number }[]>`
    WITH due AS (
      SELECT id, task_ids FROM task_leases
      WHERE expires_at < now()
      ORDER BY expires_at
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED
    ), members AS (
      -- The running tasks of the due rows, as this statement's snapshot sees
      -- them: one primary-key scan per row over its id array. Usually none
      -- has expired.
      SELECT d.id AS lease_row, t.id AS task_id, t.lease_expires_at
      FROM due d JOIN tasks t ON t.id = ANY(d.task_ids) AND t.state = 'running'
    ), expired AS (
      UPDATE tasks t SET state = 'queued', runner_id = NULL, lease_expires_at = NULL
      WHERE t.id = ANY((
        SELECT array_agg(x.id) FROM (
          SELECT t2.id FROM tasks t2
          WHERE t2.id = ANY((SELECT array_agg(task_id) FROM members WHERE lease_expires_at < now())::bigint[])
            AND t2.state = 'running' AND t2.lease_expires_at < now()
          FOR NO KEY UPDATE SKIP LOCKED
        ) x
      )::bigint[])
      RETURNING t.id, t.cluster_id, t.name, t.major, t.minor, t.deps_left
    ), requeued AS (
      ${queueReady(sql, "expired")} WHERE deps_left = 0
      RETURNING cluster_id
    ), remaining AS (
      -- Tasks skipped as locked keep their old lease end, so their row stays due.
      SELECT lease_row, max(lease_expires_at) AS until
      FROM members
      WHERE task_id NOT IN (SELECT id FROM expired)
      GROUP BY lease_row
    ), moved AS (
      UPDATE task_leases l SET expires_at = r.until FROM remaining r WHERE l.id = r.lease_row
    ), dropped AS (
      DELETE FROM task_leases l WHERE l.id IN (SELECT id FROM due) AND l.id NOT IN (SELECT lease_row FROM remaining)
    )
    SELECT (SELECT count(*) FROM due)::int AS due,
           ${notifyReadyOf(sql, "requeued")} AS notified`;
  return row.due;
}

/** When the next lease ends, or null when no lease is held. */
export async function nextLeaseExpiry(sql: Sql): Promise<Date | null> {
  const [row] = await sql<{ at: Date | null }[]>`SELECT min(expires_at) AS at FROM task_leases`;
  return row.at;
}

/** A task running under a lease held by one runner. */
export interface HeldLease extends LeaseRef {
  jobId: string;
}

/**
 * The tasks running under a lease held by `runnerId`: found through the
 * `task_leases` rows of its lease statements (indexed by runner), each checked
 * against the task itself, whose runner and state are the truth.
 */
export async function leasesOf(sql: Sql, runnerId: string): Promise<HeldLease[]> {
  const rows = await sql<{ id: string; lease: number; job_id: string }[]>`
    SELECT t.id::text, t.lease, t.job_id::text
    FROM tasks t
    WHERE t.id = ANY((
      SELECT coalesce(array_agg(DISTINCT x), '{}') FROM task_leases l, unnest(l.task_ids) AS x WHERE l.runner_id = ${runnerId}::uuid
    )::bigint[])
      AND t.state = 'running' AND t.runner_id = ${runnerId}::uuid`;
  return rows.map((r) => ({ taskId: r.id, lease: r.lease, jobId: r.job_id }));
}
