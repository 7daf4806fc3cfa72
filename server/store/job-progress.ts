import type { Sql } from "postgres";
import { notifyJobEventsOf } from "./channels.js";

/** An increment of a job's progress under one label. */
export interface ProgressIn {
  jobId: string;
  label: string;
  done: number;
  total: number;
}

export interface ProgressRow {
  label: string;
  done: number;
  total: number;
}

/**
 * Adds progress increments in one statement (one row per job and label).
 * `followed` names the jobs someone follows: they are told once this commits.
 */
export async function addJobProgress(sql: Sql, updates: readonly ProgressIn[], followed: readonly string[]): Promise<void> {
  if (updates.length === 0) return;
  await sql`
    WITH u AS (
      SELECT job_id, label, sum(done)::bigint AS done, sum(total)::bigint AS total
      FROM unnest(${updates.map((u) => u.jobId)}::bigint[], ${updates.map((u) => u.label)}::text[],
                  ${updates.map((u) => u.done)}::bigint[], ${updates.map((u) => u.total)}::bigint[]) AS u(job_id, label, done, total)
      GROUP BY job_id, label
    ), written AS (
      INSERT INTO job_progress AS p (job_id, label, done, total)
      SELECT job_id, label, done, total FROM u ORDER BY job_id, label
      ON CONFLICT (job_id, label) DO UPDATE SET done = p.done + excluded.done, total = p.total + excluded.total
      RETURNING 1
    )
    SELECT (SELECT count(*) FROM written) AS n, ${notifyJobEventsOf(sql, followed)} AS notified`;
}

/** A job's progress per label, in the order the labels first appeared. */
export async function readJobProgress(sql: Sql, jobId: string): Promise<ProgressRow[]> {
  return sql<ProgressRow[]>`
    SELECT label, done::float8 AS done, total::float8 AS total FROM job_progress WHERE job_id = ${jobId} ORDER BY seq`;
}
