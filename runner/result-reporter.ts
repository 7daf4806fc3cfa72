import { Code, ConnectError, type Client as ConnectClient } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import type { SessionChannel } from "./session.js";
import { ComputedTasksSchema, RunnerService, type TaskResult, TaskResultSchema } from "../gen/sluice/v1/runner_service_pb.js";

/** What the server did with one result. */
export interface ResultOutcome {
  accepted: boolean;
  /** When refused: the Connect error code name, e.g. "failed_precondition". */
  code: string;
  /** When refused: why. */
  message: string;
}

export const ACCEPTED: ResultOutcome = Object.freeze({ accepted: true, code: "", message: "" });

/** Called with the server's outcome for a result and the owner it was queued with. */
export type ResultCallback<O> = (outcome: ResultOutcome, owner: O) => void;

interface Pending<O> {
  /** The result as a message; null for a success without subtasks sent as columns. */
  result: TaskResult | null;
  taskId: string;
  lease: number;
  jobId: string;
  done: ResultCallback<O>;
  owner: O;
}

function computedResult(taskId: string, lease: number, jobId: string): TaskResult {
  return create(TaskResultSchema, { task: { taskId, lease }, jobId, outcome: { case: "computed", value: {} } });
}

/** Results sent in one call at most. */
const MAX_BATCH = 1_000;
const RETRY_DELAY_MS = 200;
const MAX_RETRY_DELAY_MS = 5_000;

/**
 * Sends task results to the server in batches. Nothing waits on a timer: the
 * results that finished while the previous call was in flight form the next
 * call, so batches grow with load and an idle runner reports at once.
 * Results survive connection errors and are sent again.
 */
export class ResultReporter<O> {
  private pending: Pending<O>[] = [];
  /**
   * Successes without subtasks go as columns (CompleteTasksRequest.computed)
   * until a server answers that it did not read them (an older server).
   */
  private columns = true;
  private flushing: Promise<void> | null = null;
  /**
   * The runner's open session, if it has one: results go there as a message
   * instead of a CompleteTasks call each.
   */
  channel: SessionChannel | null = null;

  constructor(
    private readonly api: ConnectClient<typeof RunnerService>,
    private readonly runnerId: string,
    private readonly signal: AbortSignal,
  ) {}

  /**
   * Queues a result; `done` is called with the server's outcome for it and
   * `owner`. (A callback made once and an owner, not a promise or a closure
   * per result: the drain queues one per task.)
   */
  report(result: TaskResult, done: ResultCallback<O>, owner: O): void {
    this.queue(result, result.task?.taskId ?? "", result.task?.lease ?? 0, result.jobId, done, owner);
  }

  /** Queues the result of a task that succeeded without submitting subtasks. */
  reportComputed(taskId: string, lease: number, jobId: string, done: ResultCallback<O>, owner: O): void {
    this.queue(this.columns ? null : computedResult(taskId, lease, jobId), taskId, lease, jobId, done, owner);
  }

  private queue(result: TaskResult | null, taskId: string, lease: number, jobId: string, done: ResultCallback<O>, owner: O): void {
    this.pending.push({ result, taskId, lease, jobId, done, owner });
    this.flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.flush());
  }

  /** Resolves once every queued result was sent. */
  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  get size(): number {
    return this.pending.length;
  }

  private async flush(): Promise<void> {
    let delay = RETRY_DELAY_MS;
    try {
      while (this.pending.length > 0) {
        const batch = this.pending.slice(0, MAX_BATCH);
        let channel: SessionChannel | null = null;
        try {
          const results: TaskResult[] = [];
          const computed = create(ComputedTasksSchema);
          for (const p of batch) {
            if (p.result) {
              results.push(p.result);
            } else {
              computed.taskIds.push(p.taskId);
              computed.leases.push(p.lease);
              computed.jobIds.push(p.jobId);
            }
          }
          const req = { runnerId: this.runnerId, results, computed: computed.taskIds.length > 0 ? computed : undefined };
          channel = this.channel?.closed ? null : this.channel;
          const res = channel ? await channel.complete(req) : await this.api.completeTasks(req);
          this.pending.splice(0, batch.length);
          // A server that did not read the columns recorded none of them:
          // they go again, as results, and so does every later success.
          const unread: Pending<O>[] = [];
          if (computed.taskIds.length > 0 && !res.computedRead) this.columns = false;
          // Only refusals come back; every other result was recorded.
          const refused = res.refused.length === 0 ? null : new Map(res.refused.map((r) => [r.taskId, r]));
          for (const p of batch) {
            if (!p.result && !res.computedRead) {
              p.result = computedResult(p.taskId, p.lease, p.jobId);
              unread.push(p);
              continue;
            }
            const r = refused?.get(p.taskId);
            p.done(r ? { accepted: false, code: r.code, message: r.message } : ACCEPTED, p.owner);
          }
          this.pending.unshift(...unread);
          delay = RETRY_DELAY_MS;
        } catch (e) {
          // The session ended under the batch: send it again at once, on the
          // next session or as a call.
          if (channel?.closed) continue;
          const err = ConnectError.from(e);
          if (err.code === Code.InvalidArgument || err.code === Code.ResourceExhausted) {
            // The server will never take this batch: report why for each result.
            this.pending.splice(0, batch.length);
            for (const p of batch) p.done({ accepted: false, code: "invalid_argument", message: err.rawMessage }, p.owner);
            continue;
          }
          if (this.signal.aborted) throw err;
          await new Promise((r) => setTimeout(r, delay));
          delay = Math.min(delay * 2, MAX_RETRY_DELAY_MS);
        }
      }
    } finally {
      this.flushing = null;
      if (this.pending.length > 0 && !this.signal.aborted) this.flushing = this.flush();
    }
  }
}
