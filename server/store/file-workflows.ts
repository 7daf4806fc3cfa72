import type { Sql } from "postgres";
import { arrayLiteral } from "./sql-literals.js";
import { type PathIn, appendPaths, createPathList, stagedListTotal } from "./path-lists.js";
import { type NewJob, type SubmittedJob, submitJobs } from "./submit-job.js";

/** A workflow's input: paths to write into a new list, or a staged list. */
export type WorkflowInput = { paths: readonly PathIn[] } | { listId: string; total: bigint };

/** A file workflow to insert: its plan's rows are the tasks, chunk after chunk, step after step. */
export interface NewFileWorkflow {
  job: NewJob;
  steps: number;
  chunkSize: number;
  chunks: number;
  input: WorkflowInput;
  site: string | null;
}

/** The staged list changed (or was used) between planning and the insert: nothing was written. */
export const LIST_CHANGED = "list-changed";

/**
 * Inserts a file workflow in one transaction: the job and its tasks through
 * the one task insert (`submitJobs`, each task depending on the step before
 * it in its chunk), the input list (written, or a staged list taken), and one
 * `file_tasks` row per task: the first step of chunk c reads positions
 * c*chunkSize+1 to (c+1)*chunkSize of the list, every later step the paths its
 * predecessor processed or skipped.
 */
export async function submitFileWorkflow(sql: Sql, w: NewFileWorkflow, leaseTtlMs: number): Promise<SubmittedJob | typeof LIST_CHANGED> {
  return sql.begin(async (tx) => {
    let listId: string;
    let total: bigint;
    if ("paths" in w.input) {
      listId = await createPathList(tx);
      total = w.input.paths.length === 0 ? 0n : ((await appendPaths(tx, listId, w.input.paths)) ?? 0n);
    } else {
      const now = await stagedListTotal(tx, w.input.listId, true);
      if (now !== w.input.total) return LIST_CHANGED;
      listId = w.input.listId;
      total = now;
    }
    const rows = await submitJobs(tx, [w.job], leaseTtlMs);
    if (!Array.isArray(rows)) throw new Error("a file workflow carries no idempotency key");
    const job = rows[0];
    const steps: number[] = [];
    const chunks: number[] = [];
    const firsts: string[] = [];
    const lasts: string[] = [];
    const size = BigInt(w.chunkSize);
    for (let c = 0; c < w.chunks; c++) {
      for (let s = 0; s < w.steps; s++) {
        steps.push(s);
        chunks.push(c);
        const first = BigInt(c) * size + 1n;
        const last = first + size - 1n < total ? first + size - 1n : total;
        firsts.push(s === 0 ? first.toString() : "NULL");
        lasts.push(s === 0 ? last.toString() : "NULL");
      }
    }
    // The job's task ids in id order are its plan's rows in order: the task
    // insert draws them from the sequence by batch position.
    await tx`
      WITH m AS (SELECT array_agg(id ORDER BY id) AS ids FROM tasks WHERE job_id = ${job.id}::bigint),
      taken AS (UPDATE path_lists SET job_id = ${job.id}::bigint WHERE id = ${listId}::bigint RETURNING id)
      INSERT INTO file_tasks (task_id, job_id, step, chunk, list_id, first_ord, last_ord, source_task_id, site)
      SELECT m.ids[f.i], ${job.id}::bigint, f.step, f.chunk,
             CASE WHEN f.step = 0 THEN (SELECT id FROM taken) END, f.first, f.last,
             CASE WHEN f.step > 0 THEN m.ids[f.i - 1] END, ${w.site}
      FROM m, unnest(${arrayLiteral(steps)}::int[], ${arrayLiteral(chunks)}::int[], ${arrayLiteral(firsts)}::bigint[], ${arrayLiteral(lasts)}::bigint[])
                WITH ORDINALITY AS f(step, chunk, first, last, i)`;
    return job;
  });
}
