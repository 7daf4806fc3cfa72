import type { Sql } from "postgres";
import { startJobsForEvents } from "../store/storage-events.js";
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
  return startJobsForEvents(sql, rows, refOf(location));
}
