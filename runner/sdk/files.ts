import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Client as ConnectClient } from "@connectrpc/connect";
import {
  FileService,
  type FileTaskStatus as FileTaskStatusMessage,
  PathObjectSchema,
  PathState,
  type PathSummary,
  type SubmitFileWorkflowRequestSchema,
} from "../../gen/sluice/v1/file_service_pb.js";
import { StorageEventType } from "../../gen/sluice/v1/storage_pb.js";
import { TaskSubmissionSchema } from "../../gen/sluice/v1/task_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { pathObjectOf } from "../wire/path-objects.js";
import { type Job, jobFromMessage } from "./jobs.js";
import { PATH_STATE_NAMES, type PathObject, type PathStateName } from "./paths.js";
import type { StorageLocation, StorageTrigger } from "./storage.js";
import { type Task, type TaskClass, identifierOf, serializeInput } from "./task.js";
import { taskStateFromProto, type TaskStateName } from "../wire/states.js";

/** Paths per inline submit or staged page. */
const PAGE = 10_000;

/** Where a file workflow's input paths come from: exactly one. */
export interface FileWorkflowOptions {
  /** Paths (strings or path objects), from an array or any (async) iterable: sent page by page. */
  paths?: Iterable<string | PathObject> | AsyncIterable<string | PathObject>;
  /** The objects of a registered storage location, listed by the server when the job is submitted. */
  listing?: { location: StorageLocation | string; prefix?: string; glob?: string };
  /** The object of a storage event (a storage event task's `this.trigger`). */
  event?: StorageTrigger;
  /** The cluster slug ("default" when omitted). */
  cluster?: string;
  /** Paths per chunk (default 10,000): each chunk runs through the tasks on its own, in parallel. */
  chunkSize?: number;
  /** The site whose runners must run the tasks. */
  site?: string;
  /** Retries per task after it throws (default 0). */
  maxRetries?: number;
}

export interface FileWorkflowJob {
  job: Job;
  inputTotal: number;
  chunks: number;
}

export type PathSummaryCounts = Record<PathStateName, number>;

/** One file task of a job: the seed's `status` without its lists. */
export interface FileTaskInfo {
  taskId: string;
  task: string;
  step: number;
  chunk: number;
  inputTotal: number;
  summary: PathSummaryCounts;
  started?: Date;
  state: TaskStateName;
}

/** One task of a workflow over all its chunks. */
export interface FileStepInfo {
  task: string;
  step: number;
  inputTotal: number;
  summary: PathSummaryCounts;
  started?: Date;
}

export interface FileJob {
  job: Job;
  tasks: FileTaskInfo[];
  steps: FileStepInfo[];
  site?: string;
}

/** A path as listed for a job: with its task and the state it reported. */
export interface ReportedPath extends PathObject {
  taskId: string;
}

export interface PathQuery {
  /** A task id, or a task name or step number (every chunk of it); all tasks when omitted. */
  task?: string;
  /** Only these states (default: every reported path). */
  states?: PathStateName[];
  /** The tasks' input paths instead of what they reported. */
  input?: boolean;
  /** Paths per page fetched (default 1,000). */
  pageSize?: number;
}

/** The seed's payload of a file task (Ngenea Hub's FileActionStatus.dump()). */
export interface FilePayload {
  jobid: number | string;
  /** The paths passed on: processed or skipped. */
  paths: PathObject[];
  status: {
    task: string;
    input_paths: PathObject[];
    input_total: number;
    summary: PathSummaryCounts;
    details: Record<PathStateName, PathObject[]>;
    /** ISO 8601 with its UTC offset, e.g. 2023-04-25T14:56:31.253+00:00; null if it never started. */
    started: string | null;
  };
}

const STATE_TO: Record<PathStateName, PathState> = {
  processed: PathState.PROCESSED,
  skipped: PathState.SKIPPED,
  aborted: PathState.ABORTED,
  failures: PathState.FAILURES,
  inprogress: PathState.INPROGRESS,
};

