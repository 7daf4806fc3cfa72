import { create, fromJson } from "@bufbuild/protobuf";
import { type Value, ValueSchema, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Job, JobSchema } from "../../gen/sluice/v1/job_pb.js";
import { type Task, TaskSchema } from "../../gen/sluice/v1/task_pb.js";
import { jobStateToProto, taskStateToProto } from "../../runner/wire/states.js";
import type { JobRow, TaskCountsRow, TaskRowOut } from "../store/read-jobs.js";
import { triggerToProto } from "../../runner/wire/storage-event.js";
import { formatVersion } from "../validation.js";

const ts = (d: Date | null) => (d ? timestampFromDate(d) : undefined);

/** A job as read (`counts` may be the row itself, as `getJob` returns them together). */
export function jobToProto(row: JobRow, counts: TaskCountsRow, clusterSlug: string): Job {
  return create(JobSchema, {
    id: row.id,
    name: row.name,
    cluster: clusterSlug,
    state: jobStateToProto[row.state],
    createdAt: ts(row.created_at),
    startedAt: ts(row.started_at),
    finishedAt: ts(row.finished_at),
    startAt: ts(row.start_at),
    recurrentTaskId: row.recurrent_task_id ?? "",
    tickAt: ts(row.tick_at),
    taskCounts: {
      queued: counts.queued,
      running: counts.running,
      computed: counts.computed,
      failed: counts.failed,
      cancelled: counts.cancelled,
    },
  });
}

export function taskToProto(row: TaskRowOut, clusterSlug: string): Task {
  return create(TaskSchema, {
    id: row.id,
    jobId: row.job_id,
    parentId: row.parent_id ?? "",
    identifier: { name: row.name, version: formatVersion(row.major, row.minor) },
    state: taskStateToProto[row.state],
    input: row.input,
    inputJson: inputAsJson(row.input),
    trigger: row.trigger ? triggerToProto(row.trigger) : undefined,
    dependsOn: row.depends_on,
    maxRetries: row.max_retries,
    failures: row.failures,
    attempts: row.lease,
    cluster: clusterSlug,
    lastError:
      row.error_message === null
        ? undefined
        : { message: row.error_message, stack: row.error_stack ?? "", attempt: row.error_attempt ?? 0 },
    display: row.display ?? "",
    createdAt: ts(row.created_at),
    startedAt: ts(row.started_at),
    finishedAt: ts(row.finished_at),
    hookStatus: row.hook_status_at ? fromJson(ValueSchema, row.hook_status as never) : undefined,
    hookStatusAt: ts(row.hook_status_at ?? null),
    stdoutTail: row.stdout_tail ?? "",
    stderrTail: row.stderr_tail ?? "",
  });
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A stored input as a JSON value, for JSON clients; undefined for one that is not JSON. */
export function inputAsJson(input: Uint8Array): Value | undefined {
  try {
    return fromJson(ValueSchema, JSON.parse(utf8.decode(input)));
  } catch {
    return undefined;
  }
}
