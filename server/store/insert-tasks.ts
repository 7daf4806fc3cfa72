import type { PendingQuery, Row, Sql, TransactionSql } from "postgres";
import type { TaskPlan, TaskRow } from "../task-plan.js";
import { arrayLiteral, quotedArrayLiteral } from "./sql-literals.js";

/**
 * CTEs (`rows`, `clusters_named`, `inserted`, `ready`, `handed`, `deps`) that insert the planned
 * tasks, the ready-queue rows of those without dependencies, the lease of
 * those handed straight to a runner (`TaskRow.leaseTo`: inserted running under
 * lease 1, recorded in `task_leases` for lease expiry, not queued) and the
 * dependency edges in the statement they are part of. Ids are drawn from the
 * sequence per batch position first, so that edges can name tasks inserted in
 * the same statement.
 *
 * Rows travel as one array literal per column (`unnest`): one parameter per
 * column keeps the statement prepared whatever the batch size, and PostgreSQL
 * reads 10,000 rows of arrays in half the time it parsed them as JSON objects
 * (19 against 40 ms, a third of the bytes). The literals are built here, not
 * by postgres.js, which mangles booleans and nulls in array parameters.
 *
 * `jobId` is an SQL expression for the job id of rows whose plan has none (of
 * a new job); it may use `r.job_ord`, the position of the row's job.
 */
export function taskInsertCtes(sql: Sql | TransactionSql, plan: TaskPlan, jobId: PendingQuery<Row[]>, leaseTtlMs = 0) {
  const c = columnsOf(plan);
  // No estimate here depends on a parameter's value (the arrays reach unnest
  // through a subquery that the planner does not look into, so it guesses
  // their length), so that PostgreSQL keeps one generic plan for the
  // statement: with generate_series(1, n) for the ids, a custom plan looked
  // cheaper, and planning took as long as executing a one-task job.
  return sql`
    rows AS MATERIALIZED (
      -- Ids in batch order, drawn before the insert so that edges can name them.
      SELECT r.*, nextval('tasks_id_seq') AS id
      FROM (SELECT ${c.ord}::int[] AS ord, ${c.jobId}::bigint[] AS job_id, ${c.jobOrd}::int[] AS job_ord, ${c.parentId}::bigint[] AS parent_id,
                   ${c.clusterId}::int[] AS cluster_id, ${c.name}::text[] AS name, ${c.major}::int[] AS major, ${c.minor}::int[] AS minor,
                   ${c.display}::text[] AS display, ${c.input}::text[] AS input, ${c.maxRetries}::int[] AS max_retries,
                   ${c.depsLeft}::int[] AS deps_left, ${c.hasDependents}::bool[] AS has_dependents, ${c.trigger}::jsonb[] AS trigger,
                   ${c.leaseTo}::uuid[] AS lease_to, ${c.traceparent}::text[] AS traceparent,
                   ${c.retryDelayMs}::int[] AS retry_delay_ms, ${c.retryFactor}::real[] AS retry_factor, ${c.retryMaxMs}::int[] AS retry_max_ms,
                   ${c.timeoutMs}::int[] AS timeout_ms
            OFFSET 0) AS a,
           unnest(a.ord, a.job_id, a.job_ord, a.parent_id, a.cluster_id, a.name, a.major, a.minor, a.display, a.input, a.max_retries,
                  a.deps_left, a.has_dependents, a.trigger, a.lease_to, a.traceparent, a.retry_delay_ms, a.retry_factor, a.retry_max_ms,
                  a.timeout_ms)
             AS r(ord, job_id, job_ord, parent_id, cluster_id, name, major, minor, display, input, max_retries, deps_left, has_dependents,
                  trigger, lease_to, traceparent, retry_delay_ms, retry_factor, retry_max_ms, timeout_ms)
    ), clusters_named AS MATERIALIZED (
      -- Locked as a foreign key's check would lock them, once each instead of
      -- once per task (migration 0011): a cluster cannot be deleted under the
      -- insert, and one deleted before it fails it.
      SELECT count(*) AS existing
      FROM (SELECT id FROM clusters WHERE id = ANY(${arrayLiteral(c.clusterIds)}::int[]) FOR KEY SHARE) c
    ), inserted AS (
      INSERT INTO tasks (id, job_id, parent_id, cluster_id, name, major, minor, display, input, max_retries, deps_left, has_dependents, trigger,
                         traceparent, retry_delay_ms, retry_factor, retry_max_ms, timeout_ms, state, lease, runner_id, lease_expires_at, started_at)
      SELECT r.id, coalesce(r.job_id, ${jobId}), r.parent_id, r.cluster_id, r.name, r.major, r.minor, r.display,
             decode(r.input, 'base64'), r.max_retries, r.deps_left, r.has_dependents, r.trigger, r.traceparent,
             r.retry_delay_ms, r.retry_factor, r.retry_max_ms, r.timeout_ms,
             CASE WHEN r.lease_to IS NULL THEN 'queued' ELSE 'running' END::task_state, (r.lease_to IS NOT NULL)::int, r.lease_to,
             CASE WHEN r.lease_to IS NOT NULL THEN now() + ${leaseTtlMs}::int * interval '1 millisecond' END,
             CASE WHEN r.lease_to IS NOT NULL THEN now() END
      FROM rows r
      WHERE (SELECT sluice_clusters_exist(existing, ${c.clusterIds.length}::int) FROM clusters_named)
      RETURNING id, cluster_id, name, major, minor, deps_left, runner_id
    ), ready AS (
      ${queueReady(sql, "inserted")} WHERE deps_left = 0 AND runner_id IS NULL
    ), handed AS (
      INSERT INTO task_leases (expires_at, task_ids, runner_id)
      SELECT now() + ${leaseTtlMs}::int * interval '1 millisecond', array_agg(id), runner_id FROM inserted WHERE runner_id IS NOT NULL
      GROUP BY runner_id
    ), deps AS (${
      plan.depFrom.length === 0
        ? // Nothing to insert: not even the ids gathered for it.
          sql`SELECT 1 WHERE false`
        : sql`
      INSERT INTO task_dependencies (depends_on, task_id)
      -- Positions index the ids directly (they run from 1 to n): no join whose
      -- plan a generic estimate could get wrong.
      SELECT m.ids[d.from_ord], m.ids[d.to_ord]
      FROM unnest(${arrayLiteral(plan.depFrom)}::int[], ${arrayLiteral(plan.depTo)}::int[]) AS d(from_ord, to_ord),
           (SELECT array_agg(id ORDER BY ord) AS ids FROM rows) AS m
      RETURNING 1`
    })`;
}

