import type { Sql, TransactionSql } from "postgres";
import { type TaskPlan, appendPlan, emptyPlan } from "../task-plan.js";
import { retryOnDeadlock } from "./deadlock.js";
import { reportedRows } from "./reported-rows.js";
import { arrayLiteral } from "./sql-literals.js";
import { cancelTasksOf } from "./cancel-job.js";
import { notifyCancelled, notifyReady, notifyReadyOf } from "./channels.js";
import { queueReady, taskInsertCtes } from "./insert-tasks.js";

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
}

/**
 * A statement that locks the tasks named by reported results that are still
 * running under the reported lease and yields their ids as one array (`ids`).
 *
 * Each result is one primary-key lookup in a LATERAL subquery (the reported
 * rows are always the outer side), which locks the row so that its state and
 * lease cannot change before the updates that follow find it by id. (A join
 * of the reported rows to `tasks` filtered by state once put `tasks` on the
 * outer side, through a partial index of running tasks that statistics said
 * was empty: 80 to 110 ms for a batch of 500. That index is gone, and the
 * server's connections plan for indexes only, but the transaction needs the
 * locked set anyway.)
 */
function lockRunning(sql: Sql | TransactionSql, runnerId: string, results: readonly TaskResultIn[]) {
  return sql`
    SELECT coalesce(array_agg(r.id), '{}') AS ids
    FROM ${reportedRows(sql, results, "c")}
    CROSS JOIN LATERAL (
      SELECT t.id FROM tasks t
      WHERE t.id = c.id AND t.lease = c.lease AND t.job_id = c.job_id AND t.state = 'running' AND t.runner_id = ${runnerId}::uuid
      OFFSET 0
      FOR NO KEY UPDATE
    ) r`;
}

/**
 * Records a batch of task results of one runner in one transaction. A result
 * counts only from the runner that holds the task under the lease it names.
 *
 * 1. lock the jobs involved, in id order (every writer that touches a job's
 *    tasks locks the job first, so completions, cancellations and retries of a
 *    job never deadlock);
 * 2. mark succeeded tasks computed and insert their subtasks, fenced by the lease
 *    number, so a result from a runner whose lease expired changes nothing;
 * 3. re-queue or fail the tasks that threw, and re-queue those given back;
 * 4. count down the dependencies of tasks waiting on the computed ones, and
 *    put every task that became ready (retried, given back, no dependency
 *    left) into ready_tasks;
 * 5. update each job once per batch (its open-task count, completed, failed) and
 *    cancel the rest of the jobs that failed;
 * 6. NOTIFY once per cluster that got ready work and once per failed job.
 */
export async function recordResults(sql: Sql, runnerId: string, results: readonly TaskResultIn[]): Promise<RecordedResults> {
  if (results.every((r) => r.failure === undefined && !r.released && (r.subtasks?.rows.length ?? 0) === 0)) {
    return retryOnDeadlock(() => recordSuccesses(sql, runnerId, results));
  }
  return retryOnDeadlock(() => sql.begin((tx) => recordInTransaction(tx, runnerId, results)));
}

/**
 * The common case, successes without subtasks, as one statement (one round
 * trip, atomic without BEGIN and COMMIT) doing what the transaction below does
 * for them: lock the jobs in id order (an InitPlan of the task update, so before
 * any task row), mark the tasks computed under their lease (the update joins
 * the reported rows and rechecks state and lease on the row it locks, so it
 * needs no separate lock: one WAL record per task fewer), count down the
 * dependencies of their dependents and queue those left with none, update each
 * job once, and wake the clusters of tasks that became ready.
 */
