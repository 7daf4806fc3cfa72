import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Client as ConnectClient } from "@connectrpc/connect";
import { LogLevel, type TaskLogLine } from "../../gen/sluice/v1/observability_pb.js";
import type { JobProgressBar, ObservabilityService, RunnerInfo as RunnerMessage } from "../../gen/sluice/v1/observability_service_pb.js";
import { type JobStateName, jobStateFromProto } from "../wire/states.js";
import type { TaskIdentifier } from "./task.js";

export type LogLevelName = "debug" | "info" | "warn" | "error";

const LEVELS: Record<number, LogLevelName> = {
  [LogLevel.DEBUG]: "debug",
  [LogLevel.INFO]: "info",
  [LogLevel.WARN]: "warn",
  [LogLevel.ERROR]: "error",
};

/** A line a task wrote. */
export interface LogLine {
  /** Its position in the job's log (pass as `after` to read what follows). */
  id: string;
  jobId: string;
  taskId: string;
  attempt: number;
  level: LogLevelName;
  time: Date;
  message: string;
  /** Its structured fields, if it had any. */
  fields?: Record<string, unknown>;
}

/** A job's progress under one label. */
export interface ProgressBar {
  label: string;
  done: number;
  total: number;
}

/** Ready tasks no connected runner can execute. */
export interface Unrunnable {
  cluster: string;
  identifier: TaskIdentifier;
  count: number;
  runnerVersions: string[];
  message: string;
}

export interface JobProgress {
  state: JobStateName;
  progress: ProgressBar[];
  unrunnable: Unrunnable[];
}

/** What a job's follower receives: new lines, and progress and state when they changed. */
export interface JobUpdate {
  lines: LogLine[];
  progress?: ProgressBar[];
  state?: JobStateName;
}

export interface RunnerInfo {
  id: string;
  name: string;
  host: string;
  cluster: string;
  tasks: TaskIdentifier[];
  concurrency: number;
  prefetch: number;
  inFlight: number;
  connectedAt: Date;
  lastHeardAt: Date;
}

function lineOf(l: TaskLogLine): LogLine {
  let fields: Record<string, unknown> | undefined;
  if (l.fieldsJson !== "") {
    try {
      fields = JSON.parse(l.fieldsJson);
    } catch {
      fields = undefined;
    }
  }
  return {
    id: l.id,
    jobId: l.jobId,
    taskId: l.taskId,
    attempt: l.attempt,
    level: LEVELS[l.level] ?? "info",
    time: l.time ? timestampDate(l.time) : new Date(0),
    message: l.message,
    ...(fields && { fields }),
  };
}

const barsOf = (bars: readonly JobProgressBar[]): ProgressBar[] => bars.map((b) => ({ label: b.label, done: Number(b.done), total: Number(b.total) }));

function runnerOf(r: RunnerMessage): RunnerInfo {
  return {
    id: r.id,
    name: r.name,
    host: r.host,
    cluster: r.cluster,
    tasks: r.tasks.map((t) => ({ name: t.name, version: t.version })),
    concurrency: r.concurrency,
    prefetch: r.prefetch,
    inFlight: r.inFlight,
    connectedAt: r.connectedAt ? timestampDate(r.connectedAt) : new Date(0),
    lastHeardAt: r.lastHeardAt ? timestampDate(r.lastHeardAt) : new Date(0),
  };
}

/** Task logs, job progress and connected runners. */
export class ObservabilityClient {
  constructor(private readonly api: ConnectClient<typeof ObservabilityService>) {}

  /** A job's log lines (of one task with `taskId`), oldest first, every page. */
  async logs(jobId: string, options: { taskId?: string; after?: string } = {}): Promise<LogLine[]> {
    const lines: LogLine[] = [];
    let after = options.after ?? "";
    for (;;) {
      const res = await this.api.getTaskLogs({ jobId, taskId: options.taskId ?? "", after, pageSize: 5_000 });
      lines.push(...res.lines.map(lineOf));
      if (res.nextPageToken === "") return lines;
      after = res.nextPageToken;
    }
  }

  /**
   * Follows a job until it finishes: new log lines as they arrive, its
   * progress and its state when they change.
   */
  async *follow(jobId: string, options: { taskId?: string; after?: string; signal?: AbortSignal } = {}): AsyncGenerator<JobUpdate> {
    const stream = this.api.tailJobLogs({ jobId, taskId: options.taskId ?? "", after: options.after ?? "" }, { signal: options.signal });
    for await (const res of stream) {
      yield {
        lines: res.lines.map(lineOf),
        ...(res.progress.length > 0 && { progress: barsOf(res.progress) }),
        ...(res.state !== 0 && { state: jobStateFromProto.get(res.state) }),
      };
    }
  }

  /** A job's state, progress, and the identifiers its ready tasks wait for in vain. */
  async progress(jobId: string): Promise<JobProgress> {
    const res = await this.api.getJobProgress({ jobId });
    return {
      state: jobStateFromProto.get(res.state) ?? "queued",
      progress: barsOf(res.progress),
      unrunnable: res.unrunnable.map((u) => ({
        cluster: u.cluster,
        identifier: { name: u.identifier?.name ?? "", version: u.identifier?.version ?? "" },
        count: u.count,
        runnerVersions: u.runnerVersions,
        message: u.message,
      })),
    };
  }

  /** The runners connected to the servers (of one cluster with `cluster`). */
  async runners(options: { cluster?: string } = {}): Promise<RunnerInfo[]> {
    const out: RunnerInfo[] = [];
    let pageToken = "";
    do {
      const res = await this.api.listRunners({ cluster: options.cluster ?? "", pageSize: 1_000, pageToken });
      out.push(...res.runners.map(runnerOf));
      pageToken = res.nextPageToken;
    } while (pageToken !== "");
    return out;
  }
}
