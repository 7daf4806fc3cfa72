import { Code, ConnectError, type Client as ConnectClient } from "@connectrpc/connect";
import { FileService, type ListTaskPathsResponse, PathState } from "../../gen/sluice/v1/file_service_pb.js";
import { PATH_STATE_NAMES, type PathObject, type PathStateName, type PathStatus, type TaskPaths } from "../sdk/paths.js";
import { pathObjectOf } from "../wire/path-objects.js";

/** What a runner's task contexts need to reach the file service. */
export interface FileAccess {
  api: ConnectClient<typeof FileService>;
  runnerId: string;
}

/** The task and lease a context's calls name. */
interface Held {
  taskId: string;
  lease: number;
}

/** Paths per page read, and states per report sent. */
export const PAGE_SIZE = 10_000;
export const REPORT_BATCH = 10_000;
/** States wait at most this long before they are sent, however few. */
const REPORT_INTERVAL_MS = 1_000;
/** Tries of a report the server could not take (Unavailable); a report is idempotent. */
const REPORT_ATTEMPTS = 5;

const STATE_TO: Record<PathStateName, PathState> = {
  processed: PathState.PROCESSED,
  skipped: PathState.SKIPPED,
  aborted: PathState.ABORTED,
  failures: PathState.FAILURES,
  inprogress: PathState.INPROGRESS,
};

/**
 * A file task's paths, fetched page by page as the task iterates (the next
 * page is requested while the task works on the current one), so that the
 * runner never holds more than two pages. Before each page it waits for the
 * task's reports to catch up, so that reports never pile up either.
 */
export class PathPages implements TaskPaths {
  private inputTotal: number | null = null;

  constructor(
    private readonly access: FileAccess,
    private readonly held: Held,
    private readonly status: StatusReporter,
    /** Also the paths an earlier attempt reported, with their state. */
    private readonly includeReported: boolean,
  ) {}

  async total(): Promise<number> {
    if (this.inputTotal === null) await this.page("");
    return this.inputTotal!;
  }

  private async page(token: string): Promise<ListTaskPathsResponse> {
    const res = await this.access.api.listTaskPaths({
      taskId: this.held.taskId,
      lease: this.held.lease,
      runnerId: this.access.runnerId,
      pageSize: PAGE_SIZE,
      pageToken: token,
      includeReported: this.includeReported,
    });
    if (token === "") this.inputTotal = Number(res.inputTotal);
    return res;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<PathObject> {
    let next: Promise<ListTaskPathsResponse> | null = this.page("");
    while (next) {
      const res: ListTaskPathsResponse = await next;
      next = res.nextPageToken === "" ? null : this.page(res.nextPageToken);
      // A page read ahead is not left unhandled if the task stops early.
      next?.catch(() => {});
      for (const p of res.paths) yield pathObjectOf(p, this.includeReported);
      await this.status.caughtUp();
    }
  }
}

/**
 * The seed's StreamTaskResults: states are kept until a batch is full (or a
 * second passed) and sent while the task goes on, one report at a time; the
 * rest are sent by `flush`, which the runner awaits before it reports the
 * task's result. A report that failed fails the task (its flush throws).
 */
export class StatusReporter implements PathStatus {
  /** States not sent yet, by path (a path added twice keeps its last state). */
  private pending = new Map<string, { state: PathState; message: string }>();
  private sending: Promise<void> | null = null;
  private failure: Error | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly counts: Record<PathStateName, number> = { processed: 0, skipped: 0, aborted: 0, failures: 0, inprogress: 0 };

  constructor(
    private readonly access: FileAccess,
    private readonly held: Held,
  ) {}

  get summary(): Readonly<Record<PathStateName, number>> {
    return this.counts;
  }

  add(state: PathStateName, path: string | PathObject, message?: string | readonly string[]): void {
    const code = STATE_TO[state];
    if (code === undefined) throw new TypeError(`unknown path state ${JSON.stringify(state)}: use ${PATH_STATE_NAMES.join(", ")}`);
    const p = typeof path === "string" ? path : path?.path;
    if (typeof p !== "string" || p === "") throw new TypeError("status.add needs a path: a non-empty string or a path object with `path`");
    if (this.failure) throw this.failure;
    this.counts[state]++;
    this.pending.set(p, { state: code, message: typeof message === "string" ? message : (message ?? []).join("\n") });
    if (this.pending.size >= REPORT_BATCH) this.send();
    else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.send();
      }, REPORT_INTERVAL_MS);
      this.timer.unref();
    }
  }

  /** Resolves once fewer than two batches wait: what the path pages wait on before reading on. */
  async caughtUp(): Promise<void> {
    while (this.pending.size >= 2 * REPORT_BATCH && this.sending) await this.sending;
    if (this.failure) throw this.failure;
  }

  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    while (this.pending.size > 0 || this.sending) {
      if (!this.sending) this.send();
      await this.sending;
    }
    if (this.failure) throw this.failure;
  }

  /** Starts sending a batch unless one is on its way (that one starts the next when it is done). */
  private send(): void {
    if (this.sending || this.pending.size === 0 || this.failure) return;
    const batch = this.pending;
    // More than a batch waits only after a report failed to keep up: send at most one.
    let rest: Map<string, { state: PathState; message: string }> | null = null;
    if (batch.size > REPORT_BATCH) {
      rest = new Map();
      let i = 0;
      for (const [k, v] of batch) if (i++ >= REPORT_BATCH) rest.set(k, v);
      for (const k of rest.keys()) batch.delete(k);
    }
    this.pending = rest ?? new Map();
    this.sending = this.report(batch)
      .catch((e) => {
        this.failure = e instanceof Error ? e : new Error(String(e));
      })
      .finally(() => {
        this.sending = null;
        if (this.pending.size >= REPORT_BATCH) this.send();
      });
  }

  private async report(batch: Map<string, { state: PathState; message: string }>): Promise<void> {
    const paths = [...batch.keys()];
    const states: PathState[] = [];
    const messages: string[] = [];
    let anyMessage = false;
    for (const v of batch.values()) {
      states.push(v.state);
      messages.push(v.message);
      if (v.message !== "") anyMessage = true;
    }
    const req = { taskId: this.held.taskId, lease: this.held.lease, runnerId: this.access.runnerId, paths, states, messages: anyMessage ? messages : [] };
    for (let attempt = 1, delay = 100; ; attempt++, delay *= 2) {
      try {
        await this.access.api.reportPathStates(req);
        return;
      } catch (e) {
        if (attempt >= REPORT_ATTEMPTS || ConnectError.from(e).code !== Code.Unavailable) throw e;
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }
}
