import type { Sql, TransactionSql } from "postgres";
import { arrayLiteral } from "./sql-literals.js";

/**
 * Tasks named by a runner as rows `alias(id, lease, job_id)`, for joins with
 * `tasks` that must look each one up by primary key.
 *
 * The arrays go through a subquery (kept apart by OFFSET 0) so that the planner
 * does not see their length: it then counts on a few rows (10) and looks them
 * up one by one, for any batch size. Seeing 1,000 named tasks, and statistics
 * that said almost no task was running (an ANALYZE of a full queue), it walked
 * every task of the table instead, and in a completion compared each with
 * every reported row: 40 to 160 ms for a batch of 1,000 from a queue of
 * 50,000, against 3.4 ms for a batch of 500, which it still looked up by key.
 */
export function reportedRows(sql: Sql | TransactionSql, refs: readonly { taskId: string; lease: number; jobId?: string }[], alias: string) {
  return sql`
    (SELECT ${arrayLiteral(refs.map((r) => r.taskId))}::bigint[] AS ids, ${arrayLiteral(refs.map((r) => r.lease))}::int[] AS leases,
            ${arrayLiteral(refs.map((r) => r.jobId ?? "NULL"))}::bigint[] AS job_ids OFFSET 0) AS ${sql(`${alias}_arrays`)},
    unnest(${sql(`${alias}_arrays`)}.ids, ${sql(`${alias}_arrays`)}.leases, ${sql(`${alias}_arrays`)}.job_ids) AS ${sql(alias)}(id, lease, job_id)`;
}
