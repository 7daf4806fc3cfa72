import { setTimeout as wait } from "node:timers/promises";
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { type MessageInitShape, create } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client as ConnectClient } from "@connectrpc/connect";
import { RunnerService, type TaskAssignment, TaskResultSchema } from "../../gen/sluice/v1/runner_service_pb.js";
import type { StorageEvent } from "../../gen/sluice/v1/storage_pb.js";
import type { FileService } from "../../gen/sluice/v1/file_service_pb.js";
import { SITE_PATTERN, siteBoundName, splitSiteBound } from "../wire/sites.js";
import { type RunnerPlace, TaskContext, type TelemetryTarget } from "./context.js";
import { enterSyncConsole, installConsoleCapture, leaveSyncConsole, originalConsole, withConsole } from "./console-capture.js";
import { LogLevel, TelemetryBuffer } from "./telemetry-buffer.js";
import { startTracing, tracing } from "../wire/tracing.js";
import { BUILTIN_TASKS } from "../sdk/builtins.js";
import type { CacheBackend } from "../sdk/cache/cache.js";
import { InMemoryCache } from "../sdk/cache/memory.js";
import { ACCEPTED, type ResultOutcome, ResultReporter } from "./result-reporter.js";
import { SessionChannel } from "./session.js";
import { StorageEventTask, triggerFromMessage } from "../sdk/storage.js";
import { type Task, type TaskClass, deserializeInput, identifierOf, parseVersion } from "../sdk/task.js";
import { type JobHookAccess, type ProcessTasks, processTaskClass } from "./process-task.js";
import { postJobHook } from "./job-hook-client.js";
import { KubernetesJobs, type KubernetesOptions } from "./kubernetes-jobs.js";

export interface RunnerLogger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface RunnerOptions {
  /** The task classes this runner executes. */
  tasks?: readonly TaskClass[];
  /**
   * Tasks run as child processes, any language: `"name@vMAJOR.MINOR"` to a
   * command line, a list of words, or `{ command, cwd, env, timeoutMs,
   * killGraceMs }` (docs/process-tasks.md).
   */
  processes?: ProcessTasks;
  /**
   * Run the process tasks as Kubernetes Jobs instead of child processes. Give
   * `runnerId` too, so that a restarted runner adopts the Jobs it started.
   */
  kubernetes?: KubernetesOptions;
  /** The runner's id (a UUID), to keep across restarts (default: a new one). */
  runnerId?: string;
  /** How many tasks run at once (default 1). */
  concurrency?: number;
  /**
   * How many tasks beyond `concurrency` the server may lease ahead, so that a
   * slot that frees up never waits on a round trip (default: `concurrency`).
   * Use 0 for long tasks, so that idle runners get them instead.
   */
  prefetch?: number;
  /** A name to show for the runner (default: host name and process id). */
  name?: string;
  /** Where connection problems and task failures are logged (default: the console). */
  logger?: RunnerLogger;
  /**
   * Also run Sluice's built-in tasks, such as scheduled object writes (default
   * false): they write to storage locations, so a runner runs them only when
   * told to.
   */
  builtins?: boolean;
  /**
   * Where `context.jobCache` keeps its values (default: an InMemoryCache of
   * this runner, which other runners cannot see).
   */
  cache?: CacheBackend;
  /**
   * How long `stop()` keeps trying to report the results of the tasks it ran
   * while the server cannot be reached (default 30 s). After that it gives up:
   * the server hands those tasks to other runners when their leases run out.
   */
  stopTimeoutMs?: number;
  /**
   * What tasks' console.log/info/warn/error/debug output becomes (default
   * true): their log lines, kept apart per task. False leaves the console alone.
   */
  captureConsole?: boolean;
  /**
   * Whether tasks' log lines are also written to the runner's own output,
   * prefixed with their job and task (default true).
   */
  echoTaskLogs?: boolean;
  /** Characters of log lines sent per task attempt (default 1 MiB); later lines are dropped. */
  taskLogChars?: number;
  /** The runner's site (letters, digits, "_" or "-"), shown in `context.queue`. */
  site?: string;
}

