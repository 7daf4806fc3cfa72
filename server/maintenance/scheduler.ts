import type { Sql } from "postgres";
import { fireDueTriggers, nextCronTick } from "../store/recurrent-tasks.js";
import { SCHEDULE_CHANNEL, nextScheduledStart, startDueJobs } from "../store/schedules.js";

export interface SchedulerConfig {
  /** The longest it sleeps without looking, in case a notification was lost. */
  maxIntervalMs: number;
  /** Scheduled jobs started, or cron triggers fired, per transaction. */
  batchSize: number;
}

export const SchedulerDefaults: SchedulerConfig = {
  maxIntervalMs: 30_000,
  batchSize: 500,
};

/**
 * Starts scheduled jobs when they are due and submits the jobs of cron
 * triggers. It sleeps until the earliest due time (each read from an index) and
 * is woken early by a NOTIFY when something is scheduled sooner, so it costs
 * nothing between due times, however many schedules are stored. Every server
 * runs one; SKIP LOCKED lets them share the work, and a unique index on
 * (recurrent task, tick) keeps it to one job per tick.
 */
export class Scheduler {
  private timer: NodeJS.Timeout | null = null;
  private wakeAt = Infinity;
  private running = false;
  private again = false;
  private stopped = true;
  private unlisten: (() => Promise<void>) | null = null;

  constructor(
    private readonly sql: Sql,
    private readonly config: SchedulerConfig,
    private readonly onError: (error: unknown) => void,
  ) {}

  async start(): Promise<void> {
    this.stopped = false;
    const { unlisten } = await this.sql.listen(
      SCHEDULE_CHANNEL,
      (payload) => this.wakeBy(Number(payload)),
      () => this.wakeBy(0),
    );
    this.unlisten = unlisten;
    this.wakeBy(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.unlisten?.().catch(() => {});
  }

  /** Makes sure a pass runs no later than `at` (epoch ms). */
  private wakeBy(at: number): void {
    if (this.stopped) return;
    if (this.running) {
      if (at <= Date.now()) this.again = true;
      else if (at < this.wakeAt) this.arm(at);
      return;
    }
    if (at < this.wakeAt) this.arm(at);
  }

  private arm(at: number): void {
    if (this.timer) clearTimeout(this.timer);
    const capped = Math.min(at, Date.now() + this.config.maxIntervalMs);
    this.wakeAt = capped;
    this.timer = setTimeout(() => void this.pass(), Math.max(0, capped - Date.now()));
    this.timer.unref();
  }

  private async pass(): Promise<void> {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.timer = null;
    this.wakeAt = Infinity;
    this.running = true;
    let next = Date.now() + this.config.maxIntervalMs;
    try {
      do {
        this.again = false;
        const now = new Date();
        const { batchSize } = this.config;
        while ((await startDueJobs(this.sql, now, batchSize)) === batchSize && !this.stopped);
        while ((await fireDueTriggers(this.sql, now, batchSize)) === batchSize && !this.stopped);
      } while (this.again && !this.stopped);
      const [job, tick] = await Promise.all([nextScheduledStart(this.sql), nextCronTick(this.sql)]);
      for (const at of [job, tick]) if (at) next = Math.min(next, at.getTime());
    } catch (e) {
      this.onError(e);
      next = Date.now() + 1_000;
    } finally {
      this.running = false;
      // Earlier wake-ups armed during the pass stand; otherwise sleep until the next due time.
      if (!this.stopped) this.wakeBy(Math.max(next, Date.now() + 1));
    }
  }
}