function summaryOf(s: PathSummary | undefined): PathSummaryCounts {
  return {
    processed: Number(s?.processed ?? 0),
    skipped: Number(s?.skipped ?? 0),
    aborted: Number(s?.aborted ?? 0),
    failures: Number(s?.failures ?? 0),
    inprogress: Number(s?.inprogress ?? 0),
  };
}

function taskInfoOf(t: FileTaskStatusMessage): FileTaskInfo {
  return {
    taskId: t.taskId,
    task: t.task,
    step: t.step,
    chunk: t.chunk,
    inputTotal: Number(t.inputTotal),
    summary: summaryOf(t.summary),
    started: t.started ? timestampDate(t.started) : undefined,
    state: taskStateFromProto.get(t.state) ?? "queued",
  };
}

/** A path object as the API takes it. */
function pathMessage(p: string | PathObject, i: number) {
  if (typeof p === "string") return create(PathObjectSchema, { path: p });
  if (!p || typeof p.path !== "string") throw new TypeError(`path ${i} has no "path": every path object needs one`);
  const { path, size, message, state: _state, ...extra } = p;
  return create(PathObjectSchema, {
    path,
    size: size === undefined ? undefined : BigInt(size),
    message: Array.isArray(message) ? message.join("\n") : (message ?? ""),
    // biome-ignore lint: JSON values of the path object's other keys
    extra: Object.keys(extra).length > 0 ? (JSON.parse(JSON.stringify(extra)) as any) : undefined,
  });
}

/** `Date` as ISO 8601 with "+00:00", as Python's isoformat writes an aware UTC time. */
const isoWithOffset = (d: Date) => d.toISOString().replace("Z", "+00:00");

/**
 * Submits file workflows and reads what their tasks did, in the API's terms
 * or in the seed's payload format.
 */
export class FileClient {
  constructor(private readonly api: ConnectClient<typeof FileService>) {}

  /**
   * Submits a job that runs `tasks` one after the other over its paths, in
   * chunks: the paths a task marks processed or skipped go to the next one.
   *
   * ```ts
   * await client.files().submitWorkflow("ingest", [new Verify(), new Transcode({ codec: "av1" }), Index], { paths });
   * ```
   */
  async submitWorkflow(name: string, tasks: readonly (Task<any> | TaskClass)[], options: FileWorkflowOptions): Promise<FileWorkflowJob> {
    if (tasks.length === 0) throw new TypeError("a file workflow needs at least one task");
    const sources = [options.paths, options.listing, options.event].filter((s) => s !== undefined).length;
    if (sources !== 1) throw new TypeError("give exactly one of paths, listing and event");
    const submissions = tasks.map((t) => {
      const task = typeof t === "function" ? new t() : t;
      return create(TaskSubmissionSchema, { identifier: identifierOf(task), input: serializeInput(task), maxRetries: options.maxRetries ?? 0 });
    });
    const req: MessageInitShape<typeof SubmitFileWorkflowRequestSchema> = {
      name,
      cluster: options.cluster ?? "",
      tasks: submissions,
      chunkSize: options.chunkSize ?? 0,
      site: options.site ?? "",
    };
    if (options.paths !== undefined) {
      req.paths = await this.pathsSource(options.paths);
    } else if (options.listing) {
      const l = options.listing;
      req.paths = { case: "listing", value: { locationId: typeof l.location === "string" ? l.location : l.location.id, prefix: l.prefix ?? "", glob: l.glob ?? "" } };
    } else {
      const e = options.event!;
      req.paths = {
        case: "event",
        value: {
          type: e.type === "MODIFIED" ? StorageEventType.MODIFIED : StorageEventType.CREATED,
          location: { id: e.storage.id },
          key: e.key,
          version: e.version,
        },
      };
    }
    const res = await this.api.submitFileWorkflow(req);
    return { job: jobFromMessage(res.job!), inputTotal: Number(res.inputTotal), chunks: res.chunks };
  }

