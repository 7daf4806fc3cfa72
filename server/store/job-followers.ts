import type { Sql } from "postgres";
import { notifyFollow } from "./channels.js";

/** Records (or extends) that `follower` follows a job until `ttlMs` from now, and tells every server. */
export async function followJob(sql: Sql, jobId: string, follower: string, ttlMs: number): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`
      INSERT INTO job_followers (job_id, follower, until)
      VALUES (${jobId}, ${follower}, now() + ${ttlMs}::bigint * interval '1 millisecond')
      ON CONFLICT (job_id, follower) DO UPDATE SET until = excluded.until`;
    await notifyFollow(tx, jobId);
  });
}

/** `follower` stopped following the job. */
export async function unfollowJob(sql: Sql, jobId: string, follower: string): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`DELETE FROM job_followers WHERE job_id = ${jobId} AND follower = ${follower}`;
    await notifyFollow(tx, jobId);
  });
}

/** The jobs followed now (expired rows are deleted on the way). */
export async function followedJobs(sql: Sql): Promise<string[]> {
  const [, rows] = await sql.begin(async (tx) => [
    await tx`DELETE FROM job_followers WHERE until < now()`,
    await tx<{ job_id: string }[]>`SELECT DISTINCT job_id FROM job_followers`,
  ]);
  return rows.map((r) => r.job_id);
}
