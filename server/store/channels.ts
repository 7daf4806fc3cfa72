/**
 * The NOTIFY channels servers listen on. Statements send on them in the
 * transaction that makes the change, so a wake-up is seen only once the
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
