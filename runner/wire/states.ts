/**
 * Job and task states by name (as the database stores them and the SDK shows
 * them) and as the API's enums, both ways. Shared by the SDK and the server.
 */
import { JobState } from "../../gen/sluice/v1/job_pb.js";
import { TaskState } from "../../gen/sluice/v1/task_pb.js";

export type JobStateName = "scheduled" | "queued" | "started" | "completed" | "failed" | "cancelled";
export type TaskStateName = "queued" | "running" | "computed" | "failed" | "cancelled";

export const jobStateToProto: Readonly<Record<JobStateName, JobState>> = {
  scheduled: JobState.SCHEDULED,
  queued: JobState.QUEUED,
  started: JobState.STARTED,
  completed: JobState.COMPLETED,
  failed: JobState.FAILED,
  cancelled: JobState.CANCELLED,
};

/** Every job state's name, in the order of a job's life. */
export const JOB_STATE_NAMES = Object.keys(jobStateToProto) as JobStateName[];

export const taskStateToProto: Readonly<Record<TaskStateName, TaskState>> = {
  queued: TaskState.QUEUED,
  running: TaskState.RUNNING,
  computed: TaskState.COMPUTED,
  failed: TaskState.FAILED,
  cancelled: TaskState.CANCELLED,
};

const reverse = <N extends string, V>(m: Readonly<Record<N, V>>): ReadonlyMap<V, N> =>
  new Map(Object.entries(m).map(([name, value]) => [value as V, name as N]));

/** The name of a job state; undefined for UNSPECIFIED or a value this version does not know. */
export const jobStateFromProto: ReadonlyMap<JobState, JobStateName> = reverse(jobStateToProto);
/** The name of a task state; undefined for UNSPECIFIED or a value this version does not know. */
export const taskStateFromProto: ReadonlyMap<TaskState, TaskStateName> = reverse(taskStateToProto);
