import type { Sql } from "postgres";
import type { LocationRef } from "../../runner/wire/storage-event.js";
import { type StartedJobRow, insertStartedTasks } from "./recurrent-jobs.js";

/** An object version that matched a storage trigger. */
export interface MatchedEvent {
  trigger_id: string;
  key: string;
  version: string;
  /** The source says it is a change to an existing object. */
  modified: boolean;
}

/**
 * Starts one job per trigger and object version, in one transaction: the
 * `storage_events` primary key (trigger, key, version) turns every repeat of
 * an event, from any source or server, into nothing. The event is MODIFIED
 * when the source says so or an earlier version of the key started a job,
 * CREATED otherwise. The jobs' tasks go through the one task insert. Returns
 * how many jobs were started.
 */
export async function startJobsForEvents(sql: Sql, events: readonly MatchedEvent[], location: LocationRef): Promise<number> {
  return sql.begin(async (tx) => {
    const started = await tx<(StartedJobRow & { type: "created" | "modified"; key: string; version: string })[]>`
      WITH c AS (
        SELECT * FROM json_to_recordset(${JSON.stringify(events)}::text::json) AS c(trigger_id bigint, key text, version text, modified bool)
      ), fresh AS (
        INSERT INTO storage_events (trigger_id, key, version, job_id)
        SELECT c.trigger_id, c.key, c.version, nextval(pg_get_serial_sequence('jobs', 'id')) FROM c
        ON CONFLICT DO NOTHING
        RETURNING trigger_id, key, version, job_id
      ), typed AS (
        SELECT f.*, r.id AS recurrent_task_id, r.name, r.cluster_id, r.task_name, r.major, r.minor, r.display, r.input, r.max_retries,
               CASE WHEN c.modified OR EXISTS (
                 SELECT 1 FROM storage_events e WHERE e.trigger_id = f.trigger_id AND e.key = f.key AND e.version <> f.version
               ) THEN 'modified' ELSE 'created' END AS type
        FROM fresh f
        JOIN c ON c.trigger_id = f.trigger_id AND c.key = f.key AND c.version = f.version
        JOIN storage_triggers st ON st.id = f.trigger_id
        JOIN recurrent_tasks r ON r.id = st.recurrent_task_id
      ), new_jobs AS (
        INSERT INTO jobs (id, name, cluster_id, open_tasks, recurrent_task_id)
        OVERRIDING SYSTEM VALUE
        SELECT job_id, left(name || ' ' || key, 200), cluster_id, 1, recurrent_task_id FROM typed
        RETURNING id
      )
      SELECT t.job_id::text, t.cluster_id, t.task_name, t.major, t.minor, t.display, t.input, t.max_retries, t.type, t.key, t.version
      FROM typed t JOIN new_jobs j ON j.id = t.job_id`;
    await insertStartedTasks(tx, started, (j) => {
      const e = j as (typeof started)[number];
      return { type: e.type, key: e.key, version: e.version, location };
    });
    return started.length;
  });
}