async function recordSuccesses(sql: Sql, runnerId: string, results: readonly TaskResultIn[]): Promise<RecordedResults> {
  const jobIds = [...new Set(results.map((r) => r.jobId))].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1));
  const [row] = await sql<{ done: string[] | null; ready: number[] | null }[]>`
    WITH locked AS MATERIALIZED (
      SELECT id FROM jobs WHERE id = ANY(${arrayLiteral(jobIds)}::bigint[]) ORDER BY id FOR NO KEY UPDATE
    ), done AS (
      UPDATE tasks t
      SET state = 'computed', finished_at = now(), runner_id = NULL, lease_expires_at = NULL
      FROM ${reportedRows(sql, results, "c")}
      WHERE t.id = c.id AND t.lease = c.lease AND t.job_id = c.job_id AND t.state = 'running' AND t.runner_id = ${runnerId}::uuid
        AND (SELECT count(*) FROM locked) >= 0
      RETURNING t.id, t.job_id, t.has_dependents
    ), woken AS (
      UPDATE tasks t SET deps_left = t.deps_left - d.n
      FROM (
        SELECT td.task_id, count(*)::int AS n
        FROM task_dependencies td JOIN done ON done.id = td.depends_on AND done.has_dependents
        GROUP BY td.task_id
      ) AS d
      WHERE t.id = d.task_id
      RETURNING t.id, t.cluster_id, t.name, t.major, t.minor, t.deps_left, t.state
    ), readied AS (
      ${queueReady(sql, "woken")} WHERE deps_left = 0 AND state = 'queued'
      RETURNING cluster_id
    ), closed AS (
      UPDATE jobs j
      SET open_tasks = j.open_tasks - d.n,
          state = (CASE WHEN j.open_tasks - d.n = 0 THEN 'completed' ELSE 'started' END)::job_state,
          started_at = coalesce(j.started_at, now()),
          finished_at = CASE WHEN j.open_tasks - d.n = 0 THEN now() ELSE j.finished_at END
      FROM (SELECT job_id, count(*)::int AS n FROM done GROUP BY job_id) AS d
      WHERE j.id = d.job_id
      RETURNING 1
    )
    -- The ids recorded only when some were not (else all were: nothing to parse).
    SELECT CASE WHEN (SELECT count(*) FROM done) = ${results.length} THEN NULL
                ELSE coalesce((SELECT array_agg(id::text) FROM done), '{}') END AS done,
           (SELECT array_agg(DISTINCT cluster_id) FROM woken WHERE deps_left = 0 AND state = 'queued') AS ready,
           (SELECT count(*) FROM closed) AS closed,
           ${notifyReadyOf(sql, "readied")} AS notified`;
  let refused: Refusal[] = [];
  if (row.done !== null) {
    const accepted = new Set(row.done);
    refused = await explainRefusals(sql, runnerId, results.filter((r) => !accepted.has(r.taskId)));
  }
  return {
    refused,
    failedJobs: [],
    readyClusters: row.ready ?? [],
  };
}

interface DoneRow {
  id: string;
  job_id: string;
  cluster_id: number;
  has_dependents: boolean;
}

interface FailedRow {
  id: string;
  job_id: string;
  state: "queued" | "failed";
  cluster_id: number;
  deps_left: number;
}

