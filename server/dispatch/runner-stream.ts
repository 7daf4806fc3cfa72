import { type MessageInitShape, create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Sql } from "postgres";
import { type SessionResponse, SessionResponseSchema, type TaskLease, TaskLeaseSchema } from "../../gen/sluice/v1/runner_service_pb.js";
import type { StorageEvent } from "../../gen/sluice/v1/storage_pb.js";
import { type TaskIdentifier, TaskIdentifierSchema } from "../../gen/sluice/v1/task_pb.js";
import { triggerToProto } from "../../runner/wire/storage-event.js";
import { formatVersion } from "../validation.js";
import { type Capability, type LeasedTasks, leaseTasks } from "../store/lease-tasks.js";
import { EventQueue } from "./event-queue.js";
import type { ClusterCounters } from "../observe/metrics.js";
import { leaseSpans } from "../observe/trace-spans.js";
import type { AttemptKeys } from "../hook/attempt-keys.js";
import type { JobHookAccessSchema } from "../../gen/sluice/v1/runner_service_pb.js";

/** The most tasks leased by one statement for one stream. */
export const LEASE_BATCH_MAX = 500;

export interface RunnerStreamOptions {
  runnerId: string;
  clusterId: number;
  clusterSlug: string;
  capabilities: Capability[];
  /** Tasks the runner may hold at once: its concurrency plus its prefetch. */
  capacity: number;
  /**
   * Tasks leased to the runner before this stream that it still holds (as the
   * database and the runner both say): they take slots until it reports them.
   */
  held: ReadonlyMap<string, HeldTask>;
  /** The runner is stopping: nothing is leased to it. */
  draining?: boolean;
  leaseTtlMs: number;
  /** The metrics this stream adds to (per batch: leased tasks, arrived results). */
  counters?: ClusterCounters;
  /** Derives the job hook secrets of process tasks' attempts. */
  attemptKeys?: AttemptKeys;
}

export interface HeldTask {
  jobId: string;
  lease: number;
  /** When it was sent to the runner (epoch ms; absent for tasks held from an earlier session). */
  sentAt?: number;
  /** Bytes of log lines of this attempt taken so far (absent: none). */
  logBytes?: number;
}

/**
 * One runner's work stream on this server. It leases tasks for the runner's
 * free capacity and pushes them down the stream; it never leases more than the
 * runner can hold, and it is woken (never polled) when work may be ready or
 * capacity was freed.
 */
export class RunnerStream {
  readonly events = new EventQueue<SessionResponse>();
  private readonly held: Map<string, HeldTask>;
  private readonly identifiers = new Map<string, TaskIdentifier>();
  private pumping = false;
  /** Resolves the promise of `settled` once no lease runs. */
  private whenSettled: (() => void)[] = [];
  /** The runner is stopping: nothing more is leased to it. */
  private draining = false;
  /** Why leasing failed, if it did: the stream is closed, and the session ends with it. */
  failure: unknown = undefined;
  /** The runner said it ended: its session closes once its leases are given back. */
  ending = false;
  private again = false;
  private idleSent = false;
  /**
   * Leases start after this task id: the highest this stream leased since the
   * last wake-up. Every task leased leaves a dead entry in the index of ready_tasks
   * until vacuum removes it, at the front, since leasing goes in id order; a
   * lease from the start steps over all of them, and after a million tasks
   * that cost a fifth of the drain rate. Ready work that may lie below the
   * floor (new submits committed out of id order, dependents, retries,
   * expired leases) always comes with a wake-up, which resets it to "0";
   * so does a lease that finds less than it wanted, before the stream
   * concludes that nothing is left.
   */
  private floor = "0";
  /** Wake-ups (ready work may exist) seen so far. */
  private wakes = 0;
  /** Calls recording results of this runner right now. */
  private recording = 0;
  /** Slots promised to tasks being inserted already leased to this runner (`reserve`). */
  private reserved = 0;
  /**
   * False once a lease found less ready work than it wanted and no wake-up
   * came since. Then freed capacity alone needs no lease statement: whatever
   * makes work ready wakes the stream (a NOTIFY, or at once for work made ready
   * by results reported to this server).
   */
  private workMayWait = true;

  constructor(
    private readonly sql: Sql,
    readonly options: RunnerStreamOptions,
  ) {
    this.held = new Map(options.held);
    this.draining = options.draining ?? false;
  }

  get runnerId(): string {
    return this.options.runnerId;
  }

  get clusterId(): number {
    return this.options.clusterId;
  }

  /** Tasks leased to the runner and not yet reported. */
  get holding(): number {
    return this.held.size;
  }

