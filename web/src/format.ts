import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { JobState } from "../../gen/sluice/v1/job_pb.js";
import { TaskState } from "../../gen/sluice/v1/task_pb.js";

export type JobStateName = "scheduled" | "queued" | "started" | "completed" | "failed" | "cancelled";
export type TaskStateName = "queued" | "running" | "computed" | "failed" | "cancelled";

export const JOB_STATES: JobStateName[] = ["scheduled", "queued", "started", "completed", "failed", "cancelled"];
export const TASK_STATES: TaskStateName[] = ["queued", "running", "computed", "failed", "cancelled"];

const jobStateByEnum: Record<number, JobStateName> = {
  [JobState.SCHEDULED]: "scheduled",
  [JobState.QUEUED]: "queued",
  [JobState.STARTED]: "started",
  [JobState.COMPLETED]: "completed",
  [JobState.FAILED]: "failed",
  [JobState.CANCELLED]: "cancelled",
};
export const jobStateEnum: Record<JobStateName, JobState> = {
  scheduled: JobState.SCHEDULED,
  queued: JobState.QUEUED,
  started: JobState.STARTED,
  completed: JobState.COMPLETED,
  failed: JobState.FAILED,
  cancelled: JobState.CANCELLED,
};
const taskStateByEnum: Record<number, TaskStateName> = {
  [TaskState.QUEUED]: "queued",
  [TaskState.RUNNING]: "running",
  [TaskState.COMPUTED]: "computed",
  [TaskState.FAILED]: "failed",
  [TaskState.CANCELLED]: "cancelled",
};

export const jobStateName = (s: JobState): JobStateName => jobStateByEnum[s] ?? "queued";
export const taskStateName = (s: TaskState): TaskStateName => taskStateByEnum[s] ?? "queued";

export function toDate(t: Timestamp | undefined): Date | undefined {
  return t ? timestampDate(t) : undefined;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const shortTime = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });

export function formatTime(t: Timestamp | Date | undefined): string {
  const d = t instanceof Date ? t : toDate(t);
  return d ? timeFormat.format(d) : "–";
}

export function formatClock(d: Date): string {
  return shortTime.format(d);
}

/** "3 s", "4 min 2 s", "2 h 5 min". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** How long between two times, or since the first. */
export function elapsed(from: Timestamp | undefined, to: Timestamp | undefined): string {
  const a = toDate(from);
  if (!a) return "–";
  const b = toDate(to) ?? new Date();
  return formatDuration(b.getTime() - a.getTime());
}

export function errorText(e: unknown): string {
  const err = ConnectError.from(e);
  if (err.code === Code.Unauthenticated) return `${err.rawMessage}. Enter an API token in the field at the top.`;
  return err.rawMessage;
}

const decoder = new TextDecoder();

/** A task's input as text: pretty JSON when it is JSON, else the bytes as text. */
export function inputText(bytes: Uint8Array, limit = 64 * 1024): string {
  const text = decoder.decode(bytes.subarray(0, limit));
  const cut = bytes.length > limit ? `\n… (${bytes.length.toLocaleString()} bytes in all)` : "";
  if (cut) return text + cut;
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}
