import type { Sql } from "postgres";
import { type CronSchedule, cachedCron, latestTick, nextTick } from "../cron.js";
import { SCHEDULE_CHANNEL } from "./channels.js";
import { type StartedJobRow, type TaskPrototypeRow, insertStartedTasks } from "./recurrent-jobs.js";

export interface RecurrentTaskRow extends TaskPrototypeRow {
  id: string;
  name: string;
  paused: boolean;
  created_at: Date;
  last_tick_at: Date | null;
  last_job_id: string | null;
  triggers: { expression: string; time_zone: string; next_tick_at: string }[];
  storage_triggers: { location_id: string; glob: string }[];
}

export interface NewRecurrentTaskBase {
  name: string;
  clusterId: number;
  taskName: string;
  major: number;
  minor: number;
  display: string | null;
  input: Uint8Array;
  maxRetries: number;
}

/** The CTE `created` that inserts a recurrent task (nothing when its name is taken). */
function created(sql: Sql, t: NewRecurrentTaskBase) {
  return sql`created AS (
    INSERT INTO recurrent_tasks (name, cluster_id, task_name, major, minor, display, input, max_retries)
    VALUES (${t.name}, ${t.clusterId}, ${t.taskName}, ${t.major}, ${t.minor}, ${t.display}, ${Buffer.from(t.input)}, ${t.maxRetries})
    ON CONFLICT (name) DO NOTHING
    RETURNING id
  )`;
}

/** Creates a storage event task and its triggers in one statement; null when the name is taken. */
export async function createStorageEventTask(
  sql: Sql,
  t: NewRecurrentTaskBase,
  triggers: readonly { locationId: string; glob: string }[],
): Promise<string | null> {
  const [row] = await sql<{ id: string | null }[]>`
    WITH ${created(sql, t)}, triggers AS (
      INSERT INTO storage_triggers (recurrent_task_id, location_id, glob)
      SELECT created.id, s.location_id, s.glob
      FROM created, json_to_recordset(${JSON.stringify(triggers.map((x) => ({ location_id: x.locationId, glob: x.glob })))}::text::json)
        AS s(location_id bigint, glob text)
      RETURNING 1
    )
    SELECT (SELECT id FROM created) AS id, (SELECT count(*) FROM triggers) AS triggers`;
  return row.id;
}

export interface NewRecurrentTask extends NewRecurrentTaskBase {
  crons: CronSchedule[];
}

/** A trigger that never fires again waits here ('infinity' sorts last in the due index). */
const NEVER = "infinity";

const tickOrNever = (d: Date | null) => (d ? d.toISOString() : NEVER);

/** Creates a cron task and its triggers in one statement; null when the name is taken. */
export async function createCronTask(sql: Sql, t: NewRecurrentTask, now: Date): Promise<string | null> {
  const triggers = t.crons.map((c) => ({ expression: c.expression, time_zone: c.timeZone, next_tick_at: tickOrNever(nextTick(c, now)) }));
  const earliest = Math.min(...t.crons.map((c) => nextTick(c, now)?.getTime() ?? Infinity));
  const [row] = await sql<{ id: string | null }[]>`
    WITH ${created(sql, t)}, triggers AS (
      INSERT INTO cron_triggers (recurrent_task_id, expression, time_zone, next_tick_at)
      SELECT created.id, c.expression, c.time_zone, c.next_tick_at
      FROM created, json_to_recordset(${JSON.stringify(triggers)}::text::json) AS c(expression text, time_zone text, next_tick_at timestamptz)
      RETURNING 1
    )
    SELECT (SELECT id FROM created) AS id, (SELECT count(*) FROM triggers) AS triggers,
           CASE WHEN EXISTS (SELECT 1 FROM created) THEN pg_notify(${SCHEDULE_CHANNEL}, ${String(Number.isFinite(earliest) ? earliest : 0)}) END`;
  return row.id;
}

const SELECT_TASKS = `
  SELECT r.id, r.name, r.cluster_id, r.task_name, r.major, r.minor, r.display, r.input, r.max_retries, r.paused, r.created_at,
         last.tick_at AS last_tick_at, last.id::text AS last_job_id,
         coalesce((SELECT json_agg(json_build_object('expression', c.expression, 'time_zone', c.time_zone, 'next_tick_at', c.next_tick_at) ORDER BY c.id)
                   FROM cron_triggers c WHERE c.recurrent_task_id = r.id), '[]') AS triggers,
         coalesce((SELECT json_agg(json_build_object('location_id', s.location_id::text, 'glob', s.glob) ORDER BY s.id)
                   FROM storage_triggers s WHERE s.recurrent_task_id = r.id), '[]') AS storage_triggers
  FROM recurrent_tasks r
  LEFT JOIN LATERAL (
    SELECT j.id, j.tick_at FROM jobs j WHERE j.recurrent_task_id = r.id ORDER BY j.id DESC LIMIT 1
  ) last ON true`;

export async function listRecurrentTasks(sql: Sql): Promise<RecurrentTaskRow[]> {
  return sql.unsafe<RecurrentTaskRow[]>(`${SELECT_TASKS} ORDER BY r.id`);
}

/** A recurrent task by id (all digits) or name. */
export async function getRecurrentTask(sql: Sql, idOrName: string): Promise<RecurrentTaskRow | null> {
  const byId = /^\d{1,18}$/.test(idOrName);
  const [row] = await sql.unsafe<RecurrentTaskRow[]>(`${SELECT_TASKS} WHERE ${byId ? "r.id = $1::bigint" : "r.name = $1"}`, [idOrName]);
  return row ?? null;
}

