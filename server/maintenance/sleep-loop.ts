/**
 * Runs a pass, then sleeps for as long as the pass says, then runs it again;
 * `wake(ms)` brings the next pass forward (never back). Passes never overlap:
 * a wake-up that comes during a pass is kept and honoured after it. Timers are
 * unref'd, so the loop never keeps a process alive. The server's background
 * duties (lease expiry, schedules, listings, job retention) are such loops.
 */
export class SleepLoop {
  private timer: NodeJS.Timeout | null = null;
  private wakeAt = Infinity;
  private running = false;
  /** The earliest wake-up asked for during the running pass. */
  private pendingAt = Infinity;
  private stopped = true;

  constructor(
    /** Does the work; returns how long to sleep before the next pass, in ms. */
    private readonly pass: () => Promise<number>,
    private readonly onError: (error: unknown) => void,
    /** The sleep after a pass that threw. */
    private readonly errorDelayMs = 5_000,
  ) {}

  start(): void {
    this.stopped = false;
    this.wake(0);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.wakeAt = Infinity;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Makes sure a pass starts no later than `ms` from now. */
  wake(ms: number): void {
    if (this.stopped) return;
    const at = Date.now() + Math.max(0, ms);
    if (this.running) {
      this.pendingAt = Math.min(this.pendingAt, at);
      return;
    }
    if (at >= this.wakeAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.wakeAt = at;
    this.timer = setTimeout(() => void this.run(), at - Date.now());
    this.timer.unref();
  }

  private async run(): Promise<void> {
    this.timer = null;
    this.wakeAt = Infinity;
    if (this.stopped) return;
    this.running = true;
    this.pendingAt = Infinity;
    let sleep: number;
    try {
      sleep = await this.pass();
    } catch (e) {
      this.onError(e);
      sleep = this.errorDelayMs;
    }
    this.running = false;
    this.wake(Math.min(sleep, this.pendingAt - Date.now()));
  }
}
