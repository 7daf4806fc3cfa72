import { fromJson } from "@bufbuild/protobuf";
import type { Sql } from "postgres";
import type { TaskResult } from "../../gen/sluice/v1/runner_service_pb.js";
import { TaskSubmissionSchema } from "../../gen/sluice/v1/task_pb.js";
import { readHookSubtasks } from "../store/hook-subtasks.js";

/**
 * Adds to each computed result that asks for them (job_hook_subtasks) the
 * subtasks its attempt posted to the job hook, after its own: from there they
 * take the path of every subtask (validation, the one task insert), atomically
 * with the completion. One statement for the whole message.
 */
export async function addJobHookSubtasks(sql: Sql, results: readonly TaskResult[]): Promise<void> {
  const asking = results.filter((r) => r.outcome.case === "computed" && r.outcome.value.jobHookSubtasks && r.task);
  if (asking.length === 0) return;
  const posted = await readHookSubtasks(sql, asking.map((r) => ({ taskId: r.task!.taskId, lease: r.task!.lease })));
  for (const r of asking) {
    const list = posted.get(`${r.task!.taskId} ${r.task!.lease}`);
    if (!list || r.outcome.case !== "computed") continue;
    for (const s of list) r.outcome.value.subtasks.push(fromJson(TaskSubmissionSchema, s as never));
  }
}
