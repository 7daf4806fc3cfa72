import { randomBytes } from "node:crypto";
import type { Sql } from "postgres";
import type { StorageTypeName } from "../../runner/wire/storage-event.js";

export interface LocationRow {
  id: string;
  type: StorageTypeName;
  location: string;
  endpoint: string;
  region: string;
  sqs_queue_url: string;
  push_token: string;
  external_watcher: boolean;
  reconcile_interval_s: number;
  reconciled_until: Date;
  created_at: Date;
}

export interface NewLocation {
  type: StorageTypeName;
  location: string;
  endpoint: string;
  region: string;
  sqsQueueUrl: string;
  externalWatcher: boolean;
  reconcileIntervalS: number;
}

/** Stores a location with a new push token; null when the same one is registered already. */
export async function insertLocation(sql: Sql, l: NewLocation): Promise<LocationRow | null> {
  const [row] = await sql<LocationRow[]>`
    INSERT INTO storage_locations (type, location, endpoint, region, sqs_queue_url, push_token, external_watcher, reconcile_interval_s, next_reconcile_at)
    VALUES (${l.type}, ${l.location}, ${l.endpoint}, ${l.region}, ${l.sqsQueueUrl}, ${randomBytes(24).toString("base64url")},
            ${l.externalWatcher}, ${l.reconcileIntervalS},
            CASE WHEN ${l.reconcileIntervalS}::int > 0 THEN now() + ${l.reconcileIntervalS}::int * interval '1 second' END)
    ON CONFLICT (type, location, endpoint) DO NOTHING
    RETURNING *`;
  return row ?? null;
}

export async function listLocations(sql: Sql): Promise<LocationRow[]> {
  return sql<LocationRow[]>`SELECT * FROM storage_locations ORDER BY id`;
}

/** Gives a location a new push token; null when there is no such location. */
export async function rotatePushToken(sql: Sql, id: string): Promise<LocationRow | null> {
  const [row] = await sql<LocationRow[]>`
    UPDATE storage_locations SET push_token = ${randomBytes(24).toString("base64url")} WHERE id = ${id} RETURNING *`;
  return row ?? null;
}

export async function getLocation(sql: Sql, id: string): Promise<LocationRow | null> {
  const [row] = await sql<LocationRow[]>`SELECT * FROM storage_locations WHERE id = ${id}`;
  return row ?? null;
}

export async function getLocations(sql: Sql, ids: readonly string[]): Promise<Map<string, LocationRow>> {
  const rows = await sql<LocationRow[]>`SELECT * FROM storage_locations WHERE id = ANY(${ids}::bigint[])`;
  return new Map(rows.map((r) => [r.id, r]));
}

export type DeleteLocationOutcome = { kind: "deleted" } | { kind: "missing" } | { kind: "in-use" };

/** Deletes a location; "in-use" while a storage event task triggers on it. */
export async function deleteLocation(sql: Sql, id: string): Promise<DeleteLocationOutcome> {
  return sql.begin(async (tx) => {
    const [row] = await tx`SELECT id FROM storage_locations WHERE id = ${id} FOR UPDATE`;
    if (!row) return { kind: "missing" } as const;
    const [used] = await tx`SELECT 1 FROM storage_triggers WHERE location_id = ${id} LIMIT 1`;
    if (used) return { kind: "in-use" } as const;
    await tx`DELETE FROM storage_locations WHERE id = ${id}`;
    return { kind: "deleted" } as const;
  });
}

/**
 * Takes the location whose listing is due, pushing its next listing one
 * interval ahead; SKIP LOCKED leaves one taken by another server to it.
 */
export async function claimDueListing(sql: Sql): Promise<LocationRow | null> {
  const [row] = await sql<LocationRow[]>`
    UPDATE storage_locations l SET next_reconcile_at = now() + l.reconcile_interval_s * interval '1 second'
    WHERE l.id = (
      SELECT id FROM storage_locations
      WHERE reconcile_interval_s > 0 AND next_reconcile_at <= now()
      ORDER BY next_reconcile_at LIMIT 1
      FOR UPDATE SKIP LOCKED
    )
    RETURNING l.*`;
  return row ?? null;
}

/** Records that a location's listing covered every change before `until`. */
export async function markListed(sql: Sql, id: string, until: Date): Promise<void> {
  await sql`UPDATE storage_locations SET reconciled_until = ${until} WHERE id = ${id}`;
}

/** When the next listing of a location is due, or null when no location is listed. */
export async function nextListingDue(sql: Sql): Promise<Date | null> {
  const [next] = await sql<{ at: Date | null }[]>`
    SELECT min(next_reconcile_at) AS at FROM storage_locations WHERE reconcile_interval_s > 0`;
  return next.at;
}
