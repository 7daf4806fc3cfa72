import type { Sql } from "postgres";

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

/** Jobs completed and failed per cluster and minute since `since` (through jobs_finished). */
export async function finishedJobsPerMinute(sql: Sql, since: Date): Promise<FinishedJobsRow[]> {
  return sql<FinishedJobsRow[]>`
    SELECT cluster_id, date_trunc('minute', finished_at) AS minute,
           count(*) FILTER (WHERE state = 'completed')::int AS completed,
           count(*) FILTER (WHERE state = 'failed')::int AS failed
    FROM jobs
    WHERE finished_at IS NOT NULL AND finished_at >= ${since}
    GROUP BY 1, 2`;
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
