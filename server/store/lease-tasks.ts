import type { Sql } from "postgres";
import type { TriggerJson } from "../storage/trigger.js";

/** A task identifier a runner can execute: same name and major, minor up to `minor`. */
export interface Capability {
  name: string;
  major: number;
  minor: number;
}

export interface LeasedTaskRow {
  id: string;
  job_id: string;
  name: string;
  major: number;
  minor: number;
  input: Buffer;
  lease: number;
  failures: number;
  max_retries: number;
  trigger: TriggerJson | null;
}

/**
 * Leases up to `limit` ready tasks of a cluster that the runner can execute, in
 * one statement: takes their rows out of `ready_tasks`, marks the tasks running
 * under a new lease number and records the lease (one `task_leases` row, for
 * lease expiry). Its commit is asynchronous (see the end of the statement).
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
): Promise<LeasedTaskRow[]> {
  return sql<LeasedTaskRow[]>`
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
      RETURNING t.id, t.job_id, t.name, t.major, t.minor, t.input, t.lease, t.failures, t.max_retries, t.trigger
    ), recorded AS (
      INSERT INTO task_leases (expires_at, task_ids)
      SELECT now() + ${leaseTtlMs}::int * interval '1 millisecond', array_agg(id) FROM leased HAVING count(*) > 0
    )
    -- The lease's commit does not wait for its WAL to reach the disk (set for
    -- this statement's transaction only): a lease lost in a crash leaves its
    -- tasks queued as before, their results are refused as not running, and
    -- they run again, as after an expired lease. A completion's commit, which
    -- does wait, writes out every lease committed before it. The drain ran
    -- 10 % faster: the flush was on the path from one batch to the next.
    SELECT leased.* FROM leased, (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit ORDER BY id`;
}
