import type { Sql, TransactionSql } from "postgres";

/**
 * The NOTIFY channels servers listen on, their payloads, and the statements
 * that send on them: every NOTIFY of Sluice is built here. Statements send in
 * the transaction that makes the change, so a wake-up is seen only once the
 * change is committed.
 */

/** Ready work; the payload is a cluster id. */
export const TASKS_CHANNEL = "sluice_tasks";
/** Cancelled jobs; the payload is a job id. */
export const CANCEL_CHANNEL = "sluice_cancel";
/** A schedule changed; the payload is the due time in epoch milliseconds. */
export const SCHEDULE_CHANNEL = "sluice_schedule";
/** Storage locations were registered or deleted. */
export const LOCATIONS_CHANNEL = "sluice_locations";
/** A token was revoked; the payload is its id. */
export const TOKENS_CHANNEL = "sluice_tokens";
/** A followed job has new log lines, progress or results; the payload is its id. */
export const JOB_EVENTS_CHANNEL = "sluice_job_events";
/** Someone started or stopped following a job; the payload is its id. */
export const FOLLOW_CHANNEL = "sluice_follow";


/**
 * The payload of a ready-work NOTIFY: the cluster id, then the id of the
 * server that sent it when that server woke its own runners already (it skips
 * its own notifications). Every sender builds it here.
 */
export function readyPayload(clusterId: number | string, serverId?: string): string {
  return serverId === undefined ? String(clusterId) : `${clusterId} ${serverId}`;
}

/** A ready-work payload read back: the cluster, and the server that sent it if one did. */
export function parseReadyPayload(payload: string): { clusterId: number; from: string | undefined } {
  const [cluster, from] = payload.split(" ");
  return { clusterId: Number(cluster), from };
}

/**
 * Wakes the runners of these clusters on every server, once the surrounding
 * transaction commits (a statement of its own in it).
 */
export function notifyReady(sql: Sql | TransactionSql, clusterIds: readonly (number | string)[], serverId?: string) {
  return sql`SELECT pg_notify(${TASKS_CHANNEL}, p) FROM unnest(${clusterIds.map((c) => readyPayload(c, serverId))}::text[]) AS p`;
}

/**
 * The same as a column of a larger statement: one NOTIFY per distinct
 * `cluster_id` of the CTE `source` (sent when the statement's transaction commits).
 */
export function notifyReadyOf(sql: Sql | TransactionSql, source: string) {
  return sql`(SELECT count(pg_notify(${TASKS_CHANNEL}, x.c::text)) FROM (SELECT DISTINCT cluster_id AS c FROM ${sql(source)}) x)`;
}

/** Tells every server these jobs were cancelled or failed (payload: a job id). */
export function notifyCancelled(sql: Sql | TransactionSql, jobIds: readonly string[]) {
  return sql`SELECT pg_notify(${CANCEL_CHANNEL}, j) FROM unnest(${jobIds}::text[]) AS j`;
}

/**
 * Tells the followers of these jobs that something changed, as a column of a
 * larger statement (a scalar subquery; nothing is sent for an empty list).
 */
export function notifyJobEventsOf(sql: Sql | TransactionSql, jobIds: readonly string[]) {
  return sql`(SELECT count(pg_notify(${JOB_EVENTS_CHANNEL}, j)) FROM unnest(${jobIds as string[]}::text[]) AS j)`;
}

/** The same as a statement of its own. */
export function notifyJobEvents(sql: Sql | TransactionSql, jobIds: readonly string[]) {
  return sql`SELECT pg_notify(${JOB_EVENTS_CHANNEL}, j) FROM unnest(${jobIds as string[]}::text[]) AS j`;
}

/** Tells every server that the followers of this job changed. */
export function notifyFollow(sql: Sql | TransactionSql, jobId: string) {
  return sql`SELECT pg_notify(${FOLLOW_CHANNEL}, ${jobId})`;
}
