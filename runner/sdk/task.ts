import type { JobCache } from "./cache/cache.js";
import type { PathStatus, TaskPaths } from "./paths.js";
import type { QueueName } from "./queue-name.js";

/** Names a kind of task: its name and its version, "vMAJOR.MINOR". */
export interface TaskIdentifier {
  name: string;
  version: string;
}

/** The largest serialized task input the server accepts. */
export const MAX_TASK_INPUT_BYTES = 1024 * 1024;

/**
 * A unit of work. Subclass it, give it a static `identifier` (the name defaults
 * to the class name, the version to "v0.0") and implement `execute`. A task is
 * constructed from its input fields, which are serialized as JSON when it is
 * submitted and handed back to the constructor on the runner:
 *
 * ```ts
 * class Hello extends Task<{ who: string }> {
 *   static identifier = { name: "Hello", version: "v1.0" };
 *   execute(context: ExecutionContext) {
 *     console.log(`Hello ${this.input.who}`);
 *   }
 * }
 * new Hello({ who: "world" });
 * ```
 */
export abstract class Task<Input extends object = Record<string, unknown>> {
  static identifier?: Partial<TaskIdentifier>;

  /** The task's input fields. */
  readonly input: Input;

  constructor(input?: Input) {
    this.input = (input ?? {}) as Input;
  }

  /** Runs the task. Throwing fails this attempt; the task is retried up to its maxRetries. */
  abstract execute(context: ExecutionContext): void | Promise<void>;
}

/** Exponential backoff between a task's attempts (see RetryBackoff in task.proto). */
export interface RetryBackoff {
  /** The delay before the first retry, in ms. */
  initialDelayMs: number;
  /** What each delay is multiplied by for the next (default 2). */
  factor?: number;
  /** The longest delay, in ms (default one day). */
  maxDelayMs?: number;
}

/** Retry backoff and time limit of a task, as a submission's fields. */
export function policyFields(options: { retryBackoff?: RetryBackoff; timeoutMs?: number }) {
  const duration = (ms: number, what: string) => {
    if (!Number.isInteger(ms) || ms < 1) throw new RangeError(`${what} must be a whole number of milliseconds, at least 1, got ${ms}`);
    return { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 };
  };
  const b = options.retryBackoff;
  return {
    retryBackoff: b
      ? {
          initialDelay: duration(b.initialDelayMs, "retryBackoff.initialDelayMs"),
          factor: b.factor ?? 2,
          maxDelay: b.maxDelayMs === undefined ? undefined : duration(b.maxDelayMs, "retryBackoff.maxDelayMs"),
        }
      : undefined,
    timeout: options.timeoutMs === undefined ? undefined : duration(options.timeoutMs, "timeoutMs"),
  };
}

/** Options for a subtask. */
export interface SubtaskOptions {
  /** Wait between attempts, growing exponentially (default: retry at once). */
  retryBackoff?: RetryBackoff;
  /** The longest an attempt may run, in ms: its signal is aborted then and it fails (default: no limit). */
  timeoutMs?: number;
  /** Subtasks, submitted earlier by the same task, that must be computed first. */
  dependsOn?: readonly SubtaskHandle[];
  /** How often the subtask is retried after it throws before the job fails. */
  maxRetries?: number;
  /** Run it on another cluster (the parent's by default). */
  cluster?: string;
  /** A name to show for the subtask instead of its identifier. */
  display?: string;
}

/** A subtask submitted from `execute`, to name in another subtask's `dependsOn`. */
export interface SubtaskHandle {
  readonly index: number;
  readonly owner: object;
}

/**
 * Log lines kept with a task attempt on the server (`sluice jobs logs`), with
 * optional structured fields. console.log and friends called while the task
 * executes land there too.
 */
export interface TaskLogger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** A job's progress under one label, added to by its tasks. */
export interface ProgressTracker {
  /** Adds `n` units (default 1) of work done. */
  add(n?: number): void;
  /** Adds `n` units to the work to do (each task of a job may add its share). */
  addTotal(n: number): void;
}

