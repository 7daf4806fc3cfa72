import type { Sql } from "postgres";
import { notifyJobEventsOf } from "./channels.js";
import { arrayLiteral, quotedArrayLiteral } from "./sql-literals.js";

/** Log lines as the store writes them, one list per field: line i is element i of each. */
export interface LogLinesIn {
  taskIds: string[];
  jobIds: string[];
  attempts: number[];
  levels: number[];
  /** Epoch milliseconds. */
  times: number[];
  messages: string[];
  /** JSON objects' text, or null. */
  fields: (string | null)[];
}

/** A log line read back. */
export interface LogLineRow {
  id: string;
  job_id: string;
  task_id: string;
  attempt: number;
  level: number;
  logged_at: Date;
  message: string;
  fields: string | null;
}

/**
 * Writes log lines in one statement, in the order given. `followed` names the
 * jobs of these lines that someone follows: they are told with one NOTIFY
 * each once this commits. (The limit per task attempt is counted by the
 * caller, in memory: a table of sizes cost an upsert per task.)
 */
export async function insertTaskLogs(sql: Sql, lines: LogLinesIn, followed: readonly string[]): Promise<void> {
  if (lines.taskIds.length === 0) return;
  const { taskIds, jobIds, attempts, levels, times, messages, fields } = lines;
  // Arrays as literals built here (see sql-literals.ts); times as epoch
  // milliseconds (postgres.js sends an array of dates as text PostgreSQL
  // cannot cast). Ids are checked digits: the runner's stream holds them.
  const insert = sql`
    INSERT INTO task_logs (job_id, task_id, attempt, level, logged_at, message, fields)
    SELECT l.job_id, l.task_id, l.attempt, l.level, to_timestamp(l.logged_ms / 1000), l.message, l.fields::jsonb
    FROM unnest(${arrayLiteral(taskIds)}::bigint[], ${arrayLiteral(jobIds)}::bigint[], ${arrayLiteral(attempts)}::int[],
                ${arrayLiteral(levels)}::int2[], ${arrayLiteral(times)}::float8[], ${quotedArrayLiteral(messages)}::text[],
                ${quotedArrayLiteral(fields)}::text[])
      WITH ORDINALITY AS l(task_id, job_id, attempt, level, logged_ms, message, fields, n)
    ORDER BY l.n`;
  if (followed.length === 0) await insert;
  else await sql`WITH kept AS (${insert} RETURNING 1) SELECT (SELECT count(*) FROM kept), ${notifyJobEventsOf(sql, followed)}`;
}

/**
 * Up to `limit` lines of a job (of one task if `taskId` is set) after the line
 * `after` ("0": from the first), oldest first, through task_logs_by_job.
 */
export async function readTaskLogs(sql: Sql, jobId: string, taskId: string | null, after: string, limit: number): Promise<LogLineRow[]> {
  return sql<LogLineRow[]>`
    SELECT id, job_id, task_id, attempt, level, logged_at, message, fields::text AS fields
    FROM task_logs
    WHERE job_id = ${jobId} AND id > ${after}
      AND (${taskId}::bigint IS NULL OR task_id = ${taskId}::bigint)
    ORDER BY id
    LIMIT ${limit}`;
}

/** The fields of the line that says a task attempt's later lines were not kept. */
export const TRUNCATED_FIELDS = '{"sluice": "truncated"}';

/** Whether lines of the job (of one task if set) were not kept for being over the limit. */
export async function logsTruncated(sql: Sql, jobId: string, taskId: string | null): Promise<boolean> {
  const [row] = await sql<{ truncated: boolean }[]>`
    SELECT EXISTS (
      SELECT 1 FROM task_logs
      WHERE job_id = ${jobId} AND (${taskId}::bigint IS NULL OR task_id = ${taskId}::bigint) AND fields ->> 'sluice' = 'truncated'
    ) AS truncated`;
  return row.truncated;
}