async function recordInTransaction(tx: TransactionSql, runnerId: string, results: readonly TaskResultIn[]): Promise<RecordedResults> {
  const jobIds = [...new Set(results.map((r) => r.jobId))].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1));
  await tx`SELECT id FROM jobs WHERE id = ANY(${arrayLiteral(jobIds)}::bigint[]) ORDER BY id FOR NO KEY UPDATE`;

  const succeeded = results.filter((r) => r.failure === undefined && !r.released);
  const threw = results.filter((r) => r.failure !== undefined);
  const released = results.filter((r) => r.released);

  // The reported tasks still running under their lease, locked (one statement).
  const [{ ids }] = await tx<{ ids: string[] }[]>`${lockRunning(tx, runnerId, results)}`;
  const running = new Set(ids);
  const ofRunning = (rs: readonly TaskResultIn[]) => rs.filter((r) => running.has(r.taskId)).map((r) => r.taskId);
  const doneIds = ofRunning(succeeded);
  const threwIds = ofRunning(threw);
  /** Every task that threw, in the order of `threw` (its messages and stacks). */
  const threwAll = threw.map((r) => r.taskId);
  const releasedIds = ofRunning(released);

  const done: DoneRow[] =
    doneIds.length === 0
      ? []
      : await tx<DoneRow[]>`
        UPDATE tasks t
        SET state = 'computed', finished_at = now(), runner_id = NULL, lease_expires_at = NULL
        WHERE t.id = ANY(${arrayLiteral(doneIds)}::bigint[])
        RETURNING t.id, t.job_id, t.cluster_id, t.has_dependents`;

  const failed: FailedRow[] =
    threwIds.length === 0
      ? []
      : await tx<FailedRow[]>`
        UPDATE tasks t
        SET state = (CASE WHEN t.failures < t.max_retries THEN 'queued' ELSE 'failed' END)::task_state,
            failures = t.failures + 1,
            error_message = (${threw.map((r) => r.failure!.message)}::text[])[array_position(${arrayLiteral(threwAll)}::bigint[], t.id)],
            error_stack = (${threw.map((r) => r.failure!.stack)}::text[])[array_position(${arrayLiteral(threwAll)}::bigint[], t.id)],
            error_attempt = t.lease,
            runner_id = NULL, lease_expires_at = NULL,
            finished_at = CASE WHEN t.failures < t.max_retries THEN NULL ELSE now() END
        WHERE t.id = ANY(${arrayLiteral(threwIds)}::bigint[])
        RETURNING t.id, t.job_id, t.state, t.cluster_id, t.deps_left`;

  const requeued: { id: string; cluster_id: number; deps_left: number }[] =
    releasedIds.length === 0
      ? []
      : await tx<{ id: string; cluster_id: number; deps_left: number }[]>`
        UPDATE tasks t
        SET state = 'queued', runner_id = NULL, lease_expires_at = NULL
        WHERE t.id = ANY(${arrayLiteral(releasedIds)}::bigint[])
        RETURNING t.id, t.cluster_id, t.deps_left`;

  const readyClusters = new Set<string>();
  /** Tasks queued again with no dependency left: they go back into ready_tasks. */
  const readyIds: string[] = [];
  for (const r of requeued) {
    readyClusters.add(String(r.cluster_id));
    if (r.deps_left === 0) readyIds.push(r.id);
  }
  const jobDelta = new Map<string, number>();
  const bump = (job: string, n: number) => jobDelta.set(job, (jobDelta.get(job) ?? 0) + n);

  // Subtasks of the tasks whose completion was accepted, in one insert.
  const parentCluster = new Map(done.map((d) => [d.id, d.cluster_id]));
  const plan = emptyPlan();
  for (const r of succeeded) {
    const cluster = parentCluster.get(r.taskId);
    if (cluster !== undefined && r.subtasks && r.subtasks.rows.length > 0) {
      for (const row of r.subtasks.rows) row.clusterId ??= cluster;
      appendPlan(plan, r.subtasks);
      bump(r.jobId, r.subtasks.rows.length);
      for (const row of r.subtasks.rows) if (row.depsLeft === 0) readyClusters.add(String(row.clusterId));
    }
  }
  if (plan.rows.length > 0) {
    await tx`WITH ${taskInsertCtes(tx, plan, tx`NULL::bigint`)} SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM deps)`;
  }

  for (const d of done) bump(d.job_id, -1);

  const withDependents = done.filter((d) => d.has_dependents).map((d) => d.id);
  if (withDependents.length > 0) {
    const woken = await tx<{ id: string; cluster_id: number; deps_left: number; state: string }[]>`
      UPDATE tasks t SET deps_left = t.deps_left - d.n
      FROM (
        SELECT task_id, count(*)::int AS n FROM task_dependencies
        WHERE depends_on = ANY(${arrayLiteral(withDependents)}::bigint[]) GROUP BY task_id
      ) AS d
      WHERE t.id = d.task_id
      RETURNING t.id, t.cluster_id, t.deps_left, t.state`;
    for (const w of woken) {
      if (w.deps_left === 0 && w.state === "queued") {
        readyClusters.add(String(w.cluster_id));
        readyIds.push(w.id);
      }
    }
  }

  const failedJobs = new Set<string>();
  for (const f of failed) {
    if (f.state === "failed") failedJobs.add(f.job_id);
    else if (f.deps_left === 0) {
      readyClusters.add(String(f.cluster_id));
      readyIds.push(f.id);
    }
  }
  if (readyIds.length > 0) {
    await tx`
      ${queueReady(tx, "tasks")} WHERE id = ANY(${arrayLiteral(readyIds)}::bigint[])
      ON CONFLICT DO NOTHING`;
  }

  const jobUpdates = [...new Set([...jobDelta.keys(), ...failedJobs])].map((id) => ({
    id,
    delta: jobDelta.get(id) ?? 0,
    fail: failedJobs.has(id),
  }));
  if (jobUpdates.length > 0) {
    await tx`
      UPDATE jobs j
      SET open_tasks = j.open_tasks + c.delta,
          state = (CASE WHEN c.fail THEN 'failed' WHEN j.open_tasks + c.delta = 0 THEN 'completed' ELSE 'started' END)::job_state,
          started_at = coalesce(j.started_at, now()),
          finished_at = CASE WHEN c.fail OR j.open_tasks + c.delta = 0 THEN now() ELSE j.finished_at END
      FROM json_to_recordset(${JSON.stringify(jobUpdates)}::text::json) AS c(id bigint, delta int, fail bool)
      WHERE j.id = c.id`;
  }
  if (failedJobs.size > 0) {
    await cancelTasksOf(tx, [...failedJobs]);
  }
  if (readyClusters.size > 0 || failedJobs.size > 0) {
    await tx`${notifyReady(tx, [...readyClusters])} UNION ALL ${notifyCancelled(tx, [...failedJobs])}`;
  }

  const acceptedIds = new Set([...parentCluster.keys(), ...failed.map((f) => f.id), ...requeued.map((r) => r.id)]);
  return {
    refused: await explainRefusals(tx, runnerId, results.filter((r) => !acceptedIds.has(r.taskId))),
    failedJobs: [...failedJobs],
    readyClusters: [...readyClusters].map(Number),
  };
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