type Outcome = NonNullable<MessageInitShape<typeof TaskResultSchema>["outcome"]>;

type Resolver = (name: string, version: string) => TaskClass | undefined;

/** A task as the server assigned it. */
interface Assigned {
  id: string;
  jobId: string;
  name: string;
  version: string;
  /** The registered class that runs it (undefined: none is compatible). */
  cls: TaskClass | undefined;
  input: Uint8Array;
  lease: number;
  trigger: StorageEvent | undefined;
  /** The trace context of its lease, when the task is traced. */
  traceparent: string | undefined;
  /** Its time limit in milliseconds, if it has one. */
  timeoutMs: number | undefined;
  /** For a process task: how its process reaches the job hook. */
  hook: JobHookAccess | undefined;
}

/** The tasks of an assignment (one list per field). */
function assignedOf(c: TaskAssignment, resolve: Resolver): Assigned[] {
  const out: Assigned[] = new Array(c.ids.length);
  // Each identifier is resolved once per assignment, not once per task.
  const classes = c.identifiers.map((k) => resolve(k.name, k.version));
  for (let i = 0; i < c.ids.length; i++) {
    const k = c.identifierIndexes[i];
    const identifier = c.identifiers[k];
    out[i] = {
      id: c.ids[i],
      jobId: c.jobIds[i],
      name: identifier?.name ?? "",
      version: identifier?.version ?? "",
      cls: classes[k],
      input: c.inputs[i] ?? new Uint8Array(),
      lease: c.leases[i] ?? 0,
      trigger: c.triggers[i],
      traceparent: c.traceparents[i],
      timeoutMs: c.timeoutsMs[i],
      hook: c.jobHooks[i],
    };
  }
  return out;
}

/**
 * A task leased to this runner, until its result is reported. Its
 * AbortController is made only when the task asks for its signal.
 */
class Held {
  private controller: AbortController | null = null;
  private reason: Error | null = null;
  /** What came of it, once it ran (or was given back). */
  outcome: Outcome | null = null;
  /** The trace context of the span that executed it, when it is traced. */
  traceparent = "";

  constructor(readonly task: Assigned) {}

  get aborted(): boolean {
    return this.reason !== null;
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.reason) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  abort(reason: Error): void {
    if (this.reason) return;
    this.reason = reason;
    this.controller?.abort(reason);
  }
}

interface Registered {
  cls: TaskClass;
  major: number;
  minor: number;
}

/** The outcome of a task that succeeded without submitting subtasks: one for all of them. */
const COMPUTED: Outcome = Object.freeze({ case: "computed", value: Object.freeze({}) });
/** The outcome of a task given back unstarted. */
const RELEASED: Outcome = Object.freeze({ case: "released", value: Object.freeze({}) });

/** The result message for a task's outcome. */
function resultOf(h: Held, outcome: Outcome) {
  const t = h.task;
  return create(TaskResultSchema, { task: { taskId: t.id, lease: t.lease }, jobId: t.jobId, outcome, traceparent: h.traceparent });
}

/** The error of a task that ran past its time limit. */
export class TaskTimeoutError extends Error {
  override name = "TaskTimeoutError";
}

/**
 * Waits for a task's execution, or until its time limit: then its signal is
 * aborted and it fails with a TaskTimeoutError (its slot is freed; a task that
 * ignores its signal runs on, and what it does then is not reported).
 */
function withTimeout(running: void | Promise<void>, ms: number, h: Held): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new TaskTimeoutError(`the task ran longer than its time limit of ${ms} ms`);
      h.abort(err);
      reject(err);
    }, ms);
  });
  return Promise.race([Promise.resolve(running), limit]).finally(() => clearTimeout(timer));
}

