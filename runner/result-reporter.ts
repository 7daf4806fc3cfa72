import { Code, ConnectError, type Client as ConnectClient } from "@connectrpc/connect";
import { RunnerService, type TaskResult } from "../gen/sluice/v1/runner_service_pb.js";

/** What the server did with one result. */
export interface ResultOutcome {
  accepted: boolean;
  /** When refused: the Connect error code name, e.g. "failed_precondition". */
  code: string;
  /** When refused: why. */
  message: string;
}

const ACCEPTED: ResultOutcome = Object.freeze({ accepted: true, code: "", message: "" });

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
export class ResultReporter {
  private pending: { result: TaskResult; done: (o: ResultOutcome) => void }[] = [];
  private flushing: Promise<void> | null = null;

  constructor(
    private readonly api: ConnectClient<typeof RunnerService>,
    private readonly runnerId: string,
    private readonly signal: AbortSignal,
  ) {}

  /** Queues a result; resolves with the server's outcome for it. */
  report(result: TaskResult): Promise<ResultOutcome> {
    return new Promise((done) => {
      this.pending.push({ result, done });
      this.flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.flush());
    });
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
        try {
          const res = await this.api.completeTasks({ runnerId: this.runnerId, results: batch.map((p) => p.result) });
          this.pending.splice(0, batch.length);
          // Only refusals come back; every other result was recorded.
          const refused = res.refused.length === 0 ? null : new Map(res.refused.map((r) => [r.taskId, r]));
          for (const p of batch) {
            const r = refused?.get(p.result.task?.taskId ?? "");
            p.done(r ? { accepted: false, code: r.code, message: r.message } : ACCEPTED);
          }
          delay = RETRY_DELAY_MS;
        } catch (e) {
          const err = ConnectError.from(e);
          if (err.code === Code.InvalidArgument || err.code === Code.ResourceExhausted) {
            // The server will never take this batch: report why for each result.
            this.pending.splice(0, batch.length);
            for (const p of batch) p.done({ accepted: false, code: "invalid_argument", message: err.rawMessage });
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
