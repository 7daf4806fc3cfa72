import { randomUUID } from "node:crypto";
import { type MessageInitShape, create, toJson } from "@bufbuild/protobuf";
import { ValueSchema, timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Client as ConnectClient } from "@connectrpc/connect";
import type { JobState, Job as JobMessage } from "../../gen/sluice/v1/job_pb.js";
import { JobService, type SubmitJobRequestSchema, type SubmitJobsResponse } from "../../gen/sluice/v1/job_service_pb.js";
import { type Task as TaskMessage, type TaskSubmission, TaskSubmissionSchema } from "../../gen/sluice/v1/task_pb.js";
import { TRACING_CONFIGURED, startTracing } from "../wire/tracing.js";
import { WriteObject } from "./builtins.js";
import { SITE_PATTERN, siteBoundName } from "../wire/sites.js";
import { StorageLocation, triggerOf } from "./storage.js";
import { SubmitChannel } from "./submit-stream.js";
import { type RetryBackoff, type Task, type TaskIdentifier, identifierOf, policyFields, serializeInput } from "./task.js";
import { JOB_STATE_NAMES, type JobStateName, type TaskStateName, jobStateFromProto, jobStateToProto, taskStateFromProto } from "../wire/states.js";

export type { JobStateName, TaskStateName };


export interface Job {
  id: string;
  name: string;
  cluster: string;
  state: JobStateName;
  createdAt: Date;
  startedAt?: Date;
  finishedAt?: Date;
  /** For a job submitted with `startAt`: when it is (or was) due. */
  startAt?: Date;
  /** For a job a recurrent task submitted: its id (undefined once the recurrent task is deleted). */
  recurrentTaskId?: string;
  /** For a job a cron trigger submitted: the tick it is for. */
  tickAt?: Date;
  taskCounts: Record<TaskStateName, number>;
}

export interface TaskInfo {
  id: string;
  jobId: string;
  parentId?: string;
  identifier: TaskIdentifier;
  display?: string;
  state: TaskStateName;
  /** The task's input, parsed from its JSON. */
  input: unknown;
  dependsOn: string[];
  maxRetries: number;
  failures: number;
  attempts: number;
  cluster: string;
  lastError?: { message: string; stack: string; attempt: number };
  createdAt: Date;
  startedAt?: Date;
  finishedAt?: Date;
  /** The latest status a process task posted to its job hook, and when. */
  hookStatus?: { value: unknown; at: Date };
  /** The tails of a process task's standard output and error, from its latest attempt that had any. */
  output?: { stdout: string; stderr: string };
}

export interface JobDetails extends Job {
  tasks: TaskInfo[];
}

export interface SubmitOptions {
  /** Cluster slug; "default" when omitted. */
  cluster?: string;
  /** How often the root task is retried after it throws. */
  maxRetries?: number;
  /**
   * Keep the job scheduled until this time, then queue it (within a second).
   * `cancel()` before then means it never runs. A time in the past queues it at once.
   */
  startAt?: Date;
  /**
   * Makes the submit idempotent: another submit with this key creates nothing
   * and returns this job (default: a new UUID per submit, which the SDK sends
   * again, with the same key, when an answer is lost).
   */
  idempotencyKey?: string;
  /** Wait between the root task's attempts, growing exponentially (default: retry at once). */
  retryBackoff?: RetryBackoff;
  /** The longest an attempt of the root task may run, in ms: its signal is aborted then and it fails (default: no limit). */
  timeoutMs?: number;
  /** The site whose runners must run the task (a runner's `site` option); any runner when omitted. */
  site?: string;
}

/** An object write scheduled with `scheduleObjectWrite`. */
export interface ObjectWrite {
  /** A registered storage location: the server hands the runner the location it registered under this id. */
  location: StorageLocation;
  /** The object's key: a relative path with "/" between folders. */
  key: string;
  content: string | Uint8Array;
  /** When to write it. */
  at: Date;
  /** The job's name (default: "write KEY"). */
  name?: string;
  cluster?: string;
  /** Retries if the write fails (default 3). */
  maxRetries?: number;
}

