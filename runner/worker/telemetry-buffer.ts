import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { LogLevel, type TaskLogLineSchema, type TaskTelemetrySchema } from "../../gen/sluice/v1/observability_pb.js";

type LineInit = MessageInitShape<typeof TaskLogLineSchema>;
export type TelemetryInit = MessageInitShape<typeof TaskTelemetrySchema>;

/** The text of one message's lines at most: more waits for the next message. */
const MAX_MESSAGE_CHARS = 4 * 1024 * 1024;
/** The text held while the server cannot be reached at most: more is dropped, and counted. */
const MAX_PENDING_CHARS = 32 * 1024 * 1024;
/** The longest line sent; longer ones are cut (the server cuts at the same length). */
const MAX_LINE_CHARS = 16 * 1024;

export { LogLevel };

/** The task a line belongs to, and what it has written so far. */
export interface LogSource {
  readonly jobId: string;
  readonly taskId: string;
  readonly attempt: number;
  /** Characters this attempt has sent; past the runner's limit, lines are dropped. */
  logChars: number;
  /** Lines dropped for the limit (one notice line is sent when the first is). */
  logDropped: number;
}

/**
 * Log lines and progress of the runner's tasks, waiting to be sent. The
 * results reporter takes what is waiting into each results message; what no
 * results message takes within `delayMs` (lines of tasks still running) goes
 * in a telemetry message of its own. Never a message per line.
 */
export class TelemetryBuffer {
  private lines: LineInit[] = [];
  private chars = 0;
  private progress = new Map<string, { jobId: string; label: string; done: number; total: number }>();
  private dropped = 0;
  private timer: NodeJS.Timeout | null = null;
  private lastMs = 0;
  private lastTime = timestampFromMs(0);
  /** Sends telemetry on its own; false when no session is open (it waits for `wake`). */
  sender: ((t: TelemetryInit) => boolean) | null = null;

  constructor(
    /** Characters of log lines kept per task attempt; later lines are dropped. */
    private readonly perTaskChars: number,
    private readonly delayMs = 100,
  ) {}

  /** Whether anything waits to be sent. */
  get pending(): boolean {
    return this.lines.length > 0 || this.progress.size > 0 || this.dropped > 0;
  }

  line(source: LogSource, level: LogLevel, message: string, fields?: Record<string, unknown>): void {
    let fieldsJson = "";
    if (fields !== undefined && fields !== null && Object.keys(fields).length > 0) {
      try {
        fieldsJson = JSON.stringify(fields);
      } catch {
        fieldsJson = "";
      }
    }
    const text = message.length > MAX_LINE_CHARS ? message.slice(0, MAX_LINE_CHARS) : message;
    const size = text.length + fieldsJson.length;
    if (source.logChars + size > this.perTaskChars) {
      if (source.logDropped++ === 0) {
        this.push(source, LogLevel.WARN, `sluice: this task wrote more than ${this.perTaskChars} characters of logs; further lines are not kept`, "");
      }
      return;
    }
    source.logChars += size;
    if (this.chars + size > MAX_PENDING_CHARS) {
      this.dropped++;
      return;
    }
    this.push(source, level, text, fieldsJson);
  }

  private push(source: LogSource, level: LogLevel, message: string, fieldsJson: string): void {
    // Lines of one millisecond share their timestamp message.
    const now = Date.now();
    if (now !== this.lastMs) {
      this.lastMs = now;
      this.lastTime = timestampFromMs(now);
    }
    this.lines.push({
      taskId: source.taskId,
      jobId: source.jobId,
      attempt: source.attempt,
      level,
      time: this.lastTime,
      message,
      fieldsJson,
    });
    this.chars += message.length + fieldsJson.length;
    this.schedule();
  }

  /** Adds to a job's progress under a label. */
  addProgress(jobId: string, label: string, done: number, total: number): void {
    const key = `${jobId} ${label}`;
    const p = this.progress.get(key);
    if (p) {
      p.done += done;
      p.total += total;
    } else {
      this.progress.set(key, { jobId, label, done, total });
    }
    this.schedule();
  }

  /** Everything waiting (up to a message's worth), or undefined when nothing is. */
  take(): TelemetryInit | undefined {
    if (!this.pending) return undefined;
    let lines: LineInit[];
    if (this.chars <= MAX_MESSAGE_CHARS) {
      lines = this.lines;
      this.lines = [];
      this.chars = 0;
    } else {
      let n = 0;
      let taken = 0;
      while (n < this.lines.length && taken < MAX_MESSAGE_CHARS) {
        taken += (this.lines[n].message?.length ?? 0) + (this.lines[n].fieldsJson?.length ?? 0);
        n++;
      }
      lines = this.lines.splice(0, n);
      this.chars -= taken;
    }
    if (this.dropped > 0 && lines.length > 0) {
      const first = lines[0];
      lines.unshift({ ...first, level: LogLevel.WARN, message: `sluice: ${this.dropped} log lines were dropped while the server could not be reached`, fieldsJson: "" });
      this.dropped = 0;
    }
    const progress = [...this.progress.values()].map((p) => ({ jobId: p.jobId, label: p.label, done: BigInt(p.done), total: BigInt(p.total) }));
    this.progress.clear();
    if (this.pending) this.schedule();
    else if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    return { lines, progress };
  }

  /** Telemetry taken for a message that was not sent: it goes first in the next. */
  putBack(t: TelemetryInit, resend = true): void {
    const lines = (t.lines ?? []) as LineInit[];
    this.lines = [...lines, ...this.lines];
    for (const l of lines) this.chars += (l.message?.length ?? 0) + (l.fieldsJson?.length ?? 0);
    for (const p of t.progress ?? []) {
      const key = `${p.jobId} ${p.label}`;
      const q = this.progress.get(key) ?? { jobId: p.jobId ?? "", label: p.label ?? "", done: 0, total: 0 };
      q.done += Number(p.done ?? 0);
      q.total += Number(p.total ?? 0);
      this.progress.set(key, q);
    }
    if (resend) this.schedule();
  }

  /** A session opened: what waits is sent soon. */
  wake(): void {
    if (this.pending) this.schedule();
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      const t = this.take();
      // No session: it waits for the next (`wake`).
      if (t && !this.sender?.(t)) this.putBack(t, false);
    }, this.delayMs);
    this.timer.unref();
  }

  /** Stops the timer (the runner stopped). */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
