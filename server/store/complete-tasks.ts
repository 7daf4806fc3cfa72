import type { Sql, TransactionSql } from "postgres";
import { type TaskPlan, appendPlan, emptyPlan } from "../task-plan.js";
import { retryOnDeadlock } from "./deadlock.js";
import { arrayLiteral, quotedArrayLiteral } from "./sql-literals.js";
import { cancelTasksOf } from "./cancel-job.js";
import { notifyCancelled, notifyReady, notifyReadyOf } from "./channels.js";
import { queueReady, taskInsertCtes } from "./insert-tasks.js";
import { countFinished } from "./queue-stats.js";

/** A runner's report on one task it held. */
export interface TaskResultIn {
  taskId: string;
  lease: number;
  jobId: string;
  /** Present when the task succeeded: the subtasks it submitted, already validated. */
  subtasks?: TaskPlan;
  /** Present when the task threw. */
  failure?: { message: string; stack: string };
  /** True when the runner gives the task back unstarted. */
  released?: boolean;
}

/**
 * Why a result was not recorded: the task does not exist ("missing"), belongs
 * to another job ("wrong-job"), is leased to another runner ("not-holder"), or
 * is no longer this lease's to report ("not-recorded": its job ended, the
 * lease was lost, or it is not running).
 */
export interface Refusal {
  taskId: string;
  kind: "missing" | "wrong-job" | "not-holder" | "not-recorded";
  message: string;
}

export interface RecordedResults {
  /** The results not recorded, in request order; every other one was. */
  refused: Refusal[];
  /** Jobs that failed because a task ran out of retries. */
  failedJobs: string[];
  /** Clusters that got ready work from these results (subtasks, dependents, retries). */
  readyClusters: number[];
  /** When the earliest retry these results delayed (retry backoff) comes due; null when none. */
  nextRetryAt?: Date | null;
}

/**
 * Records a batch of task results of one runner. A result counts only from the
 * runner that holds the task under the lease it names. Every result, whatever
 * its kind, goes through one statement (`recordStatement`); a batch with
 * subtasks or failures adds, in the same transaction, the insert of the
 * subtasks of the tasks whose completion counted and the cancellation of the
 * rest of the jobs that failed. The common batch, successes without subtasks,
 * is that one statement alone: atomic without BEGIN and COMMIT.
 */
export async function recordResults(sql: Sql | TransactionSql, runnerId: string, results: readonly TaskResultIn[]): Promise<RecordedResults> {
  const alone = results.every((r) => r.failure === undefined && (r.subtasks?.rows.length ?? 0) === 0);
  if (alone) return retryOnDeadlock(() => record(sql, runnerId, results));
  // In a caller's transaction (tests measuring what a statement reads): a savepoint of it.
  if ("savepoint" in sql) return sql.savepoint((tx) => record(tx, runnerId, results));
  return retryOnDeadlock(() => sql.begin((tx) => record(tx, runnerId, results)));
}

interface RecordRow {
  /** The ids recorded, when some were not (else null: all were). */
  done: string[] | null;
  /** `id:cluster` of the recorded successes that submitted subtasks. */
  parents: string[] | null;
  failed_jobs: string[] | null;
  ready: number[] | null;
  next_retry: Date | null;
}

async function record(sql: Sql | TransactionSql, runnerId: string, results: readonly TaskResultIn[]): Promise<RecordedResults> {
  const [row] = await sql<RecordRow[]>`${recordStatement(sql, runnerId, results)}`;
  const readyClusters = new Set(row.ready ?? []);
  const failedJobs = row.failed_jobs ?? [];
  /** Clusters of subtasks inserted ready (statement 1 woke those of the tasks it queued). */
  const subtaskClusters = new Set<number>();
  // Subtasks and failures come only in a transaction (recordResults).
  const tx = sql as TransactionSql;
  if (row.parents !== null) {
    const clusterOf = new Map(row.parents.map((p) => p.split(":") as [string, string]));
    const plan = emptyPlan();
    for (const r of results) {
      const cluster = r.subtasks && r.subtasks.rows.length > 0 ? clusterOf.get(r.taskId) : undefined;
      if (cluster === undefined) continue;
      for (const sub of r.subtasks!.rows) {
        sub.clusterId ??= Number(cluster);
        if (sub.depsLeft === 0) subtaskClusters.add(sub.clusterId);
      }
      appendPlan(plan, r.subtasks!);
    }
    await tx`WITH ${taskInsertCtes(tx, plan, tx`NULL::bigint`)} SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM deps)`;
  }
  if (failedJobs.length > 0) await cancelTasksOf(tx, failedJobs);
  if (subtaskClusters.size > 0 || failedJobs.length > 0) {
    await tx`${notifyReady(tx, [...subtaskClusters])} UNION ALL ${notifyCancelled(tx, failedJobs)}`;
  }
  for (const c of subtaskClusters) readyClusters.add(c);
  let refused: Refusal[] = [];
  if (row.done !== null) {
    const accepted = new Set(row.done);
    refused = await explainRefusals(sql, runnerId, results.filter((r) => !accepted.has(r.taskId)));
  }
  return { refused, failedJobs, readyClusters: [...readyClusters], nextRetryAt: row.next_retry };
}