export interface JobFilter {
  states?: JobStateName[];
  cluster?: string;
  /** Jobs whose name contains this text, ignoring case. */
  name?: string;
  createdAfter?: Date;
  createdBefore?: Date;
  /** At most this many jobs, newest first (default 100). */
  limit?: number;
}


/** The API's value of a job state, checked: a JavaScript caller may pass any string. */
function jobStateOf(name: JobStateName): JobState {
  const state = Object.hasOwn(jobStateToProto, name) ? jobStateToProto[name] : undefined;
  if (state === undefined) throw new TypeError(`${JSON.stringify(name)} is not a job state; use ${JOB_STATE_NAMES.join(", ")}`);
  return state;
}

const date = (t: Timestamp | undefined) => (t ? timestampDate(t) : undefined);
const decoder = new TextDecoder();

export function jobFromMessage(m: JobMessage): Job {
  const c = m.taskCounts;
  return {
    id: m.id,
    name: m.name,
    cluster: m.cluster,
    state: jobStateFromProto.get(m.state) ?? "queued",
    createdAt: date(m.createdAt)!,
    startedAt: date(m.startedAt),
    finishedAt: date(m.finishedAt),
    startAt: date(m.startAt),
    recurrentTaskId: m.recurrentTaskId || undefined,
    tickAt: date(m.tickAt),
    taskCounts: {
      queued: c?.queued ?? 0,
      running: c?.running ?? 0,
      computed: c?.computed ?? 0,
      failed: c?.failed ?? 0,
      cancelled: c?.cancelled ?? 0,
    },
  };
}

function taskFromMessage(m: TaskMessage): TaskInfo {
  let input: unknown;
  try {
    input = JSON.parse(decoder.decode(m.input));
  } catch {
    input = m.input;
  }
  return {
    id: m.id,
    jobId: m.jobId,
    parentId: m.parentId || undefined,
    identifier: { name: m.identifier?.name ?? "", version: m.identifier?.version ?? "" },
    display: m.display || undefined,
    state: taskStateFromProto.get(m.state) ?? "queued",
    input,
    dependsOn: m.dependsOn,
    maxRetries: m.maxRetries,
    failures: m.failures,
    attempts: m.attempts,
    cluster: m.cluster,
    lastError: m.lastError ? { message: m.lastError.message, stack: m.lastError.stack, attempt: m.lastError.attempt } : undefined,
    createdAt: date(m.createdAt)!,
    startedAt: date(m.startedAt),
    finishedAt: date(m.finishedAt),
    hookStatus: m.hookStatusAt ? { value: m.hookStatus ? toJson(ValueSchema, m.hookStatus) : null, at: date(m.hookStatusAt)! } : undefined,
    output: m.stdoutTail || m.stderrTail ? { stdout: m.stdoutTail, stderr: m.stderrTail } : undefined,
  };
}

type SubmitInit = MessageInitShape<typeof SubmitJobRequestSchema>;

/** The most jobs, and about the most bytes of task input, sent in one SubmitJobs call. */
const MAX_BATCH_JOBS = 1000;
const MAX_BATCH_BYTES = 16 * 1024 * 1024;

/** "failed_precondition" -> Code.FailedPrecondition (Unknown for names it does not know). */
function codeFromName(name: string): Code {
  const camel = name.replace(/(^|_)([a-z])/g, (_, __, c: string) => c.toUpperCase());
  const code = (Code as unknown as Record<string, number>)[camel];
  return typeof code === "number" ? code : Code.Unknown;
}

/**
 * Batch errors after which the SDK sends a batch again (with the same
 * idempotency keys): the answer was lost or the server could not reach its
 * database. Tried this often at most, waiting longer each time.
 */
const RESEND_CODES = new Set([Code.Unavailable, Code.Canceled, Code.Aborted, Code.Unknown, Code.DeadlineExceeded]);
const RESEND_ATTEMPTS = 6;
const RESEND_FIRST_DELAY_MS = 100;
const RESEND_MAX_DELAY_MS = 3_000;

/**
 * How long the submit stream stays open after its last answer when submits
 * come steadily (the batch before the last was sent at most this long before
 * it): a program submitting tens of jobs a second keeps one stream instead of
 * opening one per job (at 50 jobs a second that cost the server half as much
 * CPU again per job, and the submitter twice as much); a program that submits
 * once closes it at once, and one that stops submitting can exit this much
 * later.
 */
