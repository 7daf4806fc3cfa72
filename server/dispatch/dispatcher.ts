import { randomBytes } from "node:crypto";
import type { Sql } from "postgres";
import { CANCEL_CHANNEL, TASKS_CHANNEL } from "../store/insert-tasks.js";
import { type HeldTask, RunnerStream, type RunnerStreamOptions } from "./runner-stream.js";

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
  /**
   * Per runner whose stream closed: the tasks leased to it on that stream that
   * it had not reported, until it reports them or says it stopped (`depart`).
   * Kept for a lease's length: after that, lease expiry has them.
   */
  private readonly departed = new Map<string, { tasks: Map<string, HeldTask>; until: number }>();
  /** Clusters to announce to the other servers in the next NOTIFY. */
  private readonly toAnnounce = new Set<number>();
  private announcing = false;

  constructor(
    private readonly sql: Sql,
    private readonly onError: (error: unknown) => void,
    private readonly leaseTtlMs: number,
  ) {}

  async start(): Promise<void> {
    // onlisten runs again after the listening connection reconnects:
    // notifications may have been missed meanwhile, so every stream looks again.
    // Payload: a cluster id, then the sending server's id if a server sent it
    // after waking its own streams (`workReady`).
    const tasks = await this.sql.listen(
      TASKS_CHANNEL,
      (payload) => {
        const [cluster, from] = payload.split(" ");
        if (from !== this.serverId) this.wakeCluster(Number(cluster));
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

  /** Attaches a runner's stream; a stream of the same runner id is replaced. */
  attach(options: Omit<RunnerStreamOptions, "onError">): RunnerStream {
    this.streams.get(options.runnerId)?.close();
    const stream = new RunnerStream(this.sql, { ...options, onError: this.onError });
    this.streams.set(options.runnerId, stream);
    let set = this.byCluster.get(options.clusterId);
    if (!set) this.byCluster.set(options.clusterId, (set = new Set()));
    set.add(stream);
    stream.pump();
    return stream;
  }

  detach(stream: RunnerStream): void {
    stream.close();
    if (this.streams.get(stream.runnerId) === stream) this.streams.delete(stream.runnerId);
    this.byCluster.get(stream.clusterId)?.delete(stream);
    const now = Date.now();
    for (const [runnerId, d] of this.departed) if (d.until < now) this.departed.delete(runnerId);
    const left = stream.unreported();
    if (left.size === 0) return;
    const d = this.departed.get(stream.runnerId);
    if (d) {
      for (const [id, t] of left) d.tasks.set(id, t);
      d.until = now + this.leaseTtlMs;
    } else {
      this.departed.set(stream.runnerId, { tasks: new Map(left), until: now + this.leaseTtlMs });
    }
  }

  /**
   * The runner stopped and holds nothing: closes its stream if it is still
   * open, and returns the tasks leased to it that it never reported.
   */
  depart(runnerId: string): Map<string, HeldTask> {
    const stream = this.streams.get(runnerId);
    if (stream) this.detach(stream);
    const d = this.departed.get(runnerId);
    this.departed.delete(runnerId);
    return d && d.until >= Date.now() ? d.tasks : new Map();
  }

  /**
   * A runner's results arrived: its slots are free at once, so leasing more
   * for it overlaps with recording these. Call the returned function once
   * they are recorded (or failed to be).
   */
  resultsArrived(runnerId: string, taskIds: readonly string[]): () => void {
    const stream = this.streams.get(runnerId);
    const d = this.departed.get(runnerId);
    if (d) for (const id of taskIds) d.tasks.delete(id);
    if (!stream) return () => {};
    stream.resultsArrived(taskIds);
    return () => stream.resultsRecorded();
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
        const payloads = [...this.toAnnounce].map((c) => `${c} ${this.serverId}`);
        this.toAnnounce.clear();
        await this.sql`SELECT pg_notify(${TASKS_CHANNEL}, p) FROM unnest(${payloads}::text[]) AS p`;
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
