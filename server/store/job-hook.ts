import type { Sql } from "postgres";

/** What the job hook needs of the task an X-Job-Id names. */
export interface AttemptRow {
  jobId: string;
  state: string;
  lease: number;
}

export async function readAttempt(sql: Sql, taskId: string): Promise<AttemptRow | null> {
  const [row] = await sql<{ job_id: string; state: string; lease: number }[]>`SELECT job_id, state, lease FROM tasks WHERE id = ${taskId}`;
  return row ? { jobId: row.job_id, state: row.state, lease: row.lease } : null;
}

/**
 * Stores an attempt's status (when `status` is given) or output tails, only
 * while the attempt runs: false when it no longer does (nothing is written).
 * A status from an older attempt never overwrites a newer one's.
 */
export async function storeHookStatus(
  sql: Sql,
  taskId: string,
  lease: number,
  update: { status: unknown } | { stdout: string; stderr: string },
): Promise<boolean> {
  const status = "status" in update ? sql.json(update.status as never) : null;
  const stdout = "stdout" in update ? update.stdout : null;
  const stderr = "stderr" in update ? update.stderr : null;
  const rows = await sql`
    INSERT INTO task_hook_status AS s (task_id, lease, status, status_at, stdout_tail, stderr_tail)
    SELECT t.id, t.lease, ${status}::jsonb, CASE WHEN ${status !== null} THEN now() END, ${stdout}, ${stderr}
    FROM tasks t WHERE t.id = ${taskId} AND t.lease = ${lease} AND t.state = 'running'
    ON CONFLICT (task_id) DO UPDATE SET
      status = CASE WHEN ${status !== null} THEN excluded.status WHEN s.lease = excluded.lease THEN s.status END,
      status_at = CASE WHEN ${status !== null} THEN excluded.status_at WHEN s.lease = excluded.lease THEN s.status_at END,
      stdout_tail = CASE WHEN ${stdout !== null} THEN excluded.stdout_tail WHEN s.lease = excluded.lease THEN s.stdout_tail END,
      stderr_tail = CASE WHEN ${stderr !== null} THEN excluded.stderr_tail WHEN s.lease = excluded.lease THEN s.stderr_tail END,
      lease = excluded.lease
    WHERE s.lease <= excluded.lease
    RETURNING 1`;
  return rows.length > 0;
}

/** A file as (store, uuid, property, index) names it. */
export interface JobFileRow {
  hash: string;
  size: number;
  metadata: unknown;
  createdAt: Date;
}

export async function readJobFile(sql: Sql, store: string, uuid: string, property: string, index: number): Promise<JobFileRow | null> {
  const [row] = await sql<{ hash: string; size: string; metadata: unknown; created_at: Date }[]>`
    SELECT f.hash, b.size, f.metadata, f.created_at
    FROM job_files f JOIN job_file_blobs b ON b.hash = f.hash
    WHERE f.store = ${store} AND f.uuid = ${uuid} AND f.property = ${property} AND f.idx = ${index}`;
  return row ? { hash: row.hash, size: Number(row.size), metadata: row.metadata, createdAt: row.created_at } : null;
}

export async function blobExists(sql: Sql, hash: string): Promise<boolean> {
  const rows = await sql`SELECT 1 FROM job_file_blobs WHERE hash = ${hash}`;
  return rows.length > 0;
}

export interface FileName {
  store: string;
  uuid: string;
  property: string;
}

/**
 * Names stored content (store, uuid, property, next index), recording the
 * blob too when `size` is given (bytes just received); returns the index.
 */
export async function addJobFile(
  sql: Sql,
  name: FileName,
  hash: string,
  metadata: unknown,
  attempt: { taskId: string; lease: number },
  size?: number,
): Promise<number> {
  return sql.begin(async (tx) => {
    if (size !== undefined) await tx`INSERT INTO job_file_blobs (hash, size) VALUES (${hash}, ${size}) ON CONFLICT (hash) DO NOTHING`;
    await tx`SELECT pg_advisory_xact_lock(hashtextextended(${`job-file ${name.store}/${name.uuid}/${name.property}`}, 0))`;
    const [{ idx }] = await tx<{ idx: number }[]>`
      INSERT INTO job_files (store, uuid, property, idx, hash, metadata, task_id, lease)
      SELECT ${name.store}, ${name.uuid}, ${name.property}, coalesce(max(idx) + 1, 0), ${hash}, ${tx.json(metadata as never)}, ${attempt.taskId}, ${attempt.lease}
      FROM job_files WHERE store = ${name.store} AND uuid = ${name.uuid} AND property = ${name.property}
      RETURNING idx`;
    return idx;
  });
}

/** An upload announced by PUT upload, waiting for its bytes. */
export interface PendingUpload extends FileName {
  id: string;
  taskId: string;
  lease: number;
  hash: string;
  challenge: string;
  metadata: unknown;
}

export async function addPendingUpload(sql: Sql, u: PendingUpload, ttlMs: number): Promise<void> {
  await sql`DELETE FROM job_file_uploads WHERE expires_at < now()`;
  await sql`
    INSERT INTO job_file_uploads (id, task_id, lease, store, uuid, property, hash, challenge, metadata, expires_at)
    VALUES (${u.id}, ${u.taskId}, ${u.lease}, ${u.store}, ${u.uuid}, ${u.property}, ${u.hash}, ${u.challenge}, ${sql.json(u.metadata as never)},
            now() + ${ttlMs} * interval '1 millisecond')`;
}

/** Takes a pending upload (it can be used once), if it exists and has not expired. */
export async function takePendingUpload(sql: Sql, id: string): Promise<PendingUpload | null> {
  const [row] = await sql<{ id: string; task_id: string; lease: number; store: string; uuid: string; property: string; hash: string; challenge: string; metadata: unknown }[]>`
    DELETE FROM job_file_uploads WHERE id = ${id} AND expires_at >= now()
    RETURNING id, task_id, lease, store, uuid, property, hash, challenge, metadata`;
  if (!row) return null;
  return { ...row, taskId: row.task_id };
}