const STREAM_LINGER_MS = 100;

/**
 * Sends submits in batches. Nothing waits on a timer: submits made while no
 * batch is on its way go at once (those made in the same tick together), and
 * those made while one is on its way go together when it is answered: one
 * message and one transaction for all of them. Each submit still resolves
 * with its own job or rejects with its own error.
 *
 * Batches go on a SubmitStream that stays open while submits keep coming and
 * is closed when none is left (STREAM_LINGER_MS later when they came
 * steadily).
 */
class SubmitBatcher {
  private pending: { req: SubmitInit; bytes: number; attempts: number; resolve: (job: JobMessage) => void; reject: (e: unknown) => void }[] = [];
  private retryDelay = RESEND_FIRST_DELAY_MS;
  private sending = false;
  private channel: SubmitChannel | null = null;
  /** When the last batch was sent (performance.now()), and whether it came soon after the one before. */
  private lastSentAt = Number.NEGATIVE_INFINITY;
  private steady = false;
  private linger: NodeJS.Timeout | null = null;

  constructor(private readonly api: ConnectClient<typeof JobService>) {}

  submit(req: SubmitInit, bytes: number): Promise<JobMessage> {
    return new Promise((resolve, reject) => {
      this.pending.push({ req, bytes, attempts: 0, resolve, reject });
      if (!this.sending) {
        this.sending = true;
        if (this.linger) {
          clearTimeout(this.linger);
          this.linger = null;
        }
        queueMicrotask(() => void this.send());
      }
    });
  }

  private take() {
    let n = 0;
    let bytes = 0;
    while (n < this.pending.length && n < MAX_BATCH_JOBS && (n === 0 || bytes + this.pending[n].bytes <= MAX_BATCH_BYTES)) {
      bytes += this.pending[n].bytes;
      n++;
    }
    return this.pending.splice(0, n);
  }

  /** The server's answer to a batch, on the open stream or a new one. */
  private submitJobs(jobs: SubmitInit[]): Promise<SubmitJobsResponse> {
    if (!this.channel?.open) this.channel = new SubmitChannel(this.api);
    return this.channel.submit({ jobs });
  }

  private async send(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const batch = this.take();
        const now = performance.now();
        this.steady = now - this.lastSentAt <= STREAM_LINGER_MS;
        this.lastSentAt = now;
        try {
          const res = await this.submitJobs(batch.map((b) => b.req));
          batch.forEach((b, i) => {
            const r = res.results[i]?.result;
            if (r?.case === "job") b.resolve(r.value);
            else if (r?.case === "refused") b.reject(new ConnectError(r.value.message, codeFromName(r.value.code)));
            else b.reject(new ConnectError(`the server sent no result for job ${i} of the batch`, Code.Internal));
          });
          this.retryDelay = RESEND_FIRST_DELAY_MS;
        } catch (e) {
          // The answer was lost (or the server could not write): every submit
          // carries its key, so sending them again creates nothing twice.
          const again = RESEND_CODES.has(ConnectError.from(e).code) ? batch.filter((b) => ++b.attempts < RESEND_ATTEMPTS) : [];
          for (const b of batch) if (!again.includes(b)) b.reject(e);
          if (again.length > 0) {
            this.pending.unshift(...again);
            await new Promise((resolve) => setTimeout(resolve, this.retryDelay));
            this.retryDelay = Math.min(this.retryDelay * 2, RESEND_MAX_DELAY_MS);
          }
        }
      }
    } finally {
      this.sending = false;
      // Nothing left to send: the stream closes (an idle open stream would
      // keep the process alive), after a while if submits came steadily; the
      // next submit opens another.
      if (this.steady && this.channel) {
        this.linger = setTimeout(() => this.closeIdle(), STREAM_LINGER_MS).unref();
      } else {
        this.closeIdle();
      }
    }
  }

  private closeIdle(): void {
    this.linger = null;
    if (this.sending) return;
    this.channel?.end();
    this.channel = null;
  }
}

/** Submits, reads, lists, cancels and retries jobs. */
export class JobClient {
  private readonly batcher: SubmitBatcher;

  constructor(private readonly api: ConnectClient<typeof JobService>) {
    this.batcher = new SubmitBatcher(api);
  }