/**
 * The statement that records results, one row of outcomes:
 *
 * 1. lock the jobs involved, in id order (every writer that touches a job's
 *    tasks locks the job first, so completions, cancellations and retries of a
 *    job never deadlock): an InitPlan of the task update, so before any task row;
 * 2. update each reported task still running under its lease and held by this
 *    runner (the update rechecks state, lease and runner on the row it locks):
 *    a success becomes computed; a failure is queued again while it has
 *    retries left, else failed; a task given back is queued again;
 * 3. count down the dependencies of the dependents of the computed tasks;
 * 4. put every task that became ready (retried, given back, no dependency
 *    left) into ready_tasks and wake its cluster's runners;
 * 5. update each job once: its open tasks (less the computed, plus the
 *    subtasks they submitted), completed when none is left, failed when a task
 *    ran out of retries; and count the jobs it finished (`countFinished`).
 *
 * The subtasks themselves are inserted by the caller, once it knows which
 * parents counted; counting them here keeps a job with subtasks on their way
 * from being completed.
 */
function recordStatement(sql: Sql | TransactionSql, runnerId: string, results: readonly TaskResultIn[]) {
  const jobIds = [...new Set(results.map((r) => r.jobId))].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1));
  // 0: succeeded, 1: threw, 2: given back.
  const kinds = results.map((r) => (r.failure !== undefined ? 1 : r.released ? 2 : 0));
  // A batch of successes alone (the common one) leaves out what only the
  // other kinds need: the same rules, less for PostgreSQL to do per row.
  const successes = kinds.every((k) => k === 0);
  const withSubtasks = results.some((r) => (r.subtasks?.rows.length ?? 0) > 0);
  return sql`
    WITH locked AS MATERIALIZED (
      SELECT id FROM jobs WHERE id = ANY(${arrayLiteral(jobIds)}::bigint[]) ORDER BY id FOR NO KEY UPDATE
    ), updated AS (
      UPDATE tasks t
      ${
        successes
          ? sql`SET state = 'computed', finished_at = now(), runner_id = NULL, lease_expires_at = NULL`
          : sql`SET state = (CASE c.kind WHEN 0 THEN 'computed' WHEN 2 THEN 'queued'
                   ELSE CASE WHEN t.failures < t.max_retries THEN 'queued' ELSE 'failed' END END)::task_state,
          failures = t.failures + (c.kind = 1)::int,
          error_message = CASE WHEN c.kind = 1 THEN c.message ELSE t.error_message END,
          error_stack = CASE WHEN c.kind = 1 THEN c.stack ELSE t.error_stack END,
          error_attempt = CASE WHEN c.kind = 1 THEN t.lease ELSE t.error_attempt END,
          finished_at = CASE WHEN c.kind = 0 OR (c.kind = 1 AND t.failures >= t.max_retries) THEN now() ELSE t.finished_at END,
          runner_id = NULL, lease_expires_at = NULL`
      }
      FROM ${resultRows(sql, results, kinds, successes)}
      WHERE t.id = c.id AND t.lease = c.lease AND t.job_id = c.job_id AND t.state = 'running' AND t.runner_id = ${runnerId}::uuid
        AND (SELECT count(*) FROM locked) >= 0
      -- Of a batch of successes alone, only what the CTEs below read for it:
      -- every column returned is carried per row through the statement.
      RETURNING t.id, t.job_id, t.has_dependents,
        ${
          successes
            ? withSubtasks
              ? sql`'computed'::task_state AS state, c.subtasks, t.cluster_id`
              : sql`'computed'::task_state AS state`
            : // A failure to retry with backoff waits in task_retries: the delay
              // before retry n (failures is n now) with jitter, half to all of it.
              sql`CASE WHEN c.kind = 1 AND t.state = 'queued' AND t.retry_delay_ms IS NOT NULL
             THEN now() + least(t.retry_max_ms, t.retry_delay_ms * power(t.retry_factor, t.failures - 1)) * (0.5 + random() * 0.5)
                          * interval '1 millisecond' END AS retry_at, c.subtasks, t.state, t.cluster_id, t.name, t.major, t.minor, t.deps_left`
        }
    ), delayed AS (${
      successes
        ? sql`SELECT NULL::timestamptz AS retry_at WHERE false`
        : sql`
      INSERT INTO task_retries (task_id, retry_at) SELECT id, retry_at FROM updated WHERE retry_at IS NOT NULL
      ON CONFLICT (task_id) DO UPDATE SET retry_at = excluded.retry_at
      RETURNING retry_at`
    }
    ), woken AS (
      UPDATE tasks t SET deps_left = t.deps_left - d.n
      FROM (
        SELECT td.task_id, count(*)::int AS n
        FROM task_dependencies td JOIN updated u ON u.id = td.depends_on AND u.has_dependents AND u.state = 'computed'
        GROUP BY td.task_id
      ) AS d
      WHERE t.id = d.task_id
      RETURNING t.id, t.cluster_id, t.name, t.major, t.minor, t.deps_left, t.state
    ), became_ready AS (
      SELECT id, cluster_id, name, major, minor FROM woken WHERE deps_left = 0 AND state = 'queued'
      ${
        successes
          ? sql``
          : sql`UNION ALL
      SELECT id, cluster_id, name, major, minor FROM updated WHERE deps_left = 0 AND state = 'queued' AND retry_at IS NULL`
      }
    ), readied AS (
      ${queueReady(sql, "became_ready")} ${successes ? sql`` : sql`ON CONFLICT DO NOTHING`}
      RETURNING cluster_id
    ), closed AS (
      UPDATE jobs j
      SET open_tasks = j.open_tasks + d.delta,
          state = (CASE WHEN d.fail THEN 'failed' WHEN j.open_tasks + d.delta = 0 THEN 'completed' ELSE 'started' END)::job_state,
          started_at = coalesce(j.started_at, now()),
          finished_at = CASE WHEN d.fail OR j.open_tasks + d.delta = 0 THEN now() ELSE j.finished_at END
      FROM (${
        successes
          ? sql`SELECT job_id, ${withSubtasks ? sql`sum(subtasks - 1)::int` : sql`-count(*)::int`} AS delta, false AS fail FROM updated GROUP BY job_id`
          : sql`
        SELECT job_id, sum(CASE WHEN state = 'computed' THEN subtasks - 1 ELSE 0 END)::int AS delta, bool_or(state = 'failed') AS fail
        FROM updated WHERE state IN ('computed', 'failed') GROUP BY job_id`
      }) AS d
      WHERE j.id = d.job_id
      RETURNING ${successes ? sql`j.cluster_id, j.state` : sql`j.id, j.cluster_id, j.state`}
    ), counted AS (
      ${countFinished(sql, "closed")}
    )
    SELECT CASE WHEN (SELECT count(*) FROM updated) = ${results.length} THEN NULL
                ELSE coalesce((SELECT array_agg(id::text) FROM updated), '{}') END AS done,
           ${
             withSubtasks
               ? sql`(SELECT array_agg(id::text || ':' || cluster_id) FROM updated WHERE subtasks > 0 AND state = 'computed')`
               : sql`NULL::text[]`
           } AS parents,
           ${successes ? sql`NULL::text[]` : sql`(SELECT array_agg(id::text) FROM closed WHERE state = 'failed')`} AS failed_jobs,
           (SELECT array_agg(DISTINCT cluster_id) FROM became_ready) AS ready,
           (SELECT min(retry_at) FROM delayed) AS next_retry,
           ${notifyReadyOf(sql, "readied")} AS notified`;
}