/** Codes that reconnecting cannot cure: the runner's request itself is wrong. */
const PERMANENT = new Set([
  Code.InvalidArgument,
  Code.NotFound,
  Code.FailedPrecondition,
  Code.Unimplemented,
  Code.PermissionDenied,
  Code.Unauthenticated,
]);

/** Waits `ms`, or less when `signal` aborts. */
const sleep = (ms: number, signal: AbortSignal) => wait(ms, undefined, { signal }).catch(() => {});

/**
 * Executes tasks of one cluster. It keeps a session open with the server,
 * which pushes leased tasks as soon as they are ready; it runs up to
 * `concurrency` of them at once, reports results in batches, extends the
 * leases of what it holds and opens a new session when the connection is lost,
 * telling the server what it still holds.
 */
export class TaskRunner {
  /** The runner's id, kept across reconnects. */
  readonly id: string;
  private readonly kubernetes: KubernetesJobs | undefined;
  readonly cluster: string;
  private readonly registry = new Map<string, Registered[]>();
  /** Task classes by "name version" as leased, resolved once. */
  private readonly resolved = new Map<string, TaskClass | undefined>();
  private readonly concurrency: number;
  private readonly prefetch: number;
  private readonly name: string;
  private readonly log: RunnerLogger;
  private readonly cache: CacheBackend;
  private readonly stopTimeoutMs: number;
  private readonly captureConsole: boolean;
  /** Whether each task class's execute is asynchronous (see executeCaptured). */
  private readonly asyncClasses = new Map<TaskClass, boolean>();
  private readonly telemetry: TelemetryTarget;
  private readonly place: RunnerPlace;

  private readonly held = new Map<string, Held>();
  private readonly queue: Held[] = [];
  private running = 0;
  private leaseTtlMs = 30_000;
  private idle = false;
  private untilIdle = false;
  private stopping = false;
  /** Aborted when the runner gives up reaching the server while stopping. */
  private lifetime: AbortController | null = null;
  private stopTimer: NodeJS.Timeout | null = null;
  /** Aborts the current session's call. */
  private stream: AbortController | null = null;
  private channel: SessionChannel | null = null;
  private reporter: ResultReporter<Held> | null = null;
  private extender: NodeJS.Timeout | null = null;
  private run: Promise<void> | null = null;

