import type { Sql } from "postgres";
import type { SessionStart, TaskResults } from "../../gen/sluice/v1/runner_service_pb.js";
import type { RunnerStream } from "../dispatch/runner-stream.js";
import type { RecordedResults } from "../store/complete-tasks.js";
import type { Capability } from "../store/lease-tasks.js";
import { notifyJobEvents } from "../store/channels.js";
import type { ObservabilityConfig } from "./config.js";
import type { JobFollowers } from "./job-followers.js";
import type { RunnerRegistry } from "./runner-registry.js";
import { writeTelemetry } from "./telemetry.js";
import type { ServerMetrics } from "./metrics.js";

/**
 * What the runner service tells the server's observers about a session: its
 * start and end (the runner registry), each message (when the runner was last
 * heard), telemetry (task logs and progress), recorded results (followers of
 * those jobs, metrics). Everything here is batched per message.
 */
export class SessionObserver {
  constructor(
    private readonly sql: Sql,
    readonly followers: JobFollowers,
    readonly runners: RunnerRegistry,
    readonly metrics: ServerMetrics,
    private readonly config: ObservabilityConfig,
    private readonly onError: (e: unknown) => void,
  ) {}

  /** A session started on `stream`. Not being listed is no reason to refuse a runner work: errors are logged. */
  async started(stream: RunnerStream, start: SessionStart, capabilities: readonly Capability[]): Promise<void> {
    await this.runners
      .connect(stream, { name: start.name, host: start.host, concurrency: start.concurrency, prefetch: start.prefetch, capabilities })
      .catch(this.onError);
  }

  /** The runner sent a message on the session. */
  heard(stream: RunnerStream): void {
    this.runners.heard(stream);
  }

  /** Writes the telemetry of a message; a failure to write it is logged, not the runner's. */
  async telemetry(stream: RunnerStream, telemetry: TaskResults["telemetry"]): Promise<void> {
    if (!telemetry || ((telemetry.lines?.taskIds.length ?? 0) === 0 && telemetry.progress.length === 0)) return;
    try {
      const written = await writeTelemetry(this.sql, stream, telemetry, this.followers, this.config.taskLogChars);
      this.metrics.logLines.inc(written.lines);
    } catch (e) {
      // Lines are worth less than results: the results of the message are
      // recorded all the same.
      this.onError(e);
    }
  }

  /**
   * A results message was recorded: the metrics count it, and the followers
   * of its jobs are told (after the commit, so that they read the jobs' new
   * states).
   */
  recorded(stream: RunnerStream, req: TaskResults, computed: readonly { jobId: string }[], recorded: RecordedResults): void {
    const c = stream.options.counters;
    if (c) {
      let computedN = computed.length;
      let failed = 0;
      let released = 0;
      for (const r of req.results) {
        if (r.outcome.case === "computed") computedN++;
        else if (r.outcome.case === "failed") failed++;
        else if (r.outcome.case === "released") released++;
      }
      c.computed.inc(computedN);
      if (failed > 0) c.failed.inc(failed);
      if (released > 0) c.released.inc(released);
      if (recorded.refused.length > 0) c.refused.inc(recorded.refused.length);
      // Each failed job failed for one attempt that had no retry left.
      if (failed > recorded.failedJobs.length) c.retried.inc(failed - recorded.failedJobs.length);
      if (recorded.failedJobs.length > 0) this.metrics.jobsFailed.inc(recorded.failedJobs.length);
    }
    if (!this.followers.any) return;
    const followed = this.followers.followedAmong([...req.results.map((r) => r.jobId), ...computed.map((r) => r.jobId)]);
    if (followed.length > 0) notifyJobEvents(this.sql, followed).catch(this.onError);
  }

  /** The session on `stream` ended. */
  ended(stream: RunnerStream): void {
    this.runners.disconnect(stream);
  }
}
