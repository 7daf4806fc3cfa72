import type { Sql, TransactionSql } from "postgres";

export interface QueueCountsRow {
  cluster_id: number;
  ready: number;
  running: number;
}

/**
 * Ready and running tasks per cluster. Both come from the small tables that
 * hold exactly those tasks (ready_tasks; task_leases, whose rows name the
 * tasks of leases that may still run), never from a scan of `tasks`, which
 * has no index on state.
 */
export async function queueCounts(sql: Sql): Promise<QueueCountsRow[]> {
  return sql<QueueCountsRow[]>`
    WITH ready AS (
      SELECT cluster_id, count(*)::int AS n FROM ready_tasks GROUP BY cluster_id
    ), running AS (
      SELECT t.cluster_id, count(DISTINCT t.id)::int AS n
      FROM task_leases l CROSS JOIN LATERAL unnest(l.task_ids) AS u(id)
      JOIN tasks t ON t.id = u.id
      WHERE t.state = 'running'
      GROUP BY t.cluster_id
    )
    SELECT c.id AS cluster_id, coalesce(r.n, 0) AS ready, coalesce(x.n, 0) AS running
    FROM clusters c
    LEFT JOIN ready r ON r.cluster_id = c.id
    LEFT JOIN running x ON x.cluster_id = c.id`;
}

export interface FinishedJobsRow {
  cluster_id: number;
  minute: Date;
  completed: number;
  failed: number;
}

/**
 * Jobs completed and failed per cluster and minute, from the minute of `since`
 * on, as the completions that finished them counted them (`countFinished`).
 */
export async function finishedJobsPerMinute(sql: Sql, since: Date): Promise<FinishedJobsRow[]> {
  return sql<FinishedJobsRow[]>`
    SELECT cluster_id, minute, sum(completed)::int AS completed, sum(failed)::int AS failed
    FROM job_finish_counts
    WHERE minute >= date_trunc('minute', ${since}::timestamptz)
    GROUP BY 1, 2`;
}

/**
 * The statement part that counts the jobs a completion finished, per cluster,
 * in the current minute: `rows` is a CTE of the updated jobs' `cluster_id` and
 * `state`. Each connection adds to rows of its own (by backend), so that
 * completions on different connections never wait for each other's counts.
 */
export function countFinished(sql: Sql | TransactionSql, rows: string) {
  return sql`
    INSERT INTO job_finish_counts AS f (minute, cluster_id, backend, completed, failed)
    SELECT date_trunc('minute', now()), cluster_id, pg_backend_pid(),
           count(*) FILTER (WHERE state = 'completed'), count(*) FILTER (WHERE state = 'failed')
    FROM ${sql(rows)} WHERE state IN ('completed', 'failed')
    GROUP BY cluster_id
    ON CONFLICT (minute, cluster_id, backend)
    DO UPDATE SET completed = f.completed + excluded.completed, failed = f.failed + excluded.failed`;
}

/** Forgets the counts of finished jobs older than the console ever shows (an hour), with a margin. */
export async function deleteOldFinishCounts(sql: Sql): Promise<void> {
  await sql`DELETE FROM job_finish_counts WHERE minute < now() - interval '2 hours'`;
}

export interface QueueGaugesRow {
  cluster: string;
  ready: number;
  /** Age of the lowest-id ready task, in seconds (0: none ready). */
  oldest_seconds: number;
  /** Runners whose server said within `freshMs` that their session is open. */
  runners: number;
}

/**
 * What /metrics shows of the queue, per cluster, in one statement: ready
 * tasks, the age of the oldest (ready_tasks is walked in id order, which is
 * creation order, and the first task's row gives its age), and connected
 * runners. Counting ready_tasks visits every ready task: fine for a scrape
 * every few seconds, not for the hot path.
 */
export async function queueGauges(sql: Sql, freshMs: number): Promise<QueueGaugesRow[]> {
  return sql<QueueGaugesRow[]>`
    SELECT c.slug AS cluster,
           (SELECT count(*) FROM ready_tasks r WHERE r.cluster_id = c.id)::int AS ready,
           coalesce((SELECT extract(epoch FROM now() - t.created_at) FROM ready_tasks r JOIN tasks t ON t.id = r.id
                     WHERE r.cluster_id = c.id ORDER BY r.id LIMIT 1), 0)::float8 AS oldest_seconds,
           (SELECT count(*) FROM runners x WHERE x.cluster_id = c.id
              AND x.seen_at >= now() - ${freshMs}::bigint * interval '1 millisecond')::int AS runners
    FROM clusters c ORDER BY c.id`;
}

/** Connections to this database by state ("active", "idle", ...), from pg_stat_activity. */
export async function databaseConnections(sql: Sql): Promise<{ state: string; n: number }[]> {
  return sql<{ state: string; n: number }[]>`
    SELECT coalesce(state, 'unknown') AS state, count(*)::int AS n FROM pg_stat_activity
    WHERE datname = current_database() AND backend_type = 'client backend'
    GROUP BY 1`;
}
