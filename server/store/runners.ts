import type { Sql } from "postgres";

/** A runner's row as its session starts. */
export interface RunnerIn {
  id: string;
  sessionId: string;
  serverId: string;
  name: string;
  host: string;
  clusterId: number;
  tasks: readonly { name: string; major: number; minor: number }[];
  concurrency: number;
  prefetch: number;
  inFlight: number;
}

export interface RunnerRow {
  id: string;
  name: string;
  host: string;
  cluster_id: number;
  task_names: string[];
  task_majors: number[];
  task_minors: number[];
  concurrency: number;
  prefetch: number;
  in_flight: number;
  connected_at: Date;
  last_heard_at: Date;
}

/** Writes (or replaces) the row of a runner whose session started. */
export async function runnerConnected(sql: Sql, r: RunnerIn): Promise<void> {
  await sql`
    INSERT INTO runners AS r (id, session_id, server_id, name, host, cluster_id, task_names, task_majors, task_minors, concurrency, prefetch, in_flight)
    VALUES (${r.id}, ${r.sessionId}, ${r.serverId}, ${r.name}, ${r.host}, ${r.clusterId},
            ${r.tasks.map((t) => t.name)}::text[], ${r.tasks.map((t) => t.major)}::int[], ${r.tasks.map((t) => t.minor)}::int[],
            ${r.concurrency}, ${r.prefetch}, ${r.inFlight})
    ON CONFLICT (id) DO UPDATE SET session_id = excluded.session_id, server_id = excluded.server_id, name = excluded.name,
      host = excluded.host, cluster_id = excluded.cluster_id, task_names = excluded.task_names,
      task_majors = excluded.task_majors, task_minors = excluded.task_minors, concurrency = excluded.concurrency,
      prefetch = excluded.prefetch, in_flight = excluded.in_flight, connected_at = now(), last_heard_at = now(), seen_at = now()`;
}

/** Deletes the row of a runner whose session ended, unless a newer session replaced it. */
export async function runnerDisconnected(sql: Sql, runnerId: string, sessionId: string): Promise<void> {
  await sql`DELETE FROM runners WHERE id = ${runnerId} AND session_id = ${sessionId}`;
}

/**
 * The periodic word of one server about its runners, in one statement: when
 * each was last heard and how many tasks it holds. Rows no server has updated
 * for `staleMs` (their server died) are deleted on the way.
 */
export async function touchRunners(
  sql: Sql,
  sessions: readonly { sessionId: string; lastHeard: Date; inFlight: number }[],
  staleMs: number,
): Promise<void> {
  // Also with no session of its own: the server's pass deletes stale rows.
  await sql`
    WITH touched AS (
      UPDATE runners r SET last_heard_at = greatest(r.last_heard_at, to_timestamp(u.heard / 1000)), in_flight = u.in_flight, seen_at = now()
      FROM unnest(${sessions.map((s) => s.sessionId)}::uuid[], ${sessions.map((s) => s.lastHeard.getTime())}::float8[],
                  ${sessions.map((s) => s.inFlight)}::int[]) AS u(session_id, heard, in_flight)
      WHERE r.session_id = u.session_id
      RETURNING 1
    ), gone AS (
      DELETE FROM runners WHERE seen_at < now() - ${staleMs}::bigint * interval '1 millisecond' RETURNING 1
    )
    SELECT (SELECT count(*) FROM touched) AS touched, (SELECT count(*) FROM gone) AS gone`;
}

/**
 * Runners whose server said within `freshMs` that their session is open, optionally of one cluster, ordered by
 * cluster and id, after the (cluster, id) cursor.
 */
export async function listRunners(
  sql: Sql,
  clusterId: number | null,
  freshMs: number,
  after: { clusterId: number; id: string } | null,
  limit: number,
): Promise<RunnerRow[]> {
  return sql<RunnerRow[]>`
    SELECT id, name, host, cluster_id, task_names, task_majors, task_minors, concurrency, prefetch, in_flight, connected_at, last_heard_at
    FROM runners
    WHERE (${clusterId}::int IS NULL OR cluster_id = ${clusterId}::int)
      AND seen_at >= now() - ${freshMs}::bigint * interval '1 millisecond'
      AND (${after?.clusterId ?? null}::int IS NULL OR (cluster_id, id) > (${after?.clusterId ?? 0}::int, ${after?.id ?? "00000000-0000-0000-0000-000000000000"}::uuid))
    ORDER BY cluster_id, id
    LIMIT ${limit}`;
}

export interface WaitingIdentifierRow {
  cluster_id: number;
  name: string;
  major: number;
  minor: number;
  count: number;
  /** Versions of the same name that fresh runners of the cluster registered, "vM.m". */
  runner_versions: string[];
}

/**
 * The identifiers of a job's ready tasks (from ready_tasks, through tasks_by_job)
 * that no runner of their cluster heard from within `freshMs` can execute
 * (same name and major version, a minor version at least the task's).
 */
export async function unrunnableOfJob(sql: Sql, jobId: string, freshMs: number): Promise<WaitingIdentifierRow[]> {
  return sql<WaitingIdentifierRow[]>`
    WITH waiting AS (
      SELECT r.cluster_id, r.name, r.major, r.minor, count(*)::int AS count
      FROM tasks t JOIN ready_tasks r ON r.cluster_id = t.cluster_id AND r.id = t.id
      WHERE t.job_id = ${jobId}
      GROUP BY 1, 2, 3, 4
    ), registered AS (
      SELECT x.cluster_id, u.name, u.major, u.minor
      FROM runners x, unnest(x.task_names, x.task_majors, x.task_minors) AS u(name, major, minor)
      WHERE x.seen_at >= now() - ${freshMs}::bigint * interval '1 millisecond'
        AND x.cluster_id IN (SELECT cluster_id FROM waiting)
    )
    SELECT w.cluster_id, w.name, w.major, w.minor, w.count,
           coalesce((SELECT array_agg(DISTINCT 'v' || g.major || '.' || g.minor) FROM registered g
                     WHERE g.cluster_id = w.cluster_id AND g.name = w.name), '{}') AS runner_versions
    FROM waiting w
    WHERE NOT EXISTS (SELECT 1 FROM registered g WHERE g.cluster_id = w.cluster_id AND g.name = w.name
                      AND g.major = w.major AND g.minor >= w.minor)
    ORDER BY w.cluster_id, w.name, w.major, w.minor`;
}

/** Connected runners per cluster (heard from within `freshMs`). */
export async function runnersPerCluster(sql: Sql, freshMs: number): Promise<{ cluster_id: number; runners: number }[]> {
  return sql<{ cluster_id: number; runners: number }[]>`
    SELECT cluster_id, count(*)::int AS runners FROM runners
    WHERE seen_at >= now() - ${freshMs}::bigint * interval '1 millisecond'
    GROUP BY cluster_id`;
}