/**
 * Pauses or resumes a recurrent task. A paused task's triggers wait at
 * 'infinity'; resuming sets each to its next tick after now, so ticks missed
 * while paused are skipped.
 */
export async function setPaused(sql: Sql, id: string, paused: boolean, now: Date): Promise<void> {
  await sql.begin(async (tx) => {
    const updated = await tx`UPDATE recurrent_tasks SET paused = ${paused} WHERE id = ${id} RETURNING id`;
    if (updated.length === 0) return;
    const rows = await tx<{ id: string; expression: string; time_zone: string }[]>`
      SELECT id, expression, time_zone FROM cron_triggers WHERE recurrent_task_id = ${id} FOR UPDATE`;
    const next = rows.map((r) => ({
      id: r.id,
      next_tick_at: paused ? NEVER : tickOrNever(nextTick(cachedCron(r.expression, r.time_zone), now)),
    }));
    await tx`
      UPDATE cron_triggers c SET next_tick_at = n.next_tick_at
      FROM json_to_recordset(${JSON.stringify(next)}::text::json) AS n(id bigint, next_tick_at timestamptz)
      WHERE c.id = n.id`;
    if (!paused) {
      const earliest = Math.min(...next.map((n) => (n.next_tick_at === NEVER ? Infinity : Date.parse(n.next_tick_at))));
      if (Number.isFinite(earliest)) await tx`SELECT pg_notify(${SCHEDULE_CHANNEL}, ${String(earliest)})`;
    }
  });
}

/** Deletes a recurrent task and its triggers; its jobs stay. Returns false when there is none. */
export async function deleteRecurrentTask(sql: Sql, id: string): Promise<boolean> {
  const rows = await sql`DELETE FROM recurrent_tasks WHERE id = ${id} RETURNING id`;
  return rows.length > 0;
}

interface DueTrigger {
  id: string;
  recurrent_task_id: string;
  name: string;
  expression: string;
  time_zone: string;
  next_tick_at: Date;
}

/**
 * Submits the jobs of up to `limit` cron triggers due at `now`, in one
 * transaction: the due triggers are locked (SKIP LOCKED, so each is handled by
 * one server), one job with the task's prototype as root task is inserted per
 * trigger and tick (a unique index on the recurrent task and tick makes a second
 * job for a tick impossible, from any server), and each trigger moves on to its
 * next tick after now. Returns how many triggers were due.
 */
export async function fireDueTriggers(sql: Sql, now: Date, limit: number): Promise<number> {
  return sql.begin(async (tx) => {
    const due = await tx<DueTrigger[]>`
      SELECT c.id, c.recurrent_task_id, r.name, c.expression, c.time_zone, c.next_tick_at
      FROM cron_triggers c JOIN recurrent_tasks r ON r.id = c.recurrent_task_id
      WHERE c.next_tick_at <= ${now} AND NOT r.paused
      ORDER BY c.next_tick_at
      LIMIT ${limit}
      FOR UPDATE OF c SKIP LOCKED`;
    if (due.length === 0) return 0;
    const fired = due.map((d) => {
      const schedule = cachedCron(d.expression, d.time_zone);
      const tick = latestTick(schedule, d.next_tick_at, now);
      return {
        trigger_id: d.id,
        recurrent_task_id: d.recurrent_task_id,
        job_name: `${d.name} ${tick.toISOString()}`,
        tick_at: tick.toISOString(),
        next_tick_at: tickOrNever(nextTick(schedule, now)),
      };
    });
    // One job per trigger and tick (the unique index makes a second one for a
    // tick nothing, from any server); their tasks go through the one insert.
    const started = await tx<StartedJobRow[]>`
      WITH f AS (
        SELECT * FROM json_to_recordset(${JSON.stringify(fired)}::text::json)
          AS f(trigger_id bigint, recurrent_task_id bigint, job_name text, tick_at timestamptz, next_tick_at timestamptz)
      ), moved AS (
        UPDATE cron_triggers c SET next_tick_at = f.next_tick_at FROM f WHERE c.id = f.trigger_id RETURNING 1
      ), new_jobs AS (
        INSERT INTO jobs (name, cluster_id, open_tasks, recurrent_task_id, tick_at)
        SELECT DISTINCT ON (f.recurrent_task_id, f.tick_at) f.job_name, r.cluster_id, 1, f.recurrent_task_id, f.tick_at
        FROM f JOIN recurrent_tasks r ON r.id = f.recurrent_task_id
        ON CONFLICT (recurrent_task_id, tick_at) WHERE tick_at IS NOT NULL DO NOTHING
        RETURNING id, cluster_id, recurrent_task_id
      )
      SELECT j.id::text AS job_id, j.cluster_id, r.task_name, r.major, r.minor, r.display, r.input, r.max_retries,
             (SELECT count(*) FROM moved) AS moved
      FROM new_jobs j JOIN recurrent_tasks r ON r.id = j.recurrent_task_id`;
    await insertStartedTasks(tx, started);
    return due.length;
  });
}

/** When the next cron trigger is due, or null when none will be. */
export async function nextCronTick(sql: Sql): Promise<Date | null> {
  const [row] = await sql<{ at: Date | null }[]>`
    SELECT next_tick_at AS at FROM cron_triggers WHERE next_tick_at < 'infinity' ORDER BY next_tick_at LIMIT 1`;
  return row?.at ?? null;
}
