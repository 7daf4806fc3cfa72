import { randomBytes } from "node:crypto";
import type { Sql } from "postgres";
import { type TaskResultIn, recordResults } from "../store/complete-tasks.js";
import { CANCEL_CHANNEL, TASKS_CHANNEL, notifyReady, parseReadyPayload } from "../store/channels.js";
import { type Capability, type LeasedTasks, emptyLeasedTasks } from "../store/lease-tasks.js";
import { type LeaseRef, leasesOf } from "../store/leases.js";
import type { TaskRow } from "../task-plan.js";
import { type HeldTask, RunnerStream, type RunnerStreamOptions } from "./runner-stream.js";

/** Tasks of one submit inserted already leased to one stream's runner. */
export interface HandOff {
  stream: RunnerStream;
  rows: TaskRow[];
}

/** Where a task handed over ended up: its id and its job's. */
export interface PlacedTask {
  id: string;
  jobId: string;
}

/**
 * Hands work to the runner streams attached to this server. It LISTENs for
 * ready work (payload: a cluster id) and cancelled jobs (payload: a job id), on
 * one connection, and wakes only the streams of the cluster concerned.
 */
export class Dispatcher {
  /** Names this server in the NOTIFYs it sends, so that it can skip its own. */
  private readonly serverId = randomBytes(6).toString("hex");
  private readonly streams = new Map<string, RunnerStream>();
  private readonly byCluster = new Map<number, Set<RunnerStream>>();
  private unlisten: (() => Promise<void>)[] = [];
  /** Clusters to announce to the other servers in the next NOTIFY. */
  private readonly toAnnounce = new Set<number>();
  private announcing = false;

  constructor(
    private readonly sql: Sql,
    private readonly onError: (error: unknown) => void,
    /** The pool the streams lease on (the server's is set up for it: LEASE_SETTINGS). */
    private readonly leases: Sql = sql,
  ) {}

  async start(): Promise<void> {
    // onlisten runs again after the listening connection reconnects:
    // notifications may have been missed meanwhile, so every stream looks again.
    // Payload: a cluster id, then the sending server's id if a server sent it
    // after waking its own streams (`workReady`).
    const tasks = await this.sql.listen(
      TASKS_CHANNEL,
      (payload) => {
        const { clusterId, from } = parseReadyPayload(payload);
        if (from !== this.serverId) this.wakeCluster(clusterId);
      },
      () => this.wakeAll(),
    );
    const cancels = await this.sql.listen(CANCEL_CHANNEL, (jobId) => this.cancelJob(jobId, `job ${jobId} was cancelled or failed`));
    this.unlisten = [tasks.unlisten, cancels.unlisten];
  }

  async stop(): Promise<void> {
    for (const stream of this.streams.values()) stream.close();
    this.streams.clear();
    this.byCluster.clear();
    await Promise.all(this.unlisten.map((u) => u().catch(() => {})));
  }

  /**
   * What a runner starting a session holds, as far as both sides know: the
   * tasks leased to it (the database says) that it says it still holds. Every
   * other task leased to it was sent as an earlier session broke and never
   * received: those are queued again now, without a failure. Pass no `held`
   * when the runner has stopped and holds nothing.
   */
  async reconcile(runnerId: string, held: readonly LeaseRef[] = []): Promise<Map<string, HeldTask>> {
    const leased = await leasesOf(this.sql, runnerId);
    const claimed = new Map(held.map((h) => [h.taskId, h.lease]));
    const kept = new Map<string, HeldTask>();
    const released: TaskResultIn[] = [];
    for (const t of leased) {
      if (claimed.get(t.taskId) === t.lease) kept.set(t.taskId, { jobId: t.jobId, lease: t.lease });
      else released.push({ taskId: t.taskId, lease: t.lease, jobId: t.jobId, released: true });
    }
    if (released.length > 0) {
      const recorded = await recordResults(this.sql, runnerId, released);
      this.workReady(recorded.readyClusters);
    }
    return kept;
  }

  /** Attaches a runner's stream; a stream of the same runner id is replaced. */
  attach(options: RunnerStreamOptions): RunnerStream {
    this.streams.get(options.runnerId)?.close();
    const stream = new RunnerStream(this.leases, options);
    this.streams.set(options.runnerId, stream);
    let set = this.byCluster.get(options.clusterId);
    if (!set) this.byCluster.set(options.clusterId, (set = new Set()));
    set.add(stream);
    stream.pump();
    return stream;
  }

  /** Detaches a stream: nothing more is leased or sent on it. */
  detach(stream: RunnerStream): void {
    stream.close();
    if (this.streams.get(stream.runnerId) === stream) this.streams.delete(stream.runnerId);
    this.byCluster.get(stream.clusterId)?.delete(stream);
  }

