import type { Sql } from "postgres";
import type { JobStateName } from "./read-jobs.js";

export interface JobCountFilter {
  clusterId: number | null;
  name: string;
  createdAfter: Date | null;
  createdBefore: Date | null;
}

/**
 * Jobs per state among those matching the filter, states shown as `getJob`
 * shows them: a job whose row says queued counts as started once one of its
 * tasks has started (leasing does not write the job row). That look at the
 * tasks is made for queued jobs only, through tasks_by_job.
 */
export async function countJobs(sql: Sql, f: JobCountFilter): Promise<Record<JobStateName, number>> {
  const rows = await sql<{ state: JobStateName; n: number }[]>`
    SELECT CASE WHEN j.state = 'queued'
                 AND EXISTS (SELECT 1 FROM tasks t WHERE t.job_id = j.id AND t.started_at IS NOT NULL)
                THEN 'started' ELSE j.state::text END AS state,
           count(*)::int AS n
    FROM jobs j
    WHERE (${f.clusterId}::int IS NULL OR j.cluster_id = ${f.clusterId}::int)
      AND (${f.name}::text = '' OR strpos(lower(j.name), lower(${f.name}::text)) > 0)
      AND (${f.createdAfter}::timestamptz IS NULL OR j.created_at >= ${f.createdAfter}::timestamptz)
      AND (${f.createdBefore}::timestamptz IS NULL OR j.created_at < ${f.createdBefore}::timestamptz)
    GROUP BY 1`;
  const counts: Record<JobStateName, number> = { scheduled: 0, queued: 0, started: 0, completed: 0, failed: 0, cancelled: 0 };
  for (const r of rows) counts[r.state] += r.n;
  return counts;
}