  /** Whether the runner holds this task of this job (log lines are taken only for those). */
  holds(taskId: string, jobId: string): boolean {
    return this.held.get(taskId)?.jobId === jobId;
  }

  /**
   * Counts a log line of a held task against the limit per attempt: "keep",
   * "cut" for the first line over the limit (the caller says so once), "drop"
   * after it, null when the runner does not hold the task.
   */
  countLogLine(taskId: string, jobId: string, bytes: number, limit: number): "keep" | "cut" | "drop" | null {
    const h = this.held.get(taskId);
    if (h?.jobId !== jobId) return null;
    const before = h.logBytes ?? 0;
    h.logBytes = before + bytes;
    if (h.logBytes <= limit) return "keep";
    return before <= limit ? "cut" : "drop";
  }

  /** The jobs of the tasks the runner holds. */
  heldJobs(): Set<string> {
    const jobs = new Set<string>();
    for (const h of this.held.values()) jobs.add(h.jobId);
    return jobs;
  }

  get free(): number {
    return this.draining ? 0 : this.options.capacity - this.held.size - this.reserved;
  }

  /**
   * Whether a new ready task of this identifier may be handed straight to the
   * runner, inserted already leased to it (Dispatcher.reserveHandOffs): the
   * runner can execute it and has a free slot, and the stream knows of no
   * ready work to lease instead. Its last lease found less than it wanted, no
   * wake-up came since and no lease is running, so a task handed over jumps no
   * queue that this runner could take from.
   */
  canTake(name: string, major: number, minor: number): boolean {
    if (this.workMayWait || this.pumping || this.events.isClosed || this.free <= 0) return false;
    for (const c of this.options.capabilities) {
      if (c.name === name && c.major === major && c.minor >= minor) return true;
    }
    return false;
  }

  /** Holds `n` slots for tasks being handed over; `handOver` or `unreserve` gives them back. */
  reserve(n: number): void {
    this.reserved += n;
  }

  unreserve(n: number): void {
    this.reserved -= n;
  }

  /**
   * Tasks inserted already leased to this runner (their slots reserved) are
   * committed: sends them. False when the stream closed meanwhile: the caller
   * gives them back to the queue.
   */
  handOver(tasks: LeasedTasks): boolean {
    this.reserved -= tasks.ids.length;
    if (this.events.isClosed) return false;
    this.assign(tasks);
    return true;
  }

  /**
   * The runner reported these tasks: their slots are free, and more work is
   * leased for them while the results are being recorded. Until
   * `resultsRecorded` the stream does not say it is idle: recording may
   * make work ready (subtasks, dependents, retries).
   */
  resultsArrived(taskIds: readonly string[]): void {
    const executed = this.options.counters?.executed;
    if (executed) {
      const now = Date.now();
      for (const id of taskIds) {
        const at = this.held.get(id)?.sentAt;
        if (at !== undefined) executed.observe((now - at) / 1000);
      }
    }
    for (const id of taskIds) this.held.delete(id);
    this.recording++;
    if (this.workMayWait || this.pumping) this.pump();
  }

  /** Results announced by `resultsArrived` were recorded (or refused). */
  resultsRecorded(): void {
    this.recording--;
    if (!this.pumping) this.sendIdleIfDone();
  }

  /** Ready work may exist for this stream's cluster. */
  wake(): void {
    this.wakes++;
    this.floor = "0";
    this.workMayWait = true;
    this.pump();
  }

  private sendIdleIfDone(): void {
    if (this.held.size === 0 && this.recording === 0 && !this.idleSent && !this.events.isClosed) {
      this.idleSent = true;
      this.events.push(create(SessionResponseSchema, { event: { case: "idle", value: {} } }));
    }
  }

  /** The runner is stopping: nothing more is leased to it. */
  drain(): void {
    this.draining = true;
  }

  /** Resolves once no lease statement of this stream runs (its tasks were sent, or the stream closed). */
  settled(): Promise<void> {
    if (!this.pumping) return Promise.resolve();
    return new Promise((resolve) => this.whenSettled.push(resolve));
  }

  /** Tells the runner to stop the tasks it holds of a cancelled or failed job. */
  cancelJob(jobId: string, reason: string): void {
    const tasks: TaskLease[] = [];
    for (const [taskId, held] of this.held) {
      if (held.jobId === jobId) tasks.push(create(TaskLeaseSchema, { taskId, lease: held.lease }));
    }
    if (tasks.length > 0) {
      this.events.push(create(SessionResponseSchema, { event: { case: "cancellation", value: { tasks, reason } } }));
    }
  }