/** The plan's rows as one array literal per column, and the clusters they name. */
function columnsOf(plan: TaskPlan) {
  const rows = plan.rows;
  const clusterIds: number[] = [];
  for (const r of rows) {
    if (r.clusterId === null) throw new Error("a planned task has no cluster: subtasks take their parent's before they are inserted");
    if (!clusterIds.includes(r.clusterId)) clusterIds.push(r.clusterId);
  }
  // Numbers, ids (validated digits) and booleans go as they are, a missing one as NULL; text is quoted.
  // A column no row has a value in goes as an empty array, which unnest pads
  // with NULLs: most columns of most submits, parsed for nothing otherwise.
  const column = <V>(f: (r: TaskRow) => V, literal: (values: V[]) => string) => {
    const values = rows.map(f);
    return values.every((v) => v == null) ? "{}" : literal(values);
  };
  const plain = (f: (r: TaskRow) => number | string | null | undefined) => column(f, (values) => arrayLiteral(values.map((v) => v ?? "NULL")));
  const quoted = (f: (r: TaskRow) => string | null) => column(f, quotedArrayLiteral);
  return {
    clusterIds,
    ord: plain((r) => r.ord),
    jobId: plain((r) => r.jobId),
    jobOrd: plain((r) => r.jobOrd),
    parentId: plain((r) => r.parentId),
    clusterId: plain((r) => r.clusterId),
    name: quoted((r) => r.name),
    major: plain((r) => r.major),
    minor: plain((r) => r.minor),
    display: quoted((r) => r.display),
    // Quoted: base64 has no character to escape, but "NULL" is base64 too.
    input: quoted((r) => Buffer.from(r.input.buffer, r.input.byteOffset, r.input.byteLength).toString("base64")),
    maxRetries: plain((r) => r.maxRetries),
    depsLeft: plain((r) => r.depsLeft),
    hasDependents: plain((r) => (r.hasDependents ? "t" : "f")),
    trigger: quoted((r) => (r.trigger === null ? null : JSON.stringify(r.trigger))),
    leaseTo: quoted((r) => r.leaseTo ?? null),
    traceparent: quoted((r) => r.traceparent ?? null),
    retryDelayMs: plain((r) => r.policy?.retryDelayMs),
    retryFactor: plain((r) => r.policy?.retryFactor),
    retryMaxMs: plain((r) => r.policy?.retryMaxMs),
    timeoutMs: plain((r) => r.policy?.timeoutMs),
  };
}

/**
 * Puts tasks into the ready queue: an INSERT of the rows of `source` (a table or
 * CTE with the tasks' cluster_id, id, name, major and minor), to be followed by
 * the caller's WHERE. Every path that makes a task ready goes through it.
 */
export function queueReady(sql: Sql | TransactionSql, source: string) {
  return sql`INSERT INTO ready_tasks (cluster_id, id, name, major, minor)
    SELECT cluster_id, id, name, major, minor FROM ${sql(source)}`;
}

/** Cluster ids of planned tasks that are queued ready (not handed to a runner). */
export function readyClusters(plan: TaskPlan): number[] {
  return [...new Set(plan.rows.filter((r) => r.depsLeft === 0 && r.leaseTo === undefined).map((r) => r.clusterId!))];
}
