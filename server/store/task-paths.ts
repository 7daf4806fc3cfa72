import type { Sql } from "postgres";
import { quotedArrayLiteral } from "./sql-literals.js";

/** The path states, as PostgreSQL's enum `path_state` names them. */
export const PATH_STATES = ["processed", "skipped", "aborted", "failures", "inprogress"] as const;
export type PathStateName = (typeof PATH_STATES)[number];

/** A file task, with what the runner asking about it holds. */
export interface FileTaskRow {
  task_id: string;
  job_id: string;
  cluster_id: number;
  step: number;
  chunk: number;
  list_id: string | null;
  first_ord: string | null;
  last_ord: string | null;
  source_task_id: string | null;
  site: string | null;
  /** Whether the runner holds the task under the lease it named. */
  held: boolean;
  state: string;
  lease: number;
  runner_id: string | null;
}

/** A file task and whether `runnerId` holds it under `lease`; undefined when the task is not a file task (or missing). */
export async function fileTaskFor(sql: Sql, taskId: string, lease: number, runnerId: string | null): Promise<FileTaskRow | undefined> {
  const [row] = await sql<FileTaskRow[]>`
    SELECT f.task_id, f.job_id, t.cluster_id, f.step, f.chunk, f.list_id, f.first_ord, f.last_ord, f.source_task_id, f.site,
           (t.state = 'running' AND t.lease = ${lease} AND (${runnerId}::uuid IS NULL OR t.runner_id = ${runnerId}::uuid)) AS held,
           t.state, t.lease, t.runner_id::text
    FROM file_tasks f JOIN tasks t ON t.id = f.task_id
    WHERE f.task_id = ${taskId}::bigint`;
  return row;
}

/** Whether a task exists at all (to tell "not a file task" from "no such task"). */
export async function taskExists(sql: Sql, taskId: string): Promise<boolean> {
  const rows = await sql`SELECT 1 FROM tasks WHERE id = ${taskId}::bigint`;
  return rows.length > 0;
}

/** One input path of a task, with the state the task reported for it (null: none). */
export interface TaskPathRow {
  /** The position in the list (first step) or the path itself (later steps): what the next page starts after. */
  key: string;
  path: string;
  size: string | null;
  message: string | null;
  extra: Record<string, unknown> | null;
  state: PathStateName | null;
}

/** How a page of a task's input is chosen. */
export interface InputPage {
  /** The `key` of the last row of the previous page; null for the first page. */
  after: string | null;
  limit: number;
  /** Only paths without a final state reported by this task (none, or inprogress). */
  pendingOnly: boolean;
}

/**
 * A page of a file task's input paths, with the state it reported for each.
 * The first step reads its range of the list in list order; a later step the
 * paths its predecessor processed or skipped, in path order. One statement,
 * each path joined to its state by primary key.
 */
export async function taskInputPage(sql: Sql, f: FileTaskRow, page: InputPage): Promise<TaskPathRow[]> {
  // A first attempt has no earlier one whose states it must skip or show
  // (what it reported itself lies behind the page): no lookup per path. The
  // variants are separate statements: a join under a false parameter still
  // looked every path up, and an "after or none" test kept the page's start
  // out of the index condition.
  const withStates = f.lease > 1 || f.state !== "running";
  const pending = page.pendingOnly && withStates;
  const state = withStates ? sql`s.state` : sql`NULL::path_state AS state`;
  const pendingOnly = pending ? sql`AND (s.state IS NULL OR s.state = 'inprogress')` : sql``;
  if (f.list_id !== null) {
    const states = withStates ? sql`LEFT JOIN path_states s ON s.task_id = ${f.task_id}::bigint AND s.path = i.path` : sql``;
    return sql<TaskPathRow[]>`
      SELECT i.ord::text AS key, i.path, i.size::text, i.message, i.extra, ${state}
      FROM path_list_items i ${states}
      WHERE i.list_id = ${f.list_id}::bigint AND i.ord > ${page.after ?? String(BigInt(f.first_ord!) - 1n)}::bigint
        AND i.ord <= ${f.last_ord}::bigint ${pendingOnly}
      ORDER BY i.ord
      LIMIT ${page.limit}`;
  }
  const states = withStates ? sql`LEFT JOIN path_states s ON s.task_id = ${f.task_id}::bigint AND s.path = p.path` : sql``;
  const after = page.after === null ? sql`` : sql`AND p.path > ${page.after}`;
  return sql<TaskPathRow[]>`
    SELECT p.path AS key, p.path, p.size::text, p.message, p.extra, ${state}
    FROM path_states p ${states}
    WHERE p.task_id = ${f.source_task_id}::bigint AND p.state IN ('processed', 'skipped') ${after} ${pendingOnly}
    ORDER BY p.path
    LIMIT ${page.limit}`;
}