/**
 * The reported results as rows `c(id, lease, job_id, kind, subtasks, message,
 * stack)` (of a batch of successes alone: `c(id, lease, job_id, subtasks)`), looked up in `tasks` by primary key (see `reportedRows` for why the
 * arrays go through a subquery).
 */
function resultRows(sql: Sql | TransactionSql, results: readonly TaskResultIn[], kinds: readonly number[], successes: boolean) {
  if (successes) {
    return sql`
    (SELECT ${arrayLiteral(results.map((r) => r.taskId))}::bigint[] AS ids, ${arrayLiteral(results.map((r) => r.lease))}::int[] AS leases,
            ${arrayLiteral(results.map((r) => r.jobId))}::bigint[] AS job_ids,
            ${arrayLiteral(results.map((r) => r.subtasks?.rows.length ?? 0))}::int[] AS subtasks
     OFFSET 0) AS a,
    unnest(a.ids, a.leases, a.job_ids, a.subtasks) AS c(id, lease, job_id, subtasks)`;
  }
  const failing = kinds.includes(1);
  const text = (f: (r: TaskResultIn) => string | undefined) => (failing ? quotedArrayLiteral(results.map((r) => f(r) ?? null)) : "{}");
  return sql`
    (SELECT ${arrayLiteral(results.map((r) => r.taskId))}::bigint[] AS ids, ${arrayLiteral(results.map((r) => r.lease))}::int[] AS leases,
            ${arrayLiteral(results.map((r) => r.jobId))}::bigint[] AS job_ids, ${arrayLiteral(kinds)}::int[] AS kinds,
            ${arrayLiteral(results.map((r) => r.subtasks?.rows.length ?? 0))}::int[] AS subtasks,
            ${text((r) => r.failure?.message)}::text[] AS messages, ${text((r) => r.failure?.stack)}::text[] AS stacks
     OFFSET 0) AS a,
    unnest(a.ids, a.leases, a.job_ids, a.kinds, a.subtasks, a.messages, a.stacks) AS c(id, lease, job_id, kind, subtasks, message, stack)`;
}