  close(): void {
    this.events.close();
  }

  /**
   * Leases work for the free capacity until there is none or no ready work is
   * left. Calls while a lease runs are folded into one more round.
   */
  pump(): void {
    if (this.events.isClosed) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    this.leaseLoop()
      .catch((e) => {
        // The runner's session ends (unavailable, for a database error) and
        // the runner opens a new one, which starts from what the database
        // says is leased to it.
        this.failure = e;
        this.events.close();
      })
      .finally(() => {
        this.pumping = false;
        for (const resolve of this.whenSettled.splice(0)) resolve();
      });
  }

  /** One identifier message per task identifier, shared by every task sent with it. */
  private identifier(name: string, major: number, minor: number): TaskIdentifier {
    const key = `${name} ${major} ${minor}`;
    let id = this.identifiers.get(key);
    if (!id) {
      id = create(TaskIdentifierSchema, { name, version: formatVersion(major, minor) });
      if (this.identifiers.size >= 1_000) this.identifiers.clear();
      this.identifiers.set(key, id);
    }
    return id;
  }

  /** Sends leased tasks to the runner, one list per field, and holds them until it reports them. */
  private assign(t: LeasedTasks): void {
    this.idleSent = false;
    const sentAt = Date.now();
    for (let i = 0; i < t.ids.length; i++) this.held.set(t.ids[i], { jobId: t.jobIds[i], lease: t.leases[i], sentAt });
    const counters = this.options.counters;
    if (counters) {
      counters.leased.inc(t.ids.length);
      for (const w of t.firstWaits) counters.waited.observe(w);
    }
    const triggers: { [task: number]: StorageEvent } = {};
    for (const [i, trigger] of t.triggers) triggers[i] = triggerToProto(trigger);
    const traceparents = t.traceparents.size === 0 ? {} : leaseSpans(t, this.options.clusterSlug);
    const jobHooks = this.jobHooksOf(t);
    this.events.push(
      create(SessionResponseSchema, {
        event: {
          case: "assignment",
          value: {
            leaseExpiresAt: timestampFromDate(new Date(Date.now() + this.options.leaseTtlMs)),
            cluster: this.options.clusterSlug,
            ids: t.ids,
            jobIds: t.jobIds,
            identifiers: t.identifiers.map((k) => this.identifier(k.name, k.major, k.minor)),
            identifierIndexes: t.identifierIndexes,
            inputs: t.inputs,
            leases: t.leases,
            failures: t.failures,
            maxRetries: t.maxRetries,
            triggers,
            traceparents,
            timeoutsMs: Object.fromEntries(t.timeouts),
            jobHooks,
          },
        },
      }),
    );
  }

  /** The job hook of each leased task that the runner runs as a process. */
  private jobHooksOf(t: LeasedTasks): { [task: number]: MessageInitShape<typeof JobHookAccessSchema> } {
    const keys = this.options.attemptKeys;
    const out: { [task: number]: MessageInitShape<typeof JobHookAccessSchema> } = {};
    const caps = this.options.capabilities;
    if (!keys || !caps.some((c) => c.jobHook)) return out;
    const hooked = t.identifiers.map((k) => caps.some((c) => c.jobHook && c.name === k.name && c.major === k.major && c.minor >= k.minor));
    for (let i = 0; i < t.ids.length; i++) {
      if (hooked[t.identifierIndexes[i]]) out[i] = keys.access({ taskId: t.ids[i], lease: t.leases[i] });
    }
    return out;
  }

  private async leaseLoop(): Promise<void> {
    for (;;) {
      this.again = false;
      const want = Math.min(this.free, LEASE_BATCH_MAX);
      if (want <= 0 || this.events.isClosed) return;
      const o = this.options;
      const wakesBefore = this.wakes;
      const floor = this.floor;
      const leased = await leaseTasks(this.sql, o.clusterId, o.capabilities, want, o.runnerId, o.leaseTtlMs, floor);
      const count = leased.ids.length;
      if (this.wakes === wakesBefore && count > 0) this.floor = leased.lastId;
      if (count < want && floor !== "0" && this.wakes === wakesBefore) {
        // Look once more from the start before concluding that nothing is left.
        this.floor = "0";
        this.again = true;
      }
      // Less than wanted and no wake-up meanwhile: nothing more is ready.
      this.workMayWait = count === want || this.wakes !== wakesBefore || this.again;
      if (count > 0) this.assign(leased);
      if (count < want && !this.again) {
        this.sendIdleIfDone();
        return;
      }
    }
  }
}