  constructor(
    private readonly api: ConnectClient<typeof RunnerService>,
    cluster: string,
    options: RunnerOptions,
    files?: ConnectClient<typeof FileService>,
  ) {
    this.cluster = cluster;
    this.id = options.runnerId ?? randomUUID();
    if (options.site !== undefined && !SITE_PATTERN.test(options.site)) {
      throw new TypeError(`site ${JSON.stringify(options.site)} is invalid: use 1 to 100 letters, digits, "_" or "-"`);
    }
    this.place = { site: options.site ?? "", cluster, files: files ? { api: files, runnerId: this.id } : null };
    this.kubernetes = options.kubernetes ? new KubernetesJobs(options.kubernetes, this.id) : undefined;
    const processes = Object.entries(options.processes ?? {}).map(([key, spec]) => processTaskClass(key, spec, this.processAttempt));
    const tasks = [...(options.tasks ?? []), ...processes];
    if (tasks.length === 0) throw new TypeError("a runner needs at least one task: a class in tasks, or a command in processes");
    const names = new Set(tasks.map((t) => identifierOf(t).name));
    const builtins = options.builtins !== true ? [] : BUILTIN_TASKS.filter((t) => !names.has(identifierOf(t).name));
    for (const cls of [...tasks, ...builtins]) {
      const id = identifierOf(cls);
      const { major, minor } = parseVersion(id.version);
      const same = this.registry.get(id.name) ?? [];
      const clash = same.find((r) => r.major === major);
      if (clash) {
        throw new TypeError(
          `tasks ${id.name} v${major}.${clash.minor} and v${major}.${minor} are both registered: register only the newest minor version of a major version`,
        );
      }
      same.push({ cls, major, minor });
      this.registry.set(id.name, same);
    }
    this.concurrency = options.concurrency ?? 1;
    this.prefetch = options.prefetch ?? this.concurrency;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1 || this.concurrency > 10_000) {
      throw new RangeError(`concurrency must be an integer from 1 to 10000, got ${options.concurrency}`);
    }
    if (!Number.isInteger(this.prefetch) || this.prefetch < 0 || this.prefetch > 10_000) {
      throw new RangeError(`prefetch must be an integer from 0 to 10000, got ${options.prefetch}`);
    }
    this.name = options.name ?? `${hostname()}:${process.pid}`;
    this.log = options.logger ?? console;
    this.cache = options.cache ?? new InMemoryCache();
    this.stopTimeoutMs = options.stopTimeoutMs ?? 30_000;
    this.captureConsole = options.captureConsole ?? true;
    const out = originalConsole();
    this.telemetry = {
      buffer: new TelemetryBuffer(options.taskLogChars ?? 1024 * 1024),
      echo: options.echoTaskLogs === false ? null : (level, line) => (level >= LogLevel.WARN ? out.error(line) : out.log(line)),
    };
  }

  /** Runs tasks until `stop()` is called. */
  runForever(): Promise<void> {
    return this.start(false);
  }

  /** Runs tasks until the server has none left for this runner, then returns. */
  runAll(): Promise<void> {
    return this.start(true);
  }

  /**
   * Stops taking work: tasks leased but not started are given back at once,
   * running tasks finish and their results are reported. Resolves when the
   * runner has stopped, or gave up reaching the server after `stopTimeoutMs`.
   */
  async stop(): Promise<void> {
    if (!this.run) return;
    this.beginStop();
    await this.run;
  }

  /** Tasks leased to this runner and not yet reported. */
  get inFlight(): number {
    return this.held.size;
  }

  private start(untilIdle: boolean): Promise<void> {
    if (this.run) throw new Error("this runner is already running: call stop() first");
    this.untilIdle = untilIdle;
    this.stopping = false;
    this.idle = false;
    this.run = this.loop().finally(() => {
      this.run = null;
    });
    return this.run;
  }

  private beginStop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.channel?.drain();
    for (const h of this.queue.splice(0)) this.finish(h, RELEASED);
    this.stopTimer = setTimeout(() => this.giveUp(), this.stopTimeoutMs);
    this.stopTimer.unref();
    this.checkSettled();
  }

  /** Stopping took too long (the server is unreachable): leaves the rest to lease expiry. */
  private giveUp(): void {
    this.log.warn(`sluice runner ${this.id}: could not reach the server within ${this.stopTimeoutMs} ms while stopping; its leases will run out`);
    for (const h of this.held.values()) h.abort(new Error("the runner stopped"));
    this.lifetime?.abort();
    this.stream?.abort();
  }

  private async loop(): Promise<void> {
    const lifetime = (this.lifetime = new AbortController());
    // Loads the OpenTelemetry SDK only when OTEL_EXPORTER_OTLP_ENDPOINT is set.
    await startTracing("sluice-runner");
    const buffer = this.telemetry.buffer;
    this.reporter = new ResultReporter(lifetime.signal, buffer);
    buffer.sender = (t) => this.channel?.telemetry(t) ?? false;
    const restoreConsole = this.captureConsole ? installConsoleCapture() : null;
    // Jobs this runner started before a restart are held again (and so named
    // in the session's start) and adopted, not started twice.
    const adoptable = await this.kubernetes?.adoptable().catch((e: Error) => {
      this.log.warn(`sluice runner ${this.id}: could not list its Kubernetes Jobs to adopt them (${e.message})`);
      return [];
    });
    for (const a of adoptable ?? []) {
      if (this.held.has(a.taskId)) continue;
      const cls = this.resolve(a.name, a.version);
      this.accept({ id: a.taskId, jobId: a.jobId, name: a.name, version: a.version, cls, input: a.input, lease: a.lease, trigger: undefined, hook: a.hook, traceparent: undefined, timeoutMs: undefined });
    }
    this.scheduleExtension();
    let delay = 100;
    try {
      while (!lifetime.signal.aborted) {
        const stream = (this.stream = new AbortController());
        const channel = new SessionChannel({
          runnerId: this.id,
          cluster: this.cluster,
          tasks: this.registered(),
          concurrency: this.concurrency,
          prefetch: this.prefetch,
          name: this.name,
          host: hostname(),
          held: [...this.held.values()].map((h) => ({ taskId: h.task.id, lease: h.task.lease })),
          draining: this.stopping,
        });
        this.channel = channel;
        this.reporter.setChannel(channel);
        buffer.wake();
        this.checkSettled();
        try {
          for await (const res of this.api.session(channel.requests(), { signal: stream.signal })) {
            delay = 100;
            const event = res.event;
            if (event.case === "started") {
              this.leaseTtlMs = event.value.leaseTtlMs;
              this.scheduleExtension();
            } else if (event.case === "assignment") {
              this.idle = false;
              for (const task of assignedOf(event.value, this.resolver)) this.accept(task);
            } else if (event.case === "cancellation") {
              for (const l of event.value.tasks) {
                const h = this.held.get(l.taskId);
                if (h && h.task.lease === l.lease) h.abort(new Error(event.value.reason));
              }
              this.schedule();
            } else if (event.case === "idle") {
              this.idle = true;
              this.checkSettled();
            } else if (event.case === "recorded" || event.case === "extended") {
              channel.answered(event);
            }
          }
          // The server ends the call after the runner ended its side: stopped.
          if (channel.finished) break;
          if (!this.stopping) this.log.warn(`sluice runner ${this.id}: the server closed the session; reconnecting`);
        } catch (e) {
          if (lifetime.signal.aborted) break;
          const err = ConnectError.from(e);
          if (PERMANENT.has(err.code)) throw err;
          // Stopping with nothing to report: the server's leases cover the rest.
          if (this.stopping && this.held.size === 0) break;
          this.log.warn(`sluice runner ${this.id}: session failed (${err.message}); reconnecting in ${delay} ms`);
        } finally {
          // Results sent on it and not answered go again on the next session.
          channel.end();
          this.reporter.setChannel(null);
          this.channel = null;
        }
        await sleep(delay, lifetime.signal);
        delay = Math.min(delay * 2, 5_000);
      }
    } finally {
      restoreConsole?.();
      buffer.close();
      this.stopping = true;
      for (const h of this.held.values()) h.abort(new Error("the runner stopped"));
      this.queue.length = 0;
      lifetime.abort();
      if (this.stopTimer) clearTimeout(this.stopTimer);
      if (this.extender) clearTimeout(this.extender);
      this.stopTimer = null;
      this.extender = null;
      this.stream = null;
      this.lifetime = null;
    }
  }

  /** The registered tasks as the server wants them: one entry per name and major version. */
  private registered() {
    const site = this.place.site;
    return [...this.registry.entries()].flatMap(([name, versions]) =>
      versions.flatMap((v) => {
        const own = { name, version: `v${v.major}.${v.minor}`, jobHook: "processSpec" in v.cls };
        // At a site, also the tasks bound to it (see runner/wire/sites.ts).
        return site === "" ? [own] : [own, { ...own, name: siteBoundName(name, site) }];
      }),
    );
  }

  /** What a process task needs of its attempt: the hook, the input, and where its output goes. */
  private readonly processAttempt = (context: { taskId: string }) => {
    const task = this.held.get(context.taskId)!.task;
    return {
      hook: task.hook,
      input: task.input,
      kubernetes: this.kubernetes,
      finished: async (stdout: string, stderr: string) => {
        if (!task.hook || (stdout === "" && stderr === "")) return;
        await postJobHook(task.hook, "/output", { stdout, stderr }).catch((e: Error) =>
          this.log.warn(`sluice runner: the output of task ${task.id} was not kept: ${e.message}`),
        );
      },
    };
  };

  private readonly resolver: Resolver = (name, version) => this.resolve(name, version);

  private resolve(name: string, version: string): TaskClass | undefined {
    const key = `${name} ${version}`;
    if (!this.resolved.has(key)) {
      const { major, minor } = parseVersion(version);
      const bound = splitSiteBound(name);
      const own = bound.site === this.place.site ? bound.name : name;
      this.resolved.set(key, this.registry.get(own)?.find((v) => v.major === major && v.minor >= minor)?.cls);
    }
    return this.resolved.get(key);
  }

  private accept(task: Assigned): void {
    const h = new Held(task);
    this.held.set(task.id, h);
    if (this.stopping) {
      this.finish(h, RELEASED);
      return;
    }
    this.queue.push(h);
    this.schedule();
  }

  private schedule(): void {
    if (this.stopping) {
      // Stopping: what has not started is given back, not run.
      for (const h of this.queue.splice(0)) this.finish(h, RELEASED);
      return;
    }
    while (this.running < this.concurrency && this.queue.length > 0) {
      const h = this.queue.shift()!;
      if (h.aborted) {
        // Cancelled or lost before it started: give it back (the server
        // refuses it, which frees the slot).
        this.finish(h, RELEASED);
        continue;
      }
      this.running++;
      void this.execute(h);
    }
  }

  /** Runs a task in a slot; frees the slot and fills it again when done. */
  private async execute(h: Held): Promise<void> {
    const t = h.task;
    const { name, version, cls } = t;
    let outcome: Outcome;
    const span = t.traceparent ? tracing()?.span("sluice.execute", t.traceparent, "consumer") : undefined;
    if (span) {
      span.setAttribute("sluice.task", `${name} ${version}`);
      span.setAttribute("sluice.task_id", t.id);
      h.traceparent = span.traceparent;
    }
    try {
      if (!cls) throw new Error(`this runner has no task ${name} compatible with ${version}`);
      const task = new cls(deserializeInput(t.input));
      if (t.trigger && task instanceof StorageEventTask) task.trigger = triggerFromMessage(t.trigger);
      const context = new TaskContext(t.jobId, t.id, t.lease, h, this.cache, this.place, name, this.telemetry);
      context.traceparent = h.traceparent;
      const running = this.captureConsole ? this.executeCaptured(cls, task, context) : task.execute(context);
      await (t.timeoutMs === undefined ? running : withTimeout(running, t.timeoutMs, h));
      // Path states not sent yet are recorded before the task's result.
      const settling = context.settle();
      if (settling) await settling;
      const subtasks = context.subtasks;
      // A process's subtasks were posted to its job hook; the server adds them.
      if (t.hook) outcome = { case: "computed", value: { subtasks: [...subtasks], jobHookSubtasks: true } };
      else outcome = subtasks.length === 0 ? COMPUTED : { case: "computed", value: { subtasks: [...subtasks] } };
      span?.end();
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      span?.end(err);
      if (!h.aborted || err instanceof TaskTimeoutError) {
        this.log.warn(`sluice runner: task ${t.id} (${name} ${version}) of job ${t.jobId} failed: ${err.message}`);
      }
      outcome = { case: "failed", value: { message: err.message, stack: err.stack ?? "" } };
    }
    // The slot is free once the task has run; its result goes in the next
    // batch, and the lease is held until the server has it.
    this.finish(h, outcome);
    this.running--;
    this.schedule();
  }

  /**
   * Runs a task with its console output routed to it. A synchronous execute
   * needs only a variable set around the call (nothing else can run
   * meanwhile); one that is asynchronous, or returned a promise before, runs
   * in AsyncLocalStorage, whose hooks cost every promise of the process
   * something once it is in use.
   */
  private executeCaptured(cls: TaskClass, task: Task<any>, context: TaskContext): void | Promise<void> {
    let async = this.asyncClasses.get(cls);
    if (async === undefined) {
      async = task.execute.constructor.name === "AsyncFunction";
      this.asyncClasses.set(cls, async);
    }
    if (async) return withConsole(context, () => task.execute(context));
    const outer = enterSyncConsole(context);
    let result: void | Promise<void>;
    try {
      result = task.execute(context);
    } finally {
      leaveSyncConsole(outer);
    }
    // A promise from a plain function: its callbacks were not captured this time; they will be.
    if (result && typeof (result as Promise<void>).then === "function") this.asyncClasses.set(cls, true);
    return result;
  }

  /** Reports a task's result and forgets it once the server has answered. */
  private finish(h: Held, outcome: Outcome): void {
    const t = h.task;
    h.outcome = outcome;
    try {
      if (outcome.case === "computed" && (outcome.value.subtasks?.length ?? 0) === 0 && !outcome.value.jobHookSubtasks) {
        this.reporter!.reportComputed(t.id, t.lease, t.jobId, this.answered, h, h.traceparent);
      } else {
        this.reporter!.report(resultOf(h, outcome), this.answered, h);
      }
    } catch (e) {
      this.log.error(`sluice runner: result of task ${t.id} was not reported: ${(e as Error).message}`);
      this.forget(ACCEPTED, h);
    }
  }

  // The two callbacks of results are made once per runner, not per task.

  private readonly answered = (res: ResultOutcome, h: Held): void => {
    const t = h.task;
    if (!res.accepted && h.outcome?.case === "computed" && res.code === "invalid_argument") {
      // The server refused the subtasks the task submitted: that is the
      // task's failure, so it is retried or fails its job.
      this.log.warn(`sluice runner: task ${t.id} submitted invalid subtasks: ${res.message}`);
      this.reporter!.report(resultOf(h, { case: "failed", value: { message: res.message, stack: "" } }), this.forget, h);
      return;
    }
    this.forget(res, h);
  };

  private readonly forget = (res: ResultOutcome, h: Held): void => {
    if (!res.accepted && h.outcome?.case !== "released" && !h.aborted) {
      this.log.warn(`sluice runner: result of task ${h.task.id} refused: ${res.message}`);
    }
    this.held.delete(h.task.id);
    this.checkSettled();
  };

  private checkSettled(): void {
    if (this.untilIdle && this.idle && this.held.size === 0 && !this.stopping) this.beginStop();
    // Stopping and holding nothing: the session ends, and with it the run.
    if (this.stopping && this.held.size === 0) this.channel?.finish();
  }

  /** Extends the leases of every held task a third of the way into each lease. */
  private scheduleExtension(): void {
    if (this.extender) clearTimeout(this.extender);
    this.extender = setTimeout(() => {
      this.extendLeases().finally(() => {
        if (this.extender) this.scheduleExtension();
      });
    }, Math.max(50, Math.floor(this.leaseTtlMs / 3)));
    this.extender.unref();
  }

  private async extendLeases(): Promise<void> {
    const channel = this.channel;
    const holding = [...this.held.values()];
    if (holding.length === 0 || !channel?.open) return;
    try {
      for (let i = 0; i < holding.length; i += 5_000) {
        const chunk = holding.slice(i, i + 5_000);
        const res = await channel.extend(chunk.map((h) => ({ taskId: h.task.id, lease: h.task.lease })));
        for (const l of res.lost) {
          const h = this.held.get(l.taskId);
          if (h && h.task.lease === l.lease) {
            h.abort(new Error(`the lease of task ${l.taskId} was lost: it was cancelled or given to another runner`));
          }
        }
      }
      this.schedule();
    } catch (e) {
      // The session ended: the next one says what the runner holds.
      if (channel.open) this.log.warn(`sluice runner ${this.id}: extending leases failed (${ConnectError.from(e).message}); trying again`);
    }
  }
}