interface RefusalRow {
  id: string;
  job_id: string;
  state: string;
  lease: number;
  runner_id: string | null;
  job_state: string;
}

/** Says, for each refused result, why, in words that tell the runner what happened. */
async function explainRefusals(tx: Sql | TransactionSql, runnerId: string, refused: readonly TaskResultIn[]): Promise<Refusal[]> {
  if (refused.length === 0) return [];
  const rows = await tx<RefusalRow[]>`
    SELECT t.id, t.job_id, t.state, t.lease, t.runner_id::text, j.state AS job_state
    FROM tasks t JOIN jobs j ON j.id = t.job_id
    WHERE t.id = ANY(${arrayLiteral(refused.map((r) => r.taskId))}::bigint[])`;
  const byId = new Map(rows.map((r) => [r.id, r]));
  return refused.map((r): Refusal => {
    const row = byId.get(r.taskId);
    const refuse = (kind: Refusal["kind"], message: string) => ({ taskId: r.taskId, kind, message });
    if (!row) return refuse("missing", `task ${r.taskId} does not exist`);
    if (row.job_id !== r.jobId) return refuse("wrong-job", `task ${r.taskId} belongs to job ${row.job_id}, not job ${r.jobId}`);
    if (row.job_state === "cancelled") {
      return refuse("not-recorded", `task ${r.taskId} was not recorded: its job ${row.job_id} was cancelled`);
    }
    if (row.job_state === "failed") {
      return refuse("not-recorded", `task ${r.taskId} was not recorded: its job ${row.job_id} failed and its other tasks were cancelled`);
    }
    if (row.lease !== r.lease) {
      return refuse(
        "not-recorded",
        `task ${r.taskId} was not recorded: lease ${r.lease} expired and the task was leased again (lease ${row.lease}); another runner owns it now`,
      );
    }
    if (row.state === "running" && row.runner_id !== runnerId) {
      return refuse("not-holder", `task ${r.taskId} was not recorded: it is leased to another runner, not to runner ${runnerId}`);
    }
    return refuse("not-recorded", `task ${r.taskId} was not recorded: it is ${row.state}, not running`);
  });
}
