import type { Sql } from "postgres";
import { TASKS_CHANNEL } from "../store/channels.js";
import { queueReady } from "../store/insert-tasks.js";
import { compileGlob } from "./glob.js";
import type { LocationRow } from "../store/storage-locations.js";
import { activeTriggers } from "../store/storage-triggers.js";
import { refOf } from "./locations.js";

/** An object created or modified, as a source saw it. */
export interface ObjectChangeIn {
  key: string;
  /** Changes whenever the object does: etag, generation, or mtime and size. */
  version: string;
  /** When it changed, if the source knows. */
  modifiedAt?: Date;
  /** Set when the source knows it is a change to an existing object. */
  modified?: boolean;
}

const globs = new Map<string, (key: string) => boolean>();

function matcher(glob: string): (key: string) => boolean {
  let m = globs.get(glob);
  if (!m) {
    m = compileGlob(glob);
    if (globs.size > 10_000) globs.clear();
    globs.set(glob, m);
  }
  return m;
}

/**
 * Submits one job per trigger and object version for the changes of one
 * location whose keys match a trigger's glob, in one statement: the
 * `storage_events` primary key (trigger, key, version) turns every repeat of
 * an event, from any source or server, into nothing. Objects changed before a
 * trigger was created do not start jobs for it. The event is MODIFIED when the
 * source says so or an earlier version of the key started a job, CREATED
 * otherwise. Returns how many jobs were submitted.
 */
export async function recordObjectEvents(sql: Sql, location: LocationRow, changes: readonly ObjectChangeIn[]): Promise<number> {
  if (changes.length === 0) return 0;
  const triggers = await activeTriggers(sql, location.id);
  const rows: { trigger_id: string; key: string; version: string; modified: boolean }[] = [];
  const seen = new Set<string>();
  for (const t of triggers) {
    const matches = matcher(t.glob);
    for (const c of changes) {
      if (c.modifiedAt && c.modifiedAt.getTime() < t.created_at.getTime() - 1_000) continue;
      const id = `${t.id}\0${c.key}\0${c.version}`;
      if (seen.has(id) || !matches(c.key)) continue;
      seen.add(id);
      rows.push({ trigger_id: t.id, key: c.key, version: c.version, modified: c.modified === true });
    }
  }
  if (rows.length === 0) return 0;
  const [result] = await sql<{ jobs: number }[]>`
    WITH c AS (
      SELECT * FROM json_to_recordset(${JSON.stringify(rows)}::text::json) AS c(trigger_id bigint, key text, version text, modified bool)
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
    ), new_tasks AS (
      INSERT INTO tasks (job_id, cluster_id, name, major, minor, display, input, max_retries, trigger)
      SELECT job_id, cluster_id, task_name, major, minor, display, input, max_retries,
             jsonb_build_object('type', type, 'key', key, 'version', version, 'location', ${JSON.stringify(refOf(location))}::text::jsonb)
      FROM typed
      RETURNING id, cluster_id, name, major, minor
    ), ready AS (
      ${queueReady(sql, "new_tasks")}
    )
    SELECT (SELECT count(*) FROM new_jobs)::int AS jobs,
           (SELECT count(pg_notify(${TASKS_CHANNEL}, c::text)) FROM (SELECT DISTINCT cluster_id AS c FROM new_tasks) x) AS notified`;
  return result.jobs;
}
