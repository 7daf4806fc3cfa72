import type { Sql } from "postgres";

export interface ActiveTrigger {
  id: string;
  glob: string;
  created_at: Date;
}

/** The triggers on a location whose storage event task is not paused. */
export async function activeTriggers(sql: Sql, locationId: string): Promise<ActiveTrigger[]> {
  return sql<ActiveTrigger[]>`
    SELECT t.id, t.glob, t.created_at FROM storage_triggers t JOIN recurrent_tasks r ON r.id = t.recurrent_task_id
    WHERE t.location_id = ${locationId} AND NOT r.paused`;
}
