import type { Sql } from "postgres";
import type { JobStateName, TaskStateName } from "../../runner/wire/states.js";
import type { TriggerJson } from "../../runner/wire/storage-event.js";

export type { JobStateName, TaskStateName };

export interface JobRow {
  id: string;
  name: string;
  cluster_id: number;
  state: JobStateName;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  start_at: Date | null;
  recurrent_task_id: string | null;
  tick_at: Date | null;
}

export interface TaskCountsRow {
  queued: number;
  running: number;
  computed: number;
  failed: number;
  cancelled: number;
}

export type JobWithCounts = JobRow & TaskCountsRow;

export interface TaskRowOut {
  id: string;
  job_id: string;
  parent_id: string | null;
  cluster_id: number;
  name: string;
  major: number;
  minor: number;
  display: string | null;
  state: TaskStateName;
  input: Buffer;
  max_retries: number;
  failures: number;
  lease: number;
  error_message: string | null;
  error_stack: string | null;
  error_attempt: number | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  depends_on: string[];
  /** What a process task posted to its job hook (task_hook_status), if anything. */
  hook_status?: unknown;
  hook_status_at?: Date | null;
  stdout_tail?: string | null;
  stderr_tail?: string | null;
  trigger: TriggerJson | null;
}

const COUNTS = `
  count(*) FILTER (WHERE t.state = 'queued')::int AS queued,
  count(*) FILTER (WHERE t.state = 'running')::int AS running,
  count(*) FILTER (WHERE t.state = 'computed')::int AS computed,
  count(*) FILTER (WHERE t.state = 'failed')::int AS failed,
  count(*) FILTER (WHERE t.state = 'cancelled')::int AS cancelled,
  min(t.started_at) AS first_started`;

/**
 * A job's state and start as shown, from its row (`j`) and its tasks (`c`,
 * with COUNTS): leasing a task does not write its job, so a job whose row
 * still says queued has started once one of its tasks has.
 */
const SHOWN = `
  CASE WHEN j.state = 'queued' AND c.first_started IS NOT NULL THEN 'started' ELSE j.state::text END AS state,
  least(j.started_at, c.first_started) AS started_at`;

/** A JobWithCounts from `jobs j` and the LATERAL COUNTS `c` of its tasks. */
const JOB_WITH_COUNTS = `
  j.id, j.name, j.cluster_id, j.created_at, j.finished_at, j.start_at, j.recurrent_task_id, j.tick_at,
  c.queued, c.running, c.computed, c.failed, c.cancelled, ${SHOWN}`;

export async function getJob(sql: Sql, id: string): Promise<JobWithCounts | null> {
  const [row] = await sql<JobWithCounts[]>`
    SELECT ${sql.unsafe(JOB_WITH_COUNTS)}
    FROM jobs j, LATERAL (SELECT ${sql.unsafe(COUNTS)} FROM tasks t WHERE t.job_id = j.id) c
    WHERE j.id = ${id}`;
  return row ?? null;
}

/** The jobs created by submits with these idempotency keys, with their task counts, by key. */
export async function jobsByIdempotencyKey(sql: Sql, keys: readonly string[]): Promise<Map<string, JobWithCounts>> {
  const rows = await sql<(JobWithCounts & { idempotency_key: string })[]>`
    SELECT ${sql.unsafe(JOB_WITH_COUNTS)}, j.idempotency_key
    FROM jobs j, LATERAL (SELECT ${sql.unsafe(COUNTS)} FROM tasks t WHERE t.job_id = j.id) c
    WHERE j.idempotency_key = ANY(${keys}::text[])`;
  return new Map(rows.map((r) => [r.idempotency_key, r]));
}

export async function getJobTasks(sql: Sql, jobId: string): Promise<TaskRowOut[]> {
  return sql<TaskRowOut[]>`
    SELECT t.id, t.job_id, t.parent_id, t.cluster_id, t.name, t.major, t.minor, t.display, t.state, t.input,
           t.max_retries, t.failures, t.lease, t.error_message, t.error_stack, t.error_attempt,
           t.created_at, t.started_at, t.finished_at, t.trigger,
           coalesce((SELECT array_agg(d.depends_on::text ORDER BY d.depends_on) FROM task_dependencies d WHERE d.task_id = t.id), '{}') AS depends_on,
           h.status AS hook_status, h.status_at AS hook_status_at, h.stdout_tail, h.stderr_tail
    FROM tasks t LEFT JOIN task_hook_status h ON h.task_id = t.id
    WHERE t.job_id = ${jobId} ORDER BY t.id`;
}

export interface JobFilter {
  states: JobStateName[];
  clusterId: number | null;
  name: string;
  createdAfter: Date | null;
  createdBefore: Date | null;
  /** Only jobs with an id below this one (the page token). */
  beforeId: string | null;
  limit: number;
}

/** Jobs matching the filter, newest first, with their task counts. */
export async function listJobs(sql: Sql, f: JobFilter): Promise<JobWithCounts[]> {
  const states = f.states.length === 0 ? null : f.states;
  return sql<JobWithCounts[]>`
    SELECT * FROM (
      SELECT ${sql.unsafe(JOB_WITH_COUNTS)}
      FROM jobs j, LATERAL (SELECT ${sql.unsafe(COUNTS)} FROM tasks t WHERE t.job_id = j.id) c
      WHERE (${states}::text[] IS NULL OR j.state::text = ANY(${states}::text[])
             OR (j.state = 'queued' AND 'started' = ANY(${states}::text[])))
        AND (${f.clusterId}::int IS NULL OR j.cluster_id = ${f.clusterId}::int)
        AND (${f.name}::text = '' OR strpos(lower(j.name), lower(${f.name}::text)) > 0)
        AND (${f.createdAfter}::timestamptz IS NULL OR j.created_at >= ${f.createdAfter}::timestamptz)
        AND (${f.createdBefore}::timestamptz IS NULL OR j.created_at < ${f.createdBefore}::timestamptz)
        AND (${f.beforeId}::bigint IS NULL OR j.id < ${f.beforeId}::bigint)
    ) j
    -- A stored state of queued shows as queued or started (SHOWN); every other as itself.
    WHERE ${states}::text[] IS NULL OR j.state = ANY(${states}::text[])
    ORDER BY j.id DESC
    LIMIT ${f.limit}`;
}
