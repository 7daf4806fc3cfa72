import type { Sql } from "postgres";
import type { TriggerJson } from "../../runner/wire/storage-event.js";

/** A task identifier a runner can execute: same name and major, minor up to `minor`. */
export interface Capability {
  name: string;
  major: number;
  minor: number;
  /** The runner runs it as a process: its assignments carry a job hook. */
  jobHook?: boolean;
}

/** Leased tasks, one list per field: task i is element i of each. */
export interface LeasedTasks {
  ids: string[];
  jobIds: string[];
  leases: number[];
  failures: number[];
  maxRetries: number[];
  inputs: Uint8Array[];
  /** The distinct identifiers of the tasks; `identifierIndexes[i]` is task i's. */
  identifiers: Capability[];
  identifierIndexes: number[];
  /** The events of storage event tasks, by task index (only tasks that have one). */
  triggers: Map<number, TriggerJson>;
  /** The highest task id leased, or "0" when none was. */
  lastId: string;
  /** Seconds from creation to this lease of the tasks leased for the first time (for the metrics). */
  firstWaits: number[];
  /** The trace contexts of traced tasks, by task index (only tasks that have one). */
  traceparents: Map<number, string>;
  /** The time limits in milliseconds, by task index (only tasks that have one). */
  timeouts: Map<number, number>;
}

/** One row of the lease statement: the leased tasks of one identifier, each field aggregated. */
interface LeasedGroupRow {
  name: string;
  major: number;
  minor: number;
  /** Comma-separated, like every list but the inputs. */
  ids: string;
  job_ids: string;
  leases: string;
  failures: string;
  max_retries: string;
  /** The inputs one after the other; `input_lengths` says where each ends. */
  inputs: Buffer;
  input_lengths: string;
  /** Null when no task of the group has one. */
  triggers: (TriggerJson | null)[] | null;
  last_id: string;
  /**
   * The creation times of the tasks leased for the first time, in
   * PostgreSQL's binary form (8 bytes each: microseconds since 2000); null
   * when none is.
   */
  first_created: Buffer | null;
  /** This lease's time, in the same form. */
  leased_at: Buffer;
  /** `id traceparent` of the traced tasks, comma-separated; null when none is. */
  traceparents: string | null;
  /** `id milliseconds` of the tasks with a time limit, comma-separated; null when none has one. */
  timeouts: string | null;
}

const numbers = (list: string) => list.split(",").map(Number);

/** `id value` items of a comma-separated list, as [id, value]. */
function pairs(list: string | null): [string, string][] {
  if (list === null) return [];
  return list.split(",").map((item) => {
    const space = item.indexOf(" ");
    return [item.slice(0, space), item.slice(space + 1)];
  });
}

/**
 * Leases up to `limit` ready tasks of a cluster that the runner can execute, in
 * one statement: takes their rows out of `ready_tasks`, marks the tasks running
 * under a new lease number and records the lease (one `task_leases` row, for
 * lease expiry). Its commit is asynchronous (see the end of the statement).
 * Returns the tasks as columns, as they go to a runner.
 *
 * The pick walks the primary key of `ready_tasks` (cluster, id) in id order,
 * joining the runner's capabilities, and SKIP LOCKED lets concurrent leases
 * from other streams and servers pass each other instead of queueing on the
 * same rows.
 *
 * Jobs are not written: a job shows as started from its tasks' start times
 * (see read-jobs.ts), and the completion of its first task, which writes the
 * job row anyway, stores the state. Marking every job of a lease started cost
 * one more job row version per one-task job, and the drain ran about 10 %
 * faster without it.
 */