  /** Submits a job whose root task is `task`. */
  async submit(name: string, task: Task<any>, options: SubmitOptions = {}): Promise<Job> {
    const identifier = identifierOf(task);
    if (options.site !== undefined) {
      if (!SITE_PATTERN.test(options.site)) throw new TypeError(`site ${JSON.stringify(options.site)} is invalid: use 1 to 100 letters, digits, "_" or "-"`);
      identifier.name = siteBoundName(identifier.name, options.site);
    }
    const root = create(TaskSubmissionSchema, {
      identifier,
      display: options.site !== undefined ? identifierOf(task).name : "",
      input: serializeInput(task),
      maxRetries: options.maxRetries ?? 0,
      trigger: triggerOf(task),
      ...policyFields(options),
    });
    // With OTEL_EXPORTER_OTLP_ENDPOINT set, the job's trace starts here.
    const span = TRACING_CONFIGURED ? (await startTracing("sluice-client"))?.span("sluice.submit", undefined, "client") : undefined;
    if (span) root.traceparent = span.traceparent;
    if (!span) return this.submitRoot(name, root, options);
    try {
      const job = await this.submitRoot(name, root, options);
      span.setAttribute("sluice.job_id", job.id);
      span.end();
      return job;
    } catch (e) {
      span.end(e as Error);
      throw e;
    }
  }

  private async submitRoot(name: string, root: TaskSubmission, options: SubmitOptions): Promise<Job> {
    const job = await this.batcher.submit(
      {
        name,
        cluster: options.cluster ?? "default",
        tasks: [root],
        startAt: options.startAt ? timestampFromDate(options.startAt) : undefined,
        idempotencyKey: options.idempotencyKey ?? randomUUID(),
      },
      root.input.length,
    );
    return jobFromMessage(job);
  }

  /**
   * Schedules `content` to be written to `key` in a folder at `at`, as a job of
   * the built-in task `sluice.WriteObject`, which every runner of the cluster
   * can run: it shows up, retries and cancels like any job.
   */
  async scheduleObjectWrite(write: ObjectWrite): Promise<Job> {
    if (!(write.location instanceof StorageLocation) || write.location.id === "") {
      throw new TypeError("scheduleObjectWrite: location must be a registered StorageLocation (from registerStorageLocation or storageLocations())");
    }
    const content = typeof write.content === "string" ? new TextEncoder().encode(write.content) : write.content;
    return this.submit(
      write.name ?? `write ${write.key}`,
      new WriteObject({ content: Buffer.from(content).toString("base64") }).once(write.location, write.key),
      { cluster: write.cluster, maxRetries: write.maxRetries ?? 3, startAt: write.at },
    );
  }

  /** A job with all its tasks. */
  async get(id: string): Promise<JobDetails> {
    const res = await this.api.getJob({ id });
    return { ...jobFromMessage(res.job!), tasks: res.tasks.map(taskFromMessage) };
  }

  /** Jobs matching the filter, newest first. */
  async list(filter: JobFilter = {}): Promise<Job[]> {
    const limit = filter.limit ?? 100;
    const jobs: Job[] = [];
    let pageToken = "";
    do {
      const res = await this.api.listJobs({
        states: (filter.states ?? []).map(jobStateOf),
        cluster: filter.cluster ?? "",
        name: filter.name ?? "",
        createdAfter: filter.createdAfter ? timestampFromDate(filter.createdAfter) : undefined,
        createdBefore: filter.createdBefore ? timestampFromDate(filter.createdBefore) : undefined,
        pageSize: Math.min(1000, limit - jobs.length),
        pageToken,
      });
      jobs.push(...res.jobs.map(jobFromMessage));
      pageToken = res.nextPageToken;
    } while (pageToken !== "" && jobs.length < limit);
    return jobs;
  }

  /** Cancels a queued or started job. */
  async cancel(id: string): Promise<Job> {
    return jobFromMessage((await this.api.cancelJob({ id })).job!);
  }

  /** Queues the failed and cancelled tasks of a failed or cancelled job again. */
  async retry(id: string): Promise<Job> {
    return jobFromMessage((await this.api.retryJob({ id })).job!);
  }
}
