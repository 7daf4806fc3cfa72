import type { Sql } from "postgres";
import type { TaskTelemetry } from "../../gen/sluice/v1/observability_pb.js";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { RunnerStream } from "../dispatch/runner-stream.js";
import { type ProgressIn, addJobProgress } from "../store/job-progress.js";
import { type LogLineIn, TRUNCATED_FIELDS, insertTaskLogs } from "../store/task-logs.js";
import { replaceUnstorable } from "../validation.js";
import type { JobFollowers } from "./job-followers.js";

/** The longest line kept; longer ones are cut. */
export const MAX_LINE_CHARS = 16 * 1024;
/** The longest fields object (as JSON text) kept; larger ones are dropped. */
const MAX_FIELDS_CHARS = 16 * 1024;
const MAX_LABEL_CHARS = 200;
/** Progress increments above this are refused (beyond the exact range of a double). */
const MAX_INCREMENT = Number.MAX_SAFE_INTEGER;

/** What came of a telemetry message. */
export interface TelemetryWritten {
  lines: number;
  /** Lines and updates refused: for tasks the runner does not hold, or malformed. */
  ignored: number;
}

/**
 * Writes the log lines and progress a runner sent, each kind in one
 * statement. Only lines and progress of tasks the runner holds on this
 * stream are taken (a runner cannot write into another's jobs), up to
 * `taskLogBytes` (characters, counted as sent) per attempt; malformed ones
 * are dropped rather than failing the runner's results with them.
 */
export async function writeTelemetry(
  sql: Sql,
  stream: RunnerStream,
  telemetry: TaskTelemetry,
  followers: JobFollowers,
  taskLogBytes: number,
): Promise<TelemetryWritten> {
  let ignored = 0;
  const lines: LogLineIn[] = [];
  for (const l of telemetry.lines) {
    const count = stream.countLogLine(l.taskId, l.jobId, l.message.length + l.fieldsJson.length, taskLogBytes);
    if (count !== "keep") {
      if (count === "cut") {
        lines.push({
          taskId: l.taskId,
          jobId: l.jobId,
          attempt: l.attempt,
          level: 3,
          loggedAt: l.time ? new Date(timestampMs(l.time)) : new Date(),
          message: `sluice: this attempt wrote more than ${taskLogBytes} bytes of log lines; later lines are not kept`,
          fields: TRUNCATED_FIELDS,
        });
      } else if (count === null) ignored++;
      continue;
    }
    let fields: string | null = null;
    // jsonb cannot hold a NUL character, even escaped.
    if (l.fieldsJson !== "" && l.fieldsJson.length <= MAX_FIELDS_CHARS && !l.fieldsJson.includes("\\u0000")) {
      try {
        const parsed = JSON.parse(l.fieldsJson);
        if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) fields = replaceUnstorable(l.fieldsJson);
      } catch {
        // Not JSON: the line is kept without them.
      }
    }
    const message = l.message.length > MAX_LINE_CHARS ? `${l.message.slice(0, MAX_LINE_CHARS)}…` : l.message;
    lines.push({
      taskId: l.taskId,
      jobId: l.jobId,
      attempt: l.attempt,
      level: l.level >= 1 && l.level <= 4 ? l.level : 2,
      loggedAt: l.time ? new Date(timestampMs(l.time)) : new Date(),
      message: replaceUnstorable(message),
      fields,
    });
  }
  const progress: ProgressIn[] = [];
  if (telemetry.progress.length > 0) {
    const jobs = stream.heldJobs();
    for (const p of telemetry.progress) {
      const done = Number(p.done);
      const total = Number(p.total);
      if (!jobs.has(p.jobId) || p.label === "" || p.label.length > MAX_LABEL_CHARS || done > MAX_INCREMENT || total > MAX_INCREMENT) {
        ignored++;
        continue;
      }
      progress.push({ jobId: p.jobId, label: replaceUnstorable(p.label), done, total });
    }
  }
  const jobsOf = (xs: readonly { jobId: string }[]) => followers.followedAmong(xs.map((x) => x.jobId));
  await Promise.all([insertTaskLogs(sql, lines, jobsOf(lines)), addJobProgress(sql, progress, jobsOf(progress))]);
  return { lines: lines.length, ignored };
}
