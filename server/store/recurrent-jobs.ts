import type { TransactionSql } from "postgres";
import type { TriggerJson } from "../../runner/wire/storage-event.js";
import type { TaskPlan } from "../task-plan.js";
import { notifyReady } from "./channels.js";
import { taskInsertCtes } from "./insert-tasks.js";
import type { RecurrentTaskRow } from "./recurrent-tasks.js";

/** A job a recurrent task just started (a cron tick, a storage event), with its task prototype. */
export type StartedJobRow = { job_id: string } & Pick<
  RecurrentTaskRow,
  "cluster_id" | "task_name" | "major" | "minor" | "display" | "input" | "max_retries"
>;

/**
 * Inserts the root task of each job a recurrent task started, from the task
 * prototype, through the one task insert (`taskInsertCtes`), and wakes the
 * runners of their clusters at commit. `triggerOf` gives a storage event
 * task its event.
 */
export async function insertStartedTasks(
  tx: TransactionSql,
  jobs: readonly StartedJobRow[],
  triggerOf: (job: StartedJobRow) => TriggerJson | null = () => null,
): Promise<void> {
  if (jobs.length === 0) return;
  const plan: TaskPlan = {
    rows: jobs.map((j, i) => ({
      ord: i + 1,
      jobId: j.job_id,
      parentId: null,
      clusterId: j.cluster_id,
      name: j.task_name,
      major: j.major,
      minor: j.minor,
      display: j.display,
      input: j.input,
      maxRetries: j.max_retries,
      depsLeft: 0,
      hasDependents: false,
      trigger: triggerOf(j),
    })),
    depFrom: [],
    depTo: [],
  };
  await tx`WITH ${taskInsertCtes(tx, plan, tx`NULL::bigint`)} SELECT (SELECT count(*) FROM inserted)`;
  await notifyReady(tx, [...new Set(jobs.map((j) => j.cluster_id))]);
}
