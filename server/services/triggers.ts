import type { Sql } from "postgres";
import { refOf } from "../sources/locations.js";
import { getLocations } from "../store/storage-locations.js";
import type { TaskRow } from "../task-plan.js";
import { invalid, notFound } from "../validation.js";

/**
 * Gives each planned task with a trigger its storage location as the server
 * registered it, by id: a submitter names the location, it never describes
 * one, so a runner reads and writes only where a location was registered.
 * Throws NotFound for an id that names no location.
 */
export async function resolveTriggers(sql: Sql, rows: readonly TaskRow[], where: string): Promise<void> {
  const triggered = rows.filter((r) => r.trigger !== null);
  if (triggered.length === 0) return;
  const ids = [...new Set(triggered.map((r) => r.trigger!.location.id))];
  for (const id of ids) {
    if (!/^[1-9][0-9]{0,18}$/.test(id)) throw invalid(`${where}: trigger.location.id must be the id of a registered storage location, got ${JSON.stringify(id)}`);
  }
  const registered = await getLocations(sql, ids);
  for (const r of triggered) {
    const location = registered.get(r.trigger!.location.id);
    if (!location) {
      throw notFound(`${where}: trigger.location.id ${r.trigger!.location.id} is not a registered storage location; register it first (sluice storage register)`);
    }
    r.trigger = { ...r.trigger!, location: refOf(location) };
  }
}
