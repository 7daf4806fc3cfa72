import { create } from "@bufbuild/protobuf";
import { ComputedTasksSchema, type TaskResult } from "../../gen/sluice/v1/runner_service_pb.js";
import type { SessionChannel } from "./session.js";
import type { TelemetryBuffer } from "./telemetry-buffer.js";

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
  /** The result as a message; null for a success without subtasks, sent as columns. */
  result: TaskResult | null;
  taskId: string;
  lease: number;
  jobId: string;
  done: ResultCallback<O>;
  owner: O;
  /** For a traced success sent as columns: the trace context of its execution. */
  traceparent?: string;
}

/** Results sent in one message at most. */
const MAX_BATCH = 1_000;

/**
 * Sends task results to the server in batches on the runner's session.
 * Nothing waits on a timer: the results that finished while the previous
 * batch was on its way form the next one, so batches grow with load and an
 * idle runner reports at once. Results whose session ended before the server
 * answered go again on the next session.
 */
export class ResultReporter<O> {
  private pending: Pending<O>[] = [];
  private flushing: Promise<void> | null = null;
  private channel: SessionChannel | null = null;
  private waiting: (() => void)[] = [];

  constructor(
    private readonly signal: AbortSignal,
    /** Log lines and progress waiting: each results message takes them along. */
    private readonly telemetry?: TelemetryBuffer,
  ) {
    signal.addEventListener("abort", () => this.wakeAll(), { once: true });
  }

  /** The runner's open session, or null between sessions: results wait for the next. */
  setChannel(channel: SessionChannel | null): void {
    this.channel = channel;
    if (channel) this.wakeAll();
  }

  /**
   * Queues a result; `done` is called with the server's outcome for it and
   * `owner`. (A callback made once and an owner, not a promise or a closure
   * per result: the drain queues one per task.)
   */
  report(result: TaskResult, done: ResultCallback<O>, owner: O): void {
    this.queue(result, result.task?.taskId ?? "", result.task?.lease ?? 0, result.jobId, done, owner);
  }

  /** Queues the result of a task that succeeded without submitting subtasks. */
  reportComputed(taskId: string, lease: number, jobId: string, done: ResultCallback<O>, owner: O, traceparent = ""): void {
    this.queue(null, taskId, lease, jobId, done, owner, traceparent);
  }

  private queue(result: TaskResult | null, taskId: string, lease: number, jobId: string, done: ResultCallback<O>, owner: O, traceparent = ""): void {
    this.pending.push(traceparent === "" ? { result, taskId, lease, jobId, done, owner } : { result, taskId, lease, jobId, done, owner, traceparent });
    this.flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.flush());
  }

  get size(): number {
    return this.pending.length;
  }

  private wakeAll(): void {
    for (const wake of this.waiting.splice(0)) wake();
  }

  /** An open session to send on; null once the runner gave up. */
  private async openChannel(): Promise<SessionChannel | null> {
    for (;;) {
      if (this.signal.aborted) return null;
      if (this.channel?.open) return this.channel;
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  private async flush(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const channel = await this.openChannel();
        if (!channel) {
          // The runner gave up reaching the server: the leases run out there.
          const lost = this.pending.splice(0);
          for (const p of lost) p.done({ accepted: false, code: "unavailable", message: "the runner stopped before the server answered" }, p.owner);
          return;
        }
        const batch = this.pending.slice(0, MAX_BATCH);
        const results: TaskResult[] = [];
        const computed = create(ComputedTasksSchema);
        for (const p of batch) {
          if (p.result) {
            results.push(p.result);
          } else {
            if (p.traceparent) computed.traceparents[computed.taskIds.length] = p.traceparent;
            computed.taskIds.push(p.taskId);
            computed.leases.push(p.lease);
            computed.jobIds.push(p.jobId);
          }
        }
        // Lines written before these results go with them (the server writes
        // them first).
        const telemetry = this.telemetry?.take();
        let answer;
        try {
          answer = await channel.record({ results, computed: computed.taskIds.length > 0 ? computed : undefined, telemetry });
        } catch {
          // The session ended under the batch: it goes again on the next one.
          if (telemetry) this.telemetry!.putBack(telemetry, false);
          continue;
        }
        this.pending.splice(0, batch.length);
        // Only refusals come back; every other result was recorded.
        const refused = answer.refused.length === 0 ? null : new Map(answer.refused.map((r) => [r.taskId, r]));
        for (const p of batch) {
          const r = refused?.get(p.taskId);
          p.done(r ? { accepted: false, code: r.code, message: r.message } : ACCEPTED, p.owner);
        }
      }
    } finally {
      this.flushing = null;
      if (this.pending.length > 0) this.flushing = this.flush();
    }
  }
}
