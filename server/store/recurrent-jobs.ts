import type { TransactionSql } from "postgres";
import type { TriggerJson } from "../../runner/wire/storage-event.js";
import type { TaskPlan } from "../task-plan.js";
import { notifyReady } from "./channels.js";
import { taskInsertCtes } from "./insert-tasks.js";

/** The task a recurrent task starts each job with, and the cluster it runs on. */
export interface TaskPrototypeRow {
  cluster_id: number;
  task_name: string;
  major: number;
  minor: number;
  display: string | null;
  input: Buffer;
  max_retries: number;
}

/** A job a recurrent task just started (a cron tick, a storage event), with its task prototype. */
export interface StartedJobRow extends TaskPrototypeRow {
  job_id: string;
}

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
