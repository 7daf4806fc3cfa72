import type { MessageInitShape } from "@bufbuild/protobuf";
import { LogLevel, type TaskTelemetrySchema } from "../../gen/sluice/v1/observability_pb.js";

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

/** Lines waiting, one list per field (as they are sent). */
class Columns {
  taskIds: string[] = [];
  jobIds: string[] = [];
  attempts: number[] = [];
  levels: LogLevel[] = [];
  times: number[] = [];
  messages: string[] = [];
  fieldsJson: string[] = [];
  chars = 0;

  get length(): number {
    return this.taskIds.length;
  }

  push(taskId: string, jobId: string, attempt: number, level: LogLevel, time: number, message: string, fieldsJson: string): void {
    this.taskIds.push(taskId);
    this.jobIds.push(jobId);
    this.attempts.push(attempt);
    this.levels.push(level);
    this.times.push(time);
    this.messages.push(message);
    this.fieldsJson.push(fieldsJson);
    this.chars += message.length + fieldsJson.length;
  }

  /** The first `n` lines, taken out. */
  splice(n: number): Columns {
    const out = new Columns();
    if (n >= this.length) {
      Object.assign(out, this);
      Object.assign(this, new Columns());
      return out;
    }
    out.taskIds = this.taskIds.splice(0, n);
    out.jobIds = this.jobIds.splice(0, n);
    out.attempts = this.attempts.splice(0, n);
    out.levels = this.levels.splice(0, n);
    out.times = this.times.splice(0, n);
    out.messages = this.messages.splice(0, n);
    out.fieldsJson = this.fieldsJson.splice(0, n);
    for (let i = 0; i < n; i++) out.chars += out.messages[i].length + out.fieldsJson[i].length;
    this.chars -= out.chars;
    return out;
  }

  /** Puts `earlier` in front of these lines. */
  prepend(earlier: Columns): void {
    this.taskIds = [...earlier.taskIds, ...this.taskIds];
    this.jobIds = [...earlier.jobIds, ...this.jobIds];
    this.attempts = [...earlier.attempts, ...this.attempts];
    this.levels = [...earlier.levels, ...this.levels];
    this.times = [...earlier.times, ...this.times];
    this.messages = [...earlier.messages, ...this.messages];
    this.fieldsJson = [...earlier.fieldsJson, ...this.fieldsJson];
    this.chars += earlier.chars;
  }

  /** As the message's field: times as offsets from the first. */
  toMessage() {
    // Times only grow (Date.now() per line), so the first is the smallest.
    const base = this.times.length > 0 ? this.times[0] : 0;
    return {
      taskIds: this.taskIds,
      jobIds: this.jobIds,
      attempts: this.attempts,
      levels: this.levels,
      timeOffsetsMs: this.times.map((t) => Math.max(0, t - base)),
      messages: this.messages,
      fieldsJson: this.fieldsJson,
      baseTimeMs: BigInt(base),
    };
  }

  static fromMessage(m: NonNullable<TelemetryInit["lines"]>): Columns {
    const c = new Columns();
    const base = Number(m.baseTimeMs ?? 0);
    c.taskIds = [...(m.taskIds ?? [])];
    c.jobIds = [...(m.jobIds ?? [])];
    c.attempts = [...(m.attempts ?? [])];
    c.levels = [...(m.levels ?? [])];
    c.times = (m.timeOffsetsMs ?? []).map((o) => base + o);
    c.messages = [...(m.messages ?? [])];
    c.fieldsJson = [...(m.fieldsJson ?? [])];
    for (let i = 0; i < c.messages.length; i++) c.chars += c.messages[i].length + c.fieldsJson[i].length;
    return c;
  }
}

/**
 * Log lines and progress of the runner's tasks, waiting to be sent. The
 * results reporter takes what is waiting into each results message; what no
 * results message takes within `delayMs` (lines of tasks still running) goes
 * in a telemetry message of its own. Never a message per line.
 */
export class TelemetryBuffer {
  private lines = new Columns();
  private progress = new Map<string, { jobId: string; label: string; done: number; total: number }>();
  private dropped = 0;
  private timer: NodeJS.Timeout | null = null;
  /** Sends telemetry on its own; false when no session is open (it waits for `wake`). */
  sender: ((t: TelemetryInit) => boolean) | null = null;

  constructor(
    /** Characters of log lines sent per task attempt; later lines are dropped. */
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
    if (this.lines.chars + size > MAX_PENDING_CHARS) {
      this.dropped++;
      return;
    }
    this.push(source, level, text, fieldsJson);
  }

  private push(source: LogSource, level: LogLevel, message: string, fieldsJson: string): void {
    this.lines.push(source.taskId, source.jobId, source.attempt, level, Date.now(), message, fieldsJson);
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
    let n = this.lines.length;
    if (this.lines.chars > MAX_MESSAGE_CHARS) {
      let taken = 0;
      n = 0;
      while (n < this.lines.length && taken < MAX_MESSAGE_CHARS) {
        taken += this.lines.messages[n].length + this.lines.fieldsJson[n].length;
        n++;
      }
    }
    const lines = this.lines.splice(n);
    if (this.dropped > 0 && lines.length > 0) {
      const notice = new Columns();
      notice.push(lines.taskIds[0], lines.jobIds[0], lines.attempts[0], LogLevel.WARN, lines.times[0], `sluice: ${this.dropped} log lines were dropped while the server could not be reached`, "");
      lines.prepend(notice);
      this.dropped = 0;
    }
    const progress = [...this.progress.values()].map((p) => ({ jobId: p.jobId, label: p.label, done: BigInt(p.done), total: BigInt(p.total) }));
    this.progress.clear();
    if (this.pending) this.schedule();
    else if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    return { lines: lines.length > 0 ? lines.toMessage() : undefined, progress };
  }

  /** Telemetry taken for a message that was not sent: it goes first in the next. */
  putBack(t: TelemetryInit, resend = true): void {
    if (t.lines) this.lines.prepend(Columns.fromMessage(t.lines));
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