  /**
   * Chooses, for tasks about to be inserted ready (no dependency), runner
   * streams of this server that wait for work they can execute
   * (`RunnerStream.canTake`), and reserves their slots: such a task is inserted
   * already leased to the stream's runner (`TaskRow.leaseTo`) and sent when
   * the insert has committed (`handOver`), with no NOTIFY, wake-up or lease
   * statement between the commit and the runner. Each task goes to the
   * stream with the most free slots; the others are queued as usual. Call
   * `handOver` after the commit, or `cancelHandOffs` if the insert failed.
   */
  reserveHandOffs(rows: readonly TaskRow[]): HandOff[] {
    if (this.streams.size === 0) return [];
    const byStream = new Map<RunnerStream, TaskRow[]>();
    /** Cluster and identifier of tasks no stream can take any more. */
    let full: Set<string> | undefined;
    for (const row of rows) {
      if (row.depsLeft !== 0 || row.clusterId === null) continue;
      const set = this.byCluster.get(row.clusterId);
      if (!set || set.size === 0) continue;
      const key = `${row.clusterId} ${row.name} ${row.major} ${row.minor}`;
      if (full?.has(key)) continue;
      let best: RunnerStream | undefined;
      for (const s of set) if (s.canTake(row.name, row.major, row.minor) && (!best || s.free > best.free)) best = s;
      if (!best) {
        (full ??= new Set()).add(key);
        continue;
      }
      best.reserve(1);
      row.leaseTo = best.runnerId;
      let list = byStream.get(best);
      if (!list) byStream.set(best, (list = []));
      list.push(row);
    }
    return [...byStream].map(([stream, rows]) => ({ stream, rows }));
  }

  /**
   * The insert of reserved hand-offs committed: sends each runner its tasks.
   * Tasks of a stream that closed meanwhile go back to the queue, as a
   * departing runner's unreported tasks do.
   */
  handOver(handOffs: readonly HandOff[], placed: ReadonlyMap<TaskRow, PlacedTask>): void {
    for (const { stream, rows } of handOffs) {
      const tasks = handedTasks(rows, placed);
      let sent = false;
      try {
        sent = stream.handOver(tasks);
      } catch (e) {
        // The submit committed and is answered as such whatever happens here.
        this.onError(e);
      }
      if (!sent) void this.release(stream.runnerId, tasks.ids.map((taskId, i) => ({ taskId, lease: 1, jobId: tasks.jobIds[i], released: true })));
    }
  }

  /** The insert of reserved hand-offs failed: frees their slots. */
  cancelHandOffs(handOffs: readonly HandOff[]): void {
    for (const { stream, rows } of handOffs) {
      stream.unreserve(rows.length);
      for (const row of rows) row.leaseTo = undefined;
    }
  }

  private async release(runnerId: string, tasks: TaskResultIn[]): Promise<void> {
    try {
      const recorded = await recordResults(this.sql, runnerId, tasks);
      this.workReady(recorded.readyClusters);
    } catch (e) {
      // Lease expiry queues them again.
      this.onError(e);
    }
  }

  /** Tells runners on this server to stop the tasks of a job they hold. */
  cancelJob(jobId: string, reason: string): void {
    for (const stream of this.streams.values()) stream.cancelJob(jobId, reason);
  }

  get streamCount(): number {
    return this.streams.size;
  }

  /** Ready work may exist in these clusters. */
  wakeClusters(clusterIds: readonly number[]): void {
    for (const id of clusterIds) this.wakeCluster(id);
  }

  /**
   * Work became ready in these clusters, committed by this server: wakes its
   * own streams at once and tells the other servers with one NOTIFY per
   * cluster, sent after the commit and shared by every call made while the
   * previous one was on its way.
   *
   * A NOTIFY inside the inserting transaction would cost each commit
   * PostgreSQL's global notify lock, which serializes commits with their WAL
   * flush: submits of one-task jobs ran at a quarter of the rate without it.
   */
  workReady(clusterIds: readonly number[]): void {
    if (clusterIds.length === 0) return;
    this.wakeClusters(clusterIds);
    for (const id of clusterIds) this.toAnnounce.add(id);
    if (!this.announcing) void this.announce();
  }

  private async announce(): Promise<void> {
    this.announcing = true;
    try {
      while (this.toAnnounce.size > 0) {
        const clusters = [...this.toAnnounce];
        this.toAnnounce.clear();
        await notifyReady(this.sql, clusters, this.serverId);
      }
    } catch (e) {
      // Other servers' streams find the work at their next wake-up (any
      // NOTIFY, or a reconnect of their listener) rather than at once.
      this.toAnnounce.clear();
      this.onError(e);
    } finally {
      this.announcing = false;
    }
  }

  private wakeCluster(clusterId: number): void {
    const set = this.byCluster.get(clusterId);
    if (set) for (const stream of set) stream.wake();
  }

  private wakeAll(): void {
    for (const stream of this.streams.values()) stream.wake();
  }
}

/** Tasks handed over as a lease statement would have returned them: first lease, no failure yet. */
function handedTasks(rows: readonly TaskRow[], placed: ReadonlyMap<TaskRow, PlacedTask>): LeasedTasks {
  const out = emptyLeasedTasks();
  const indexes = new Map<string, number>();
  rows.forEach((row, i) => {
    const { id, jobId } = placed.get(row)!;
    out.ids.push(id);
    out.jobIds.push(jobId);
    out.leases.push(1);
    out.failures.push(0);
    out.maxRetries.push(row.maxRetries);
    out.inputs.push(row.input);
    // Handed over as it was created: no wait.
    out.firstWaits.push(0);
    const key = `${row.name} ${row.major} ${row.minor}`;
    let k = indexes.get(key);
    if (k === undefined) {
      const identifier: Capability = { name: row.name, major: row.major, minor: row.minor };
      indexes.set(key, (k = out.identifiers.push(identifier) - 1));
    }
    out.identifierIndexes.push(k);
    if (row.trigger) out.triggers.set(i, row.trigger);
    if (row.traceparent) out.traceparents.set(i, row.traceparent);
    if (row.policy?.timeoutMs) out.timeouts.set(i, row.policy.timeoutMs);
  });
  return out;
}
