import type { Sql } from "postgres";
import { LogLevel, type TaskTelemetry } from "../../gen/sluice/v1/observability_pb.js";
import type { RunnerStream } from "../dispatch/runner-stream.js";
import { type ProgressIn, addJobProgress } from "../store/job-progress.js";
import { type LogLinesIn, TRUNCATED_FIELDS, insertTaskLogs } from "../store/task-logs.js";
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
 * `taskLogChars` (characters, counted as sent) per attempt; malformed ones
 * are dropped rather than failing the runner's results with them.
 */
export async function writeTelemetry(
  sql: Sql,
  stream: RunnerStream,
  telemetry: TaskTelemetry,
  followers: JobFollowers,
  taskLogChars: number,
): Promise<TelemetryWritten> {
  let ignored = 0;
  const out: LogLinesIn = { taskIds: [], jobIds: [], attempts: [], levels: [], times: [], messages: [], fields: [] };
  const c = telemetry.lines;
  const n = c?.taskIds.length ?? 0;
  if (c && (c.jobIds.length !== n || c.attempts.length !== n || c.levels.length !== n || c.timeOffsetsMs.length !== n || c.messages.length !== n || c.fieldsJson.length !== n)) {
    // Lists of different lengths: no line can be trusted.
    ignored += n;
  } else if (c) {
    const base = Number(c.baseTimeMs);
    for (let i = 0; i < n; i++) {
      const taskId = c.taskIds[i];
      const jobId = c.jobIds[i];
      const message = c.messages[i];
      const fieldsJson = c.fieldsJson[i];
      const count = stream.countLogLine(taskId, jobId, message.length + fieldsJson.length, taskLogChars);
      if (count === null) {
        ignored++;
        continue;
      }
      if (count === "drop") continue;
      out.taskIds.push(taskId);
      out.jobIds.push(jobId);
      out.attempts.push(c.attempts[i]);
      out.times.push(base + c.timeOffsetsMs[i]);
      if (count === "cut") {
        out.levels.push(LogLevel.WARN);
        out.messages.push(`sluice: this attempt wrote more than ${taskLogChars} characters of log lines; later lines are not kept`);
        out.fields.push(TRUNCATED_FIELDS);
        continue;
      }
      const level = c.levels[i];
      out.levels.push(level >= LogLevel.DEBUG && level <= LogLevel.ERROR ? level : LogLevel.INFO);
      out.messages.push(replaceUnstorable(message.length > MAX_LINE_CHARS ? `${message.slice(0, MAX_LINE_CHARS)}…` : message));
      out.fields.push(fieldsJson === "" ? null : fieldsOf(fieldsJson));
    }
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
  await Promise.all([
    insertTaskLogs(sql, out, followers.followedAmong(out.jobIds)),
    addJobProgress(sql, progress, followers.followedAmong(progress.map((p) => p.jobId))),
  ]);
  return { lines: out.taskIds.length, ignored };
}

/** A line's fields if they are a JSON object PostgreSQL can store, else null (the line is kept without them). */
function fieldsOf(json: string): string | null {
  // jsonb cannot hold a NUL character, even escaped.
  if (json.length > MAX_FIELDS_CHARS || json.includes("\\u0000")) return null;
  try {
    const parsed = JSON.parse(json);
    return parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) ? replaceUnstorable(json) : null;
  } catch {
    return null;
  }
}
