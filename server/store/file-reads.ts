import type { Sql } from "postgres";
import { arrayLiteral, quotedArrayLiteral } from "./sql-literals.js";
import type { FileTaskRow, PathStateName, TaskPathRow } from "./task-paths.js";

/** A file task of a job with its counts per state. */
export interface FileTaskStatusRow extends FileTaskRow {
  name: string;
  started_at: Date | null;
  /** Paths per reported state (states without paths are absent). */
  counts: Partial<Record<PathStateName, number>> | null;
}

/**
 * Every file task of a job, by step then chunk, with how many paths it
 * reported in each state (counted per task through the primary key of
 * path_states: no counter that every report would update).
 */
export async function fileTasksOfJob(sql: Sql, jobId: string): Promise<FileTaskStatusRow[]> {
  return sql<FileTaskStatusRow[]>`
    SELECT f.task_id, f.job_id, t.cluster_id, f.step, f.chunk, f.list_id, f.first_ord, f.last_ord, f.source_task_id, f.site,
           false AS held, t.state, t.lease, t.runner_id::text, t.name, t.started_at, c.counts
    FROM file_tasks f
    JOIN tasks t ON t.id = f.task_id
    LEFT JOIN LATERAL (
      SELECT json_object_agg(state, n) AS counts
      FROM (SELECT state, count(*) AS n FROM path_states WHERE task_id = f.task_id GROUP BY state) AS x
    ) AS c ON true
    WHERE f.job_id = ${jobId}::bigint
    ORDER BY f.step, f.chunk`;
}

/** A reported path of a task, for pages across tasks. */
export interface ReportedPathRow {
  task_id: string;
  path: string;
  state: PathStateName;
  message: string | null;
  size: string | null;
  extra: Record<string, unknown> | null;
}

/**
 * A page of the paths some tasks reported, in (task, path) order, optionally
 * only in some states; keyset-paged by the primary key.
 */
export async function reportedPaths(
  sql: Sql,
  taskIds: readonly string[],
  states: readonly PathStateName[],
  after: { taskId: string; path: string } | null,
  limit: number,
): Promise<ReportedPathRow[]> {
  return sql<ReportedPathRow[]>`
    SELECT task_id::text, path, state, message, size::text, extra
    FROM path_states
    WHERE task_id = ANY(${arrayLiteral(taskIds)}::bigint[])
      AND (${states.length === 0}::bool OR state = ANY(${quotedArrayLiteral(states)}::path_state[]))
      AND (task_id, path) > (${after?.taskId ?? "0"}::bigint, ${after?.path ?? ""})
    ORDER BY task_id, path
    LIMIT ${limit}`;
}

export type { TaskPathRow };
