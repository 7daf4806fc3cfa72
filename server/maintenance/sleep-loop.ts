import { type Clock, systemClock } from "./clock.js";

/**
 * Runs a pass, then sleeps for as long as the pass says, then runs it again;
 * `wake(ms)` brings the next pass forward (never back). Passes never overlap:
 * a wake-up that comes during a pass is kept and honoured after it. Timers are
 * unref'd, so the loop never keeps a process alive. The server's background
 * duties (lease expiry, schedules, listings, job retention) are such loops.
 */
export class SleepLoop {
  private cancelTimer: (() => void) | null = null;
  private wakeAt = Infinity;
  private running = false;
  /** The earliest wake-up asked for during the running pass. */
  private pendingAt = Infinity;
  private stopped = true;
  /** Callers of passNow waiting for the next pass to start and finish. */
  private waiting: { resolve: () => void; reject: (e: unknown) => void }[] = [];

  constructor(
    /** Does the work; returns how long to sleep before the next pass, in ms. */
    private readonly pass: () => Promise<number>,
    private readonly onError: (error: unknown) => void,
    /** The sleep after a pass that threw. */
    private readonly errorDelayMs = 5_000,
    private readonly clock: Clock = systemClock,
  ) {}

  start(): void {
    this.stopped = false;
    this.wake(0);
  }

  stop(): void {
    this.stopped = true;
    this.cancelTimer?.();
    this.cancelTimer = null;
    this.wakeAt = Infinity;
    for (const w of this.waiting.splice(0)) w.reject(new Error("the loop was stopped"));
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Makes sure a pass starts no later than `ms` from now. */
  wake(ms: number): void {
    if (this.stopped) return;
    const at = this.clock.now() + Math.max(0, ms);
    if (this.running) {
      this.pendingAt = Math.min(this.pendingAt, at);
      return;
    }
    if (at >= this.wakeAt) return;
    this.cancelTimer?.();
    this.wakeAt = at;
    this.cancelTimer = this.clock.at(at, () => void this.run());
  }

  /**
   * Starts a pass now (after the running one, if any) and resolves when it has
   * finished; rejects with what it threw. Tests that move the clock wait on it
   * to know the time they moved to has been handled.
   */
  passNow(): Promise<void> {
    if (this.stopped) return Promise.reject(new Error("the loop is stopped"));
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.wake(0);
    });
  }

  private async run(): Promise<void> {
    this.cancelTimer = null;
    this.wakeAt = Infinity;
    if (this.stopped) return;
    this.running = true;
    this.pendingAt = Infinity;
    const waiting = this.waiting.splice(0);
    let sleep: number;
    try {
      sleep = await this.pass();
      for (const w of waiting) w.resolve();
    } catch (e) {
      this.onError(e);
      for (const w of waiting) w.reject(e);
      sleep = this.errorDelayMs;
    }
    this.running = false;
    this.wake(Math.min(sleep, this.pendingAt - this.clock.now()));
  }
}

/** Rows that come due at a time (expired leases, retries whose backoff is over). */
export interface DueRows {
  /** Handles up to `limit` rows that are due; returns how many it handled. */
  handle(limit: number): Promise<number>;
  /** When the next row comes due; null when none is waiting. */
  next(): Promise<Date | null>;
  batchSize: number;
  /** The shortest and longest sleep after a pass. */
  minMs: number;
  maxMs: number;
}

/**
 * A loop over rows that come due: each pass handles them in batches until one
 * comes back short, then sleeps until the next row is due (a few milliseconds
 * late, so that it is due in the database's clock too), within `minMs` and
 * `maxMs`. `wakeAt` brings a pass forward for a row the caller just wrote.
 */
export class DueRowsLoop {
  private readonly loop: SleepLoop;

  constructor(
    private readonly rows: DueRows,
    onError: (error: unknown) => void,
  ) {
    this.loop = new SleepLoop(() => this.pass(), onError, rows.maxMs);
  }

  start(): void {
    this.loop.start();
  }

  stop(): void {
    this.loop.stop();
  }

  /** A row comes due at `at`: pass then at the latest. */
  wakeAt(at: Date): void {
    this.loop.wake(at.getTime() - Date.now());
  }

  private async pass(): Promise<number> {
    const { batchSize, minMs, maxMs } = this.rows;
    while ((await this.rows.handle(batchSize)) === batchSize && !this.loop.isStopped);
    const next = await this.rows.next();
    const due = next ? next.getTime() - Date.now() + 5 : maxMs;
    return Math.max(minMs, Math.min(maxMs, due));
  }
}
