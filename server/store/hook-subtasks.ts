import type { Sql } from "postgres";

/** The subtasks posted by attempts, as JSON submissions in position order, by "task lease". */
export async function readHookSubtasks(sql: Sql, attempts: readonly { taskId: string; lease: number }[]): Promise<Map<string, unknown[]>> {
  const out = new Map<string, unknown[]>();
  if (attempts.length === 0) return out;
  const rows = await sql<{ task_id: string; lease: number; submission: unknown }[]>`
    SELECT s.task_id, s.lease, s.submission
    FROM unnest(${attempts.map((a) => a.taskId)}::bigint[], ${attempts.map((a) => a.lease)}::int[]) AS a(task_id, lease)
    JOIN task_hook_subtasks s ON s.task_id = a.task_id AND s.lease = a.lease
    ORDER BY s.task_id, s.lease, s.position`;
  for (const r of rows) {
    const key = `${r.task_id} ${r.lease}`;
    let list = out.get(key);
    if (!list) out.set(key, (list = []));
    list.push(r.submission);
  }
  return out;
}

/**
 * Appends an attempt's submissions after those it has, numbering them from
 * the first index; "ended" when the attempt is not running under that lease,
 * "too-many" past `max` subtasks for the attempt (nothing is written then).
 */
export async function appendHookSubtasks(
  sql: Sql,
  taskId: string,
  lease: number,
  submissions: readonly unknown[],
  max: number,
): Promise<number | "ended" | "too-many"> {
  return sql.begin(async (tx) => {
    // The task row's lock orders concurrent posts of one attempt.
    const [task] = await tx<{ running: boolean }[]>`
      SELECT state = 'running' AND lease = ${lease} AS running FROM tasks WHERE id = ${taskId} FOR SHARE`;
    if (!task?.running) return "ended";
    await tx`SELECT pg_advisory_xact_lock(hashtextextended(${`hook-subtasks ${taskId}`}, 0))`;
    const [{ next }] = await tx<{ next: number }[]>`
      SELECT coalesce(max(position) + 1, 0)::int AS next FROM task_hook_subtasks WHERE task_id = ${taskId} AND lease = ${lease}`;
    if (next + submissions.length > max) return "too-many";
    await tx`
      INSERT INTO task_hook_subtasks (task_id, lease, position, submission)
      SELECT ${taskId}, ${lease}, ${next} + ord - 1, s
      FROM jsonb_array_elements(${tx.json(submissions as never)}::jsonb) WITH ORDINALITY AS t(s, ord)`;
    return next;
  });
}
