import type { Sql } from "postgres";
import { notifyJobEventsOf } from "./channels.js";

/** A log line as the store writes it. */
export interface LogLineIn {
  taskId: string;
  jobId: string;
  attempt: number;
  level: number;
  loggedAt: Date;
  message: string;
  /** A JSON object's text, or null. */
  fields: string | null;
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
 * Writes log lines in one statement, in the order given, and counts their
 * bytes per task in task_log_sizes. A task's lines are kept while its bytes
 * (all attempts) stay within `capBytes`; later ones are only counted. `followed` names the jobs of these lines that
 * someone follows: they are told with one NOTIFY each once this commits.
 * Returns how many lines were kept.
 */
export async function insertTaskLogs(sql: Sql, lines: readonly LogLineIn[], capBytes: number, followed: readonly string[]): Promise<number> {
  if (lines.length === 0) return 0;
  const n = lines.length;
  const taskIds = new Array<string>(n);
  const jobIds = new Array<string>(n);
  const attempts = new Array<number>(n);
  const levels = new Array<number>(n);
  const times = new Array<number>(n);
  const messages = new Array<string>(n);
  const fields = new Array<string | null>(n);
  for (let i = 0; i < n; i++) {
    const l = lines[i];
    taskIds[i] = l.taskId;
    jobIds[i] = l.jobId;
    attempts[i] = l.attempt;
    levels[i] = l.level;
    times[i] = l.loggedAt.getTime();
    messages[i] = l.message;
    fields[i] = l.fields;
  }
  const [{ kept }] = await sql<{ kept: number }[]>`
    WITH l AS (
      -- Times as epoch milliseconds: postgres.js sends an array of dates as text PostgreSQL cannot cast.
      SELECT * FROM unnest(${taskIds}::bigint[], ${jobIds}::bigint[], ${attempts}::int[], ${levels}::int2[],
                           ${times}::float8[], ${messages}::text[], ${fields}::text[])
        WITH ORDINALITY AS l(task_id, job_id, attempt, level, logged_ms, message, fields, n)
    ), sized AS (
      SELECT l.*, octet_length(message) + coalesce(octet_length(fields), 0) AS bytes FROM l
    ), added AS (
      SELECT task_id, min(job_id) AS job_id, sum(bytes)::bigint AS bytes FROM sized GROUP BY task_id
    ), sizes AS (
      INSERT INTO task_log_sizes AS s (task_id, job_id, bytes)
      SELECT task_id, job_id, bytes FROM added ORDER BY task_id
      ON CONFLICT (task_id) DO UPDATE SET bytes = s.bytes + excluded.bytes
      RETURNING s.task_id, s.bytes
    ), kept AS (
      -- A line is kept while the task's bytes up to and including it (those
      -- counted before this statement, then this statement's in order) are
      -- within the limit.
      INSERT INTO task_logs (job_id, task_id, attempt, level, logged_at, message, fields)
      SELECT x.job_id, x.task_id, x.attempt, x.level, to_timestamp(x.logged_ms / 1000), x.message, x.fields::jsonb
      FROM (
        SELECT z.*, s.bytes - a.bytes + sum(z.bytes) OVER (PARTITION BY z.task_id ORDER BY z.n) AS upto
        FROM sized z JOIN sizes s USING (task_id) JOIN added a USING (task_id)
      ) x
      WHERE x.upto <= ${capBytes}
      ORDER BY x.n
      RETURNING 1
    )
    SELECT (SELECT count(*) FROM kept)::int AS kept, ${notifyJobEventsOf(sql, followed)} AS notified`;
  return kept;
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

/** Whether lines of the job (of one task if set) were not kept for being over the limit. */
export async function logsTruncated(sql: Sql, jobId: string, taskId: string | null, capBytes: number): Promise<boolean> {
  const [row] = await sql<{ dropped: boolean }[]>`
    SELECT coalesce(bool_or(bytes > ${capBytes}), false) AS dropped FROM task_log_sizes
    WHERE job_id = ${jobId} AND (${taskId}::bigint IS NULL OR task_id = ${taskId}::bigint)`;
  return row?.dropped ?? false;
}