  /** Inline when the paths fit one page, else staged page by page: never all of them in memory. */
  private async pathsSource(paths: NonNullable<FileWorkflowOptions["paths"]>): Promise<MessageInitShape<typeof SubmitFileWorkflowRequestSchema>["paths"]> {
    let page: ReturnType<typeof pathMessage>[] = [];
    let listId = "";
    let i = 0;
    for await (const p of paths as AsyncIterable<string | PathObject>) {
      page.push(pathMessage(p, i++));
      if (page.length === PAGE) {
        listId = (await this.api.stagePaths({ listId, paths: page })).listId;
        page = [];
      }
    }
    if (listId === "") return { case: "inline", value: { paths: page } };
    if (page.length > 0) await this.api.stagePaths({ listId, paths: page });
    return { case: "stagedListId", value: listId };
  }

  /** The file tasks of a job with their counts, per chunk and per step (the summaries added up). */
  async job(jobId: string): Promise<FileJob> {
    const res = await this.api.getFileJob({ jobId });
    return {
      job: jobFromMessage(res.job!),
      tasks: res.tasks.map(taskInfoOf),
      steps: res.steps.map((s) => ({
        task: s.task,
        step: s.step,
        inputTotal: Number(s.inputTotal),
        summary: summaryOf(s.summary),
        started: s.started ? timestampDate(s.started) : undefined,
      })),
      site: res.site || undefined,
    };
  }

  /** The paths of a job's file tasks, page by page. */
  async *paths(jobId: string, query: PathQuery = {}): AsyncGenerator<ReportedPath> {
    const states = (query.states ?? []).map((s) => {
      if (!PATH_STATE_NAMES.includes(s)) throw new TypeError(`unknown path state ${JSON.stringify(s)}: use ${PATH_STATE_NAMES.join(", ")}`);
      return STATE_TO[s];
    });
    let pageToken = "";
    do {
      const res = await this.api.listFilePaths({ jobId, task: query.task ?? "", states, input: query.input ?? false, pageSize: query.pageSize ?? 0, pageToken });
      for (const p of res.paths) yield { ...pathObjectOf(p, !query.input), taskId: p.taskId };
      pageToken = res.nextPageToken;
    } while (pageToken !== "");
  }

  /**
   * A file task's result in the seed's payload format. `task` is a task id, or
   * a task's name or step number: then the chunks of that task are added up
   * into one payload. Its lists are read page by page and held in memory:
   * for very large tasks, page with `paths()` instead.
   */
  async payload(jobId: string, task: string): Promise<FilePayload> {
    const info = await this.job(jobId);
    const chosen = info.tasks.filter((t) => t.taskId === task || t.task === task || String(t.step) === task);
    if (chosen.length === 0) throw new TypeError(`job ${jobId} has no file task ${JSON.stringify(task)}`);
    const strip = ({ taskId: _t, state: _s, ...p }: ReportedPath): PathObject => p;
    const details = Object.fromEntries(PATH_STATE_NAMES.map((s) => [s, [] as PathObject[]])) as Record<PathStateName, PathObject[]>;
    const passed: PathObject[] = [];
    const inputs: PathObject[] = [];
    const summary = Object.fromEntries(PATH_STATE_NAMES.map((s) => [s, 0])) as PathSummaryCounts;
    let started: Date | undefined;
    for (const t of chosen) {
      for await (const p of this.paths(jobId, { task: t.taskId, input: true, pageSize: 10_000 })) inputs.push(strip(p));
      for await (const p of this.paths(jobId, { task: t.taskId, pageSize: 10_000 })) {
        const state = p.state!;
        const obj = strip(p);
        if (state === "processed" || state === "skipped") passed.push(obj);
        details[state].push(obj.message === undefined ? obj : { ...obj, message: ([] as string[]).concat(obj.message) });
      }
      for (const s of PATH_STATE_NAMES) summary[s] += t.summary[s];
      if (t.started && (!started || t.started < started)) started = t.started;
    }
    const id = Number(jobId);
    return {
      jobid: Number.isSafeInteger(id) ? id : jobId,
      paths: passed,
      status: {
        task: chosen[0].task,
        input_paths: inputs,
        input_total: chosen.reduce((n, t) => n + t.inputTotal, 0),
        summary,
        details,
        started: started ? isoWithOffset(started) : null,
      },
    };
  }
}