export async function leaseTasks(
  sql: Sql,
  clusterId: number,
  capabilities: readonly Capability[],
  limit: number,
  runnerId: string,
  leaseTtlMs: number,
  /** Only tasks with an id above this one (see RunnerStream's `floor`); "0" for all. */
  after = "0",
): Promise<LeasedTasks> {
  const groups = await sql<LeasedGroupRow[]>`
    WITH picked AS (
      SELECT r.ctid
      FROM ready_tasks r
      JOIN unnest(${capabilities.map((c) => c.name)}::text[], ${capabilities.map((c) => c.major)}::int[],
                  ${capabilities.map((c) => c.minor)}::int[]) AS k(name, major, minor)
        ON r.name = k.name AND r.major = k.major AND r.minor <= k.minor
      WHERE r.cluster_id = ${clusterId} AND r.id > ${after}::bigint
      ORDER BY r.id
      LIMIT ${limit}
      FOR UPDATE OF r SKIP LOCKED
    ), taken AS (
      -- By the locked rows' physical addresses (a locked row cannot move):
      -- no descent of the primary key per row, about a tenth of the lease.
      DELETE FROM ready_tasks r
      WHERE r.ctid = ANY((SELECT array_agg(ctid) FROM picked)::tid[])
      RETURNING r.id
    ), leased AS (
      UPDATE tasks t
      SET state = 'running', lease = t.lease + 1, runner_id = ${runnerId}::uuid,
          lease_expires_at = now() + ${leaseTtlMs}::int * interval '1 millisecond',
          started_at = coalesce(t.started_at, now())
      -- By id = ANY, always a primary-key lookup: joined to the taken rows,
      -- the planner hashed a sequential scan of the whole table when it was
      -- small enough (32 of 44 ms of a lease of 500 from a queue of 50,000).
      WHERE t.id = ANY((SELECT array_agg(id) FROM taken)::bigint[]) AND t.state = 'queued'
      RETURNING t.id, t.job_id, t.name, t.major, t.minor, t.input, t.lease, t.failures, t.max_retries, t.trigger, t.created_at, t.traceparent, t.timeout_ms
    ), recorded AS (
      INSERT INTO task_leases (expires_at, task_ids, runner_id)
      SELECT now() + ${leaseTtlMs}::int * interval '1 millisecond', array_agg(id), ${runnerId}::uuid FROM leased HAVING count(*) > 0
    )
    -- The lease's commit does not wait for its WAL to reach the disk (set for
    -- this statement's transaction only): a lease lost in a crash leaves its
    -- tasks queued as before, their results are refused as not running, and
    -- they run again, as after an expired lease. A completion's commit, which
    -- does wait, writes out every lease committed before it. The drain ran
    -- 10 % faster: the flush was on the path from one batch to the next.
    --
    -- One row per task identifier, each field aggregated into one value: the
    -- client parses a few values instead of ten per task (a tenth of the
    -- server's time went to parsing the rows of leases). All aggregates of a
    -- group read its rows in the same order, so the lists line up.
    SELECT g.name, g.major, g.minor,
           string_agg(g.id::text, ',') AS ids, string_agg(g.job_id::text, ',') AS job_ids,
           string_agg(g.lease::text, ',') AS leases, string_agg(g.failures::text, ',') AS failures,
           string_agg(g.max_retries::text, ',') AS max_retries,
           string_agg(g.input, ''::bytea) AS inputs, string_agg(length(g.input)::text, ',') AS input_lengths,
           CASE WHEN bool_or(g.trigger IS NOT NULL) THEN json_agg(g.trigger) END AS triggers,
           max(g.id)::text AS last_id,
           -- Times in their binary form (a copy of 8 bytes), not as text or
           -- numeric epochs, which cost a conversion per task; and only the
           -- tasks that have a trace context or a time limit name theirs.
           string_agg(CASE WHEN g.lease = 1 THEN timestamptz_send(g.created_at) END, ''::bytea) AS first_created,
           timestamptz_send(now()) AS leased_at,
           string_agg(CASE WHEN g.traceparent IS NOT NULL THEN g.id::text || ' ' || g.traceparent END, ',') AS traceparents,
           string_agg(CASE WHEN g.timeout_ms IS NOT NULL THEN g.id::text || ' ' || g.timeout_ms END, ',') AS timeouts
    FROM (SELECT * FROM leased ORDER BY id) AS g, (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
    GROUP BY g.name, g.major, g.minor`;
  return columnsOf(groups);
}

/** No tasks, as lists to append to. */
export function emptyLeasedTasks(): LeasedTasks {
  return {
    ids: [],
    jobIds: [],
    leases: [],
    failures: [],
    maxRetries: [],
    inputs: [],
    identifiers: [],
    identifierIndexes: [],
    triggers: new Map(),
    lastId: "0",
    firstWaits: [],
    traceparents: new Map(),
    timeouts: new Map(),
  };
}

/** The lease statement's rows (one per identifier) split into one list per field. */
function columnsOf(groups: readonly LeasedGroupRow[]): LeasedTasks {
  const out = emptyLeasedTasks();
  for (const g of groups) {
    const first = out.ids.length;
    const k = out.identifiers.push({ name: g.name, major: g.major, minor: g.minor }) - 1;
    const ids = g.ids.split(",");
    out.ids.push(...ids);
    out.jobIds.push(...g.job_ids.split(","));
    out.leases.push(...numbers(g.leases));
    out.failures.push(...numbers(g.failures));
    out.maxRetries.push(...numbers(g.max_retries));
    for (let i = 0; i < ids.length; i++) out.identifierIndexes.push(k);
    let end = 0;
    for (const length of g.input_lengths.split(",")) {
      const start = end;
      end += Number(length);
      out.inputs.push(g.inputs.subarray(start, end));
    }
    g.triggers?.forEach((t, i) => t && out.triggers.set(first + i, t));
    if (g.first_created) {
      // Microseconds since 2000: below 2^53 for millennia, exact as numbers.
      const leasedAt = Number(g.leased_at.readBigInt64BE(0));
      for (let o = 0; o < g.first_created.length; o += 8) out.firstWaits.push((leasedAt - Number(g.first_created.readBigInt64BE(o))) / 1e6);
    }
    if (g.traceparents !== null || g.timeouts !== null) {
      const index = new Map(ids.map((id, i) => [id, first + i]));
      for (const [id, value] of pairs(g.traceparents)) out.traceparents.set(index.get(id)!, value);
      for (const [id, value] of pairs(g.timeouts)) out.timeouts.set(index.get(id)!, Number(value));
    }
    if (g.last_id.length > out.lastId.length || (g.last_id.length === out.lastId.length && g.last_id > out.lastId)) out.lastId = g.last_id;
  }
  return out;
}
