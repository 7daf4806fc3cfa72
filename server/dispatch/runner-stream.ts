import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Sql } from "postgres";
import {
  type LeasedTask,
  type LeasedTaskColumns,
  LeasedTaskColumnsSchema,
  LeasedTaskSchema,
  type TaskLease,
  TaskLeaseSchema,
  type WorkResponse,
  WorkResponseSchema,
} from "../../gen/sluice/v1/runner_service_pb.js";
import type { StorageEvent } from "../../gen/sluice/v1/storage_pb.js";
import { type TaskIdentifier, TaskIdentifierSchema } from "../../gen/sluice/v1/task_pb.js";
import { triggerToProto } from "../storage/trigger.js";
import { formatVersion } from "../validation.js";
import { type Capability, type LeasedTaskRow, leaseTasks } from "../store/lease-tasks.js";
import { EventQueue } from "./event-queue.js";

/** The most tasks leased by one statement for one stream. */
export const LEASE_BATCH_MAX = 500;

export interface RunnerStreamOptions {
  runnerId: string;
  clusterId: number;
  clusterSlug: string;
  capabilities: Capability[];
  /** Tasks the runner may hold at once: its concurrency plus its prefetch. */
  capacity: number;
  /** Tasks leased before a reconnect that the runner still executes. */
  carried: number;
  /** The runner reads assignments as columns (TaskAssignment.columns). */
  columns: boolean;
  leaseTtlMs: number;
  onError: (error: unknown) => void;
}

export interface HeldTask {
  jobId: string;
  lease: number;
}

/**
 * One runner's work stream on this server. It leases tasks for the runner's
 * free capacity and pushes them down the stream; it never leases more than the
 * runner can hold, and it is woken (never polled) when work may be ready or
 * capacity was freed.
 */
export class RunnerStream {
  readonly events = new EventQueue<WorkResponse>();
  private readonly held = new Map<string, HeldTask>();
  private readonly identifiers = new Map<string, TaskIdentifier>();
  private carried: number;
  private pumping = false;
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
    this.carried = options.carried;
  }

  get runnerId(): string {
    return this.options.runnerId;
  }

  get clusterId(): number {
    return this.options.clusterId;
  }

  get free(): number {
    return this.options.capacity - this.held.size - this.carried;
  }

  /**
   * The runner reported these tasks: their slots are free, and more work is
   * leased for them while the results are being recorded. Until
   * `resultsRecorded` the stream does not say it is idle: recording may
   * make work ready (subtasks, dependents, retries).
   */
  resultsArrived(taskIds: readonly string[]): void {
    for (const id of taskIds) {
      if (!this.held.delete(id) && this.carried > 0) this.carried--;
    }
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
    if (this.held.size === 0 && this.carried === 0 && this.recording === 0 && !this.idleSent && !this.events.isClosed) {
      this.idleSent = true;
      this.events.push(create(WorkResponseSchema, { event: { case: "idle", value: {} } }));
    }
  }

  /** The tasks leased to the runner on this stream that it has not reported yet. */
  unreported(): Map<string, HeldTask> {
    return this.held;
  }

  /** Tells the runner to stop the tasks it holds of a cancelled or failed job. */
  cancelJob(jobId: string, reason: string): void {
    const tasks: TaskLease[] = [];
    for (const [taskId, held] of this.held) {
      if (held.jobId === jobId) tasks.push(create(TaskLeaseSchema, { taskId, lease: held.lease }));
    }
    if (tasks.length > 0) {
      this.events.push(create(WorkResponseSchema, { event: { case: "cancellation", value: { tasks, reason } } }));
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
      .catch((e) => this.options.onError(e))
      .finally(() => {
        this.pumping = false;
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

  private leasedTask(r: LeasedTaskRow): LeasedTask {
    return create(LeasedTaskSchema, {
      id: r.id,
      jobId: r.job_id,
      identifier: this.identifier(r.name, r.major, r.minor),
      input: r.input,
      lease: r.lease,
      failures: r.failures,
      maxRetries: r.max_retries,
      trigger: r.trigger ? triggerToProto(r.trigger) : undefined,
    });
  }

  /** The rows as one list per field: no message per task to build and encode. */
  private columnsOf(rows: readonly LeasedTaskRow[]): LeasedTaskColumns {
    const n = rows.length;
    const ids: string[] = new Array(n);
    const jobIds: string[] = new Array(n);
    const inputs: Uint8Array[] = new Array(n);
    const leases: number[] = new Array(n);
    const failures: number[] = new Array(n);
    const maxRetries: number[] = new Array(n);
    const identifierIndexes: number[] = new Array(n);
    const identifiers: TaskIdentifier[] = [];
    const index = new Map<TaskIdentifier, number>();
    const triggers: { [task: number]: StorageEvent } = {};
    for (let i = 0; i < n; i++) {
      const r = rows[i];
      ids[i] = r.id;
      jobIds[i] = r.job_id;
      inputs[i] = r.input;
      leases[i] = r.lease;
      failures[i] = r.failures;
      maxRetries[i] = r.max_retries;
      const identifier = this.identifier(r.name, r.major, r.minor);
      let k = index.get(identifier);
      if (k === undefined) {
        k = identifiers.push(identifier) - 1;
        index.set(identifier, k);
      }
      identifierIndexes[i] = k;
      if (r.trigger) triggers[i] = triggerToProto(r.trigger);
    }
    return create(LeasedTaskColumnsSchema, { ids, jobIds, identifiers, identifierIndexes, inputs, leases, failures, maxRetries, triggers });
  }

  private async leaseLoop(): Promise<void> {
    for (;;) {
      this.again = false;
      const want = Math.min(this.free, LEASE_BATCH_MAX);
      if (want <= 0 || this.events.isClosed) return;
      const o = this.options;
      const wakesBefore = this.wakes;
      const floor = this.floor;
      const rows = await leaseTasks(this.sql, o.clusterId, o.capabilities, want, o.runnerId, o.leaseTtlMs, floor);
      if (this.wakes === wakesBefore && rows.length > 0) this.floor = rows[rows.length - 1].id;
      if (rows.length < want && floor !== "0" && this.wakes === wakesBefore) {
        // Look once more from the start before concluding that nothing is left.
        this.floor = "0";
        this.again = true;
      }
      // Less than wanted and no wake-up meanwhile: nothing more is ready.
      this.workMayWait = rows.length === want || this.wakes !== wakesBefore || this.again;
      if (rows.length > 0) {
        this.idleSent = false;
        for (const r of rows) this.held.set(r.id, { jobId: r.job_id, lease: r.lease });
        this.events.push(
          create(WorkResponseSchema, {
            event: {
              case: "assignment",
              value: {
                ...(o.columns ? { columns: this.columnsOf(rows) } : { tasks: rows.map((r) => this.leasedTask(r)) }),
                leaseExpiresAt: timestampFromDate(new Date(Date.now() + o.leaseTtlMs)),
                cluster: o.clusterSlug,
              },
            },
          }),
        );
      }
      if (rows.length < want && !this.again) {
        this.sendIdleIfDone();
        return;
      }
    }
  }
}