/** How many input paths a file task has. */
export async function taskInputTotal(sql: Sql, f: FileTaskRow): Promise<bigint> {
  if (f.list_id !== null) return BigInt(f.last_ord!) - BigInt(f.first_ord!) + 1n;
  const [row] = await sql<{ n: string }[]>`
    SELECT count(*) AS n FROM path_states WHERE task_id = ${f.source_task_id}::bigint AND state IN ('processed', 'skipped')`;
  return BigInt(row.n);
}

/** What came of a report. */
export type ReportOutcome =
  | { kind: "recorded"; recorded: number }
  /** The runner does not hold the task under that lease (any more): nothing was written. */
  | { kind: "not-held" }
  /** A path that is not one of the task's input paths: nothing was written. */
  | { kind: "unknown-path"; path: string };

/**
 * Records the states of a batch of a file task's paths in one statement: the
 * holder is checked on the task row, each path is looked up among the task's
 * input (its list range, or its predecessor's processed and skipped paths) by
 * index, and the states are written only if every path was found. A path
 * reported again takes the new state. The path object's size and other keys
 * are copied from the input, so that the next task reads them from here.
 * Paths must be distinct within a batch.
 */
export async function reportPathStates(
  sql: Sql,
  taskId: string,
  lease: number,
  /** Null for the job hook of a process task, whose attempt key stands for its runner. */
  runnerId: string | null,
  paths: readonly string[],
  states: readonly PathStateName[],
  messages: readonly (string | null)[],
): Promise<ReportOutcome> {
  try {
    return await writeStates(sql, taskId, lease, runnerId, paths, states, messages, false);
  } catch (e) {
    // A path reported before (by an earlier attempt, or earlier in this one):
    // the statement wrote nothing; again, replacing the states. A plain insert
    // first is cheaper than an upsert, which checks each row twice.
    const err = e as { code?: string; constraint_name?: string };
    if (err.code !== "23505" || err.constraint_name !== "path_states_pkey") throw e;
    return writeStates(sql, taskId, lease, runnerId, paths, states, messages, true);
  }
}

async function writeStates(
  sql: Sql,
  taskId: string,
  lease: number,
  runnerId: string | null,
  paths: readonly string[],
  states: readonly PathStateName[],
  messages: readonly (string | null)[],
  replace: boolean,
): Promise<ReportOutcome> {
  const [row] = await sql<{ held: string; unknown: string | null; recorded: string }[]>`
    WITH f AS MATERIALIZED (
      SELECT f.task_id, f.list_id, f.first_ord, f.last_ord, f.source_task_id
      FROM file_tasks f JOIN tasks t ON t.id = f.task_id
      WHERE f.task_id = ${taskId}::bigint AND t.state = 'running' AND t.lease = ${lease}
        AND (${runnerId}::uuid IS NULL OR t.runner_id = ${runnerId}::uuid)
    ), r AS MATERIALIZED (
      SELECT r.*
      FROM (SELECT ${quotedArrayLiteral(paths)}::text[] AS p, ${quotedArrayLiteral(states)}::path_state[] AS s,
                   ${quotedArrayLiteral(messages)}::text[] AS m OFFSET 0) AS a,
           unnest(a.p, a.s, a.m) AS r(path, state, message)
    ), found AS MATERIALIZED (
      SELECT r.path, r.state, r.message,
             coalesce(i.size, p.size) AS size, coalesce(i.extra, p.extra) AS extra,
             (i.path IS NOT NULL OR p.path IS NOT NULL) AS known
      FROM f CROSS JOIN r
      LEFT JOIN path_list_items i ON f.list_id IS NOT NULL AND i.list_id = f.list_id AND i.path = r.path
                                  AND i.ord BETWEEN f.first_ord AND f.last_ord
      LEFT JOIN path_states p ON f.source_task_id IS NOT NULL AND p.task_id = f.source_task_id AND p.path = r.path
                              AND p.state IN ('processed', 'skipped')
    ), bad AS (
      SELECT path FROM found WHERE NOT known LIMIT 1
    ), written AS (
      INSERT INTO path_states (task_id, path, state, message, size, extra)
      SELECT ${taskId}::bigint, path, state, message, size, extra FROM found WHERE NOT EXISTS (SELECT 1 FROM bad)
      ${replace ? sql`ON CONFLICT (task_id, path) DO UPDATE SET state = excluded.state, message = excluded.message` : sql``}
      RETURNING 1
    )
    SELECT (SELECT count(*) FROM f) AS held, (SELECT path FROM bad) AS unknown, (SELECT count(*) FROM written) AS recorded`;
  if (row.held === "0") return { kind: "not-held" };
  if (row.unknown !== null) return { kind: "unknown-path", path: row.unknown };
  return { kind: "recorded", recorded: Number(row.recorded) };
}
