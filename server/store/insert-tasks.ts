import type { PendingQuery, Row, Sql, TransactionSql } from "postgres";
import type { TaskPlan } from "../task-plan.js";
import { arrayLiteral } from "./reported-rows.js";

/** The channel a server listens on for ready work; the payload is a cluster id. */
export const TASKS_CHANNEL = "sluice_tasks";
/** The channel for cancelled jobs; the payload is a job id. */
export const CANCEL_CHANNEL = "sluice_cancel";

/**
 * CTEs (`rows`, `clusters_named`, `inserted`, `ready`, `handed`, `deps`) that insert the planned
 * tasks, the ready-queue rows of those without dependencies, the lease of
 * those handed straight to a runner (`TaskRow.leaseTo`: inserted running under
 * lease 1, recorded in `task_leases` for lease expiry, not queued) and the
 * dependency edges in the statement they are part of. Ids are drawn from the
 * sequence per batch position first, so that edges can name tasks inserted in
 * the same statement. Rows travel as one JSON parameter: postgres.js array
 * parameters mangle booleans and nulls, and one parameter keeps the statement
 * prepared whatever the batch size.
 *
 * `jobId` is an SQL expression for the job id of rows whose plan has none (of
 * a new job); it may use `r.job_ord`, the position of the row's job.
 */
export function taskInsertCtes(sql: Sql | TransactionSql, plan: TaskPlan, jobId: PendingQuery<Row[]>, leaseTtlMs = 0) {
  const rows = JSON.stringify(
    plan.rows.map((r) => ({
      ord: r.ord,
      job_id: r.jobId,
      job_ord: r.jobOrd ?? null,
      parent_id: r.parentId,
      cluster_id: r.clusterId,
      name: r.name,
      major: r.major,
      minor: r.minor,
      display: r.display,
      input: Buffer.from(r.input.buffer, r.input.byteOffset, r.input.byteLength).toString("base64"),
      max_retries: r.maxRetries,
      deps_left: r.depsLeft,
      has_dependents: r.hasDependents,
      trigger: r.trigger,
      lease_to: r.leaseTo ?? null,
    })),
  );
  const clusterIds: number[] = [];
  for (const r of plan.rows) {
    if (r.clusterId === null) throw new Error("a planned task has no cluster: subtasks take their parent's before they are inserted");
    if (!clusterIds.includes(r.clusterId)) clusterIds.push(r.clusterId);
  }
  // No estimate here depends on a parameter's value (a function scan of the
  // JSON is always guessed at 100 rows), so that PostgreSQL keeps one generic
  // plan for the statement: with generate_series(1, n) for the ids, a custom
  // plan looked cheaper, and planning took as long as executing a one-task job.
  return sql`
    rows AS MATERIALIZED (
      -- Ids in batch order, drawn before the insert so that edges can name them.
      SELECT r.*, nextval('tasks_id_seq') AS id
      FROM json_to_recordset(${rows}::text::json) AS r(ord int, job_id bigint, job_ord int, parent_id bigint, cluster_id int, name text,
             major int, minor int, display text, input text, max_retries int, deps_left int, has_dependents bool, trigger jsonb,
             lease_to uuid)
    ), clusters_named AS MATERIALIZED (
      -- Locked as a foreign key's check would lock them, once each instead of
      -- once per task (migration 0011): a cluster cannot be deleted under the
      -- insert, and one deleted before it fails it.
      SELECT count(*) AS existing
      FROM (SELECT id FROM clusters WHERE id = ANY(${arrayLiteral(clusterIds)}::int[]) FOR KEY SHARE) c
    ), inserted AS (
      INSERT INTO tasks (id, job_id, parent_id, cluster_id, name, major, minor, display, input, max_retries, deps_left, has_dependents, trigger,
                         state, lease, runner_id, lease_expires_at, started_at)
      SELECT r.id, coalesce(r.job_id, ${jobId}), r.parent_id, r.cluster_id, r.name, r.major, r.minor, r.display,
             decode(r.input, 'base64'), r.max_retries, r.deps_left, r.has_dependents, r.trigger,
             CASE WHEN r.lease_to IS NULL THEN 'queued' ELSE 'running' END::task_state, (r.lease_to IS NOT NULL)::int, r.lease_to,
             CASE WHEN r.lease_to IS NOT NULL THEN now() + ${leaseTtlMs}::int * interval '1 millisecond' END,
             CASE WHEN r.lease_to IS NOT NULL THEN now() END
      FROM rows r
      WHERE (SELECT sluice_clusters_exist(existing, ${clusterIds.length}::int) FROM clusters_named)
      RETURNING id, cluster_id, name, major, minor, deps_left, runner_id
    ), ready AS (
      ${queueReady(sql, "inserted")} WHERE deps_left = 0 AND runner_id IS NULL
    ), handed AS (
      INSERT INTO task_leases (expires_at, task_ids)
      SELECT now() + ${leaseTtlMs}::int * interval '1 millisecond', array_agg(id) FROM inserted WHERE runner_id IS NOT NULL HAVING count(*) > 0
    ), deps AS (
      INSERT INTO task_dependencies (depends_on, task_id)
      -- Positions index the ids directly (they run from 1 to n): no join whose
      -- plan a generic estimate could get wrong.
      SELECT m.ids[d.from_ord], m.ids[d.to_ord]
      FROM unnest(${arrayLiteral(plan.depFrom)}::int[], ${arrayLiteral(plan.depTo)}::int[]) AS d(from_ord, to_ord),
           (SELECT array_agg(id ORDER BY ord) AS ids FROM rows) AS m
      RETURNING 1
    )`;
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