/** What a task sees of its execution. */
export interface ExecutionContext {
  /** The job the task belongs to. */
  readonly jobId: string;
  /** The task's id. */
  readonly taskId: string;
  /** Which lease (attempt) this is, from 1. */
  readonly attempt: number;
  /** Aborted when the task's job is cancelled or fails, or its lease is lost. */
  readonly signal: AbortSignal;
  /** The job's cache: bytes by key, shared by the job's tasks (on the runner's cache backend). */
  readonly jobCache: JobCache;
  /**
   * Submits a subtask. Subtasks are created only if this task completes
   * successfully, atomically with its completion.
   */
  submitSubtask(task: Task<any>, options?: SubtaskOptions): SubtaskHandle;
  /** Submits several subtasks with the same options. */
  submitSubtasks(tasks: readonly Task<any>[], options?: SubtaskOptions): SubtaskHandle[];
  /** Log lines kept with this attempt (`sluice jobs logs JOB`). */
  readonly logger: TaskLogger;
  /**
   * The job's progress under `label` (`sluice jobs show` draws a bar per
   * label); `total` adds that much to the work to do, as `addTotal` does.
   */
  progress(label: string, total?: number): ProgressTracker;
  /**
   * For a task of a file workflow: its input paths without a final state yet
   * (all of them on a first attempt; on a retry, those the earlier attempts
   * did not report), read from the server page by page.
   */
  readonly paths: TaskPaths;
  /** Every input path, with `state` set on those an earlier attempt reported. */
  allPaths(): TaskPaths;
  /** Where a file task reports a state per path (see FileTask). */
  readonly status: PathStatus;
  /** The queue the task runs on: site, cluster and function, `site.queue#function`. */
  readonly queue: QueueName;
}

/** A class extending Task, as registered with a runner. */
export type TaskClass<T extends Task<any> = Task<any>> = (new (input?: any) => T) & {
  identifier?: Partial<TaskIdentifier>;
  readonly name: string;
};

const VERSION = /^v(\d{1,6})\.(\d{1,6})$/;

/** The identifier of a task class (or of a task's class), with defaults applied and checked. */
export function identifierOf(task: TaskClass | Task<any>): TaskIdentifier {
  const cls = (typeof task === "function" ? task : task.constructor) as TaskClass;
  const name = cls.identifier?.name ?? cls.name;
  const version = cls.identifier?.version ?? "v0.0";
  if (!name || name.length > 200 || /\s/.test(name)) {
    throw new TypeError(`task name ${JSON.stringify(name)} of class ${cls.name} is invalid: use 1 to 200 characters without whitespace`);
  }
  if (!VERSION.test(version)) {
    throw new TypeError(`version ${JSON.stringify(version)} of task "${name}" is invalid: use "vMAJOR.MINOR", e.g. "v1.0"`);
  }
  return { name, version };
}

export function parseVersion(version: string): { major: number; minor: number } {
  const m = VERSION.exec(version);
  if (!m) throw new TypeError(`version ${JSON.stringify(version)} is invalid: use "vMAJOR.MINOR", e.g. "v1.0"`);
  return { major: Number(m[1]), minor: Number(m[2]) };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Serializes a task's input fields as JSON bytes, checking the size limit. */
export function serializeInput(task: Task<any>): Uint8Array {
  const json = JSON.stringify(task.input);
  if (json === undefined) throw new TypeError(`the input of task ${identifierOf(task).name} cannot be serialized as JSON`);
  const bytes = encoder.encode(json);
  if (bytes.length > MAX_TASK_INPUT_BYTES) {
    throw new RangeError(
      `the input of task ${identifierOf(task).name} is ${bytes.length} bytes; the limit is ${MAX_TASK_INPUT_BYTES} bytes (1 MiB): pass large data through the job cache`,
    );
  }
  return bytes;
}

export function deserializeInput(bytes: Uint8Array): object {
  return JSON.parse(decoder.decode(bytes)) as object;
}
