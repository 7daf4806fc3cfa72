import { create } from "@bufbuild/protobuf";
import { type TaskSubmission, TaskSubmissionSchema } from "../../gen/sluice/v1/task_pb.js";
import { type CacheBackend, JobCache } from "../sdk/cache/cache.js";
import { triggerOf } from "../sdk/storage.js";
import type { PathStatus, TaskPaths } from "../sdk/paths.js";
import { QueueName } from "../sdk/queue-name.js";
import { splitSiteBound } from "../wire/sites.js";
import { type FileAccess, PathPages, StatusReporter } from "./file-context.js";
import {
  type ExecutionContext,
  type ProgressTracker,
  type SubtaskHandle,
  type SubtaskOptions,
  type Task,
  type TaskLogger,
  identifierOf,
  policyFields,
  serializeInput,
} from "../sdk/task.js";
import type { ConsoleSink } from "./console-capture.js";
import { LogLevel, type LogSource, type TelemetryBuffer } from "./telemetry-buffer.js";

/** Where a context's log lines and progress go. */
export interface TelemetryTarget {
  readonly buffer: TelemetryBuffer;
  /** Also writes each line to the runner's own output, prefixed with the job and task (null: not). */
  readonly echo: ((level: LogLevel, line: string) => void) | null;
}

const MAX_LABEL_CHARS = 200;

/** Where a context gets its abort signal, made only if the task asks for it. */
export interface SignalSource {
  readonly signal: AbortSignal;
}

/** Where a runner is: what its task contexts tell tasks about their queue and how they reach the file service. */
export interface RunnerPlace {
  site: string;
  cluster: string;
  files: FileAccess | null;
}

const NONE: readonly TaskSubmission[] = Object.freeze([]);

/**
 * The context of one task attempt; collects the subtasks it submits. Its
 * signal and job cache are made on first use: most tasks use neither, and an
 * AbortController per task was a tenth of a runner's CPU time on short tasks.
 */
export class TaskContext implements ExecutionContext, LogSource, ConsoleSink {
  /** Made on the first submit: most tasks submit none. */
  private submitted: TaskSubmission[] | null = null;
  private cache: JobCache | null = null;
  private taskLogger: TaskLogger | null = null;
  logChars = 0;
  logDropped = 0;
  /** The trace context of the span executing the task, passed to its subtasks ("" when untraced). */
  traceparent = "";
  private reporter: StatusReporter | null = null;

  constructor(
    readonly jobId: string,
    readonly taskId: string,
    readonly attempt: number,
    private readonly signals: SignalSource,
    private readonly cacheBackend: CacheBackend,
    /** The runner's site, cluster and file service, shared by its contexts. */
    private readonly place: RunnerPlace | null = null,
    private readonly taskName = "",
    /** Where its log lines and progress go (none: a context outside a runner). */
    private readonly telemetry: TelemetryTarget | null = null,
  ) {}

  /** A line of this attempt's log (from the logger or the console). */
  write(level: LogLevel, message: string, fields?: Record<string, unknown>): void {
    if (!this.telemetry) return;
    this.telemetry.buffer.line(this, level, message, fields);
    if (this.telemetry.echo) {
      const extra = fields && Object.keys(fields).length > 0 ? ` ${safeJson(fields)}` : "";
      this.telemetry.echo(level, `[job ${this.jobId} task ${this.taskId}] ${message}${extra}`);
    }
  }

  get logger(): TaskLogger {
    this.taskLogger ??= {
      debug: (m, f) => this.write(LogLevel.DEBUG, String(m), f),
      info: (m, f) => this.write(LogLevel.INFO, String(m), f),
      warn: (m, f) => this.write(LogLevel.WARN, String(m), f),
      error: (m, f) => this.write(LogLevel.ERROR, String(m), f),
    };
    return this.taskLogger;
  }

  progress(label: string, total?: number): ProgressTracker {
    if (typeof label !== "string" || label.length === 0 || label.length > MAX_LABEL_CHARS) {
      throw new RangeError(`a progress label is 1 to ${MAX_LABEL_CHARS} characters, got ${JSON.stringify(label)}`);
    }
    const buffer = this.telemetry?.buffer;
    const jobId = this.jobId;
    const count = (n: number, what: string) => {
      if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`progress ${what} takes a non-negative integer, got ${n}`);
      return n;
    };
    if (total !== undefined && count(total, "total") > 0) buffer?.addProgress(jobId, label, 0, total);
    return {
      add: (n = 1) => {
        if (count(n, "add") > 0) buffer?.addProgress(jobId, label, n, 0);
      },
      addTotal: (n) => {
        if (count(n, "addTotal") > 0) buffer?.addProgress(jobId, label, 0, n);
      },
    };
  }

  get queue(): QueueName {
    return new QueueName(this.place?.site ?? "", this.place?.cluster ?? "", splitSiteBound(this.taskName).name);
  }

  get paths(): TaskPaths {
    return new PathPages(this.fileAccess(), this, this.status as StatusReporter, false);
  }

  allPaths(): TaskPaths {
    return new PathPages(this.fileAccess(), this, this.status as StatusReporter, true);
  }

  get status(): PathStatus {
    this.reporter ??= new StatusReporter(this.fileAccess(), this);
    return this.reporter;
  }

  /** Sends the path states not sent yet: the runner awaits it before it reports the task's result. */
  settle(): Promise<void> | undefined {
    return this.reporter?.flush();
  }

  private fileAccess(): FileAccess {
    const files = this.place?.files;
    if (!files) throw new Error("this runner cannot reach the file service: make it with client.runner(...)");
    return files;
  }

  get lease(): number {
    return this.attempt;
  }

  /** The subtasks submitted so far, in order (empty: none). */
  get subtasks(): readonly TaskSubmission[] {
    return this.submitted ?? NONE;
  }

  get signal(): AbortSignal {
    return this.signals.signal;
  }

  get jobCache(): JobCache {
    this.cache ??= JobCache.forJob(this.cacheBackend, this.jobId);
    return this.cache;
  }

  submitSubtask(task: Task<any>, options: SubtaskOptions = {}): SubtaskHandle {
    const dependsOn = (options.dependsOn ?? []).map((h) => {
      if (h.owner !== this) {
        throw new Error("dependsOn names a subtask that this task did not submit: a subtask can only depend on its siblings");
      }
      return h.index;
    });
    const maxRetries = options.maxRetries ?? 0;
    if (!Number.isInteger(maxRetries) || maxRetries < 0 || maxRetries > 100) {
      throw new RangeError(`maxRetries must be an integer from 0 to 100, got ${maxRetries}`);
    }
    const list = (this.submitted ??= []);
    list.push(
      create(TaskSubmissionSchema, {
        identifier: identifierOf(task),
        input: serializeInput(task),
        dependsOn,
        maxRetries,
        cluster: options.cluster ?? "",
        display: options.display ?? "",
        trigger: triggerOf(task),
        traceparent: this.traceparent,
        ...policyFields(options),
      }),
    );
    return { index: list.length - 1, owner: this };
  }

  submitSubtasks(tasks: readonly Task<any>[], options?: SubtaskOptions): SubtaskHandle[] {
    return tasks.map((t) => this.submitSubtask(t, options));
  }
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch {
    return "[fields that are not JSON]";
  }
}
