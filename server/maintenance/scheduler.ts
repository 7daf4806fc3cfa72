import type { Sql } from "postgres";
import { fireDueTriggers, nextCronTick } from "../store/recurrent-tasks.js";
import { SCHEDULE_CHANNEL } from "../store/channels.js";
import { nextScheduledStart, startDueJobs } from "../store/schedules.js";
import { type Clock, systemClock } from "./clock.js";
import { SleepLoop } from "./sleep-loop.js";

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
 * (recurrent task, tick) keeps it to one job per tick. Due times are compared
 * with the clock it is given, passed to every statement as a parameter (never
 * PostgreSQL's now()), so that a test can move time.
 */
export class Scheduler {
  private readonly loop: SleepLoop;
  private unlisten: (() => Promise<void>) | null = null;

  constructor(
    private readonly sql: Sql,
    private readonly config: SchedulerConfig,
    onError: (error: unknown) => void,
    private readonly clock: Clock = systemClock,
  ) {
    this.loop = new SleepLoop(() => this.pass(), onError, 1_000, clock);
  }

  async start(): Promise<void> {
    const { unlisten } = await this.sql.listen(
      SCHEDULE_CHANNEL,
      (payload) => this.loop.wake(Number(payload) - this.clock.now()),
      () => this.loop.wake(0),
    );
    this.unlisten = unlisten;
    this.loop.start();
  }

  async stop(): Promise<void> {
    this.loop.stop();
    await this.unlisten?.().catch(() => {});
  }

  /** Runs a pass now and resolves when it has finished (see SleepLoop.passNow). */
  passNow(): Promise<void> {
    return this.loop.passNow();
  }

  /** Starts what is due; sleeps until the next due time (at most maxIntervalMs). */
  private async pass(): Promise<number> {
    const now = new Date(this.clock.now());
    const { batchSize, maxIntervalMs } = this.config;
    while ((await startDueJobs(this.sql, now, batchSize)) === batchSize && !this.loop.isStopped);
    while ((await fireDueTriggers(this.sql, now, batchSize)) === batchSize && !this.loop.isStopped);
    let next = now.getTime() + maxIntervalMs;
    const [job, tick] = await Promise.all([nextScheduledStart(this.sql), nextCronTick(this.sql)]);
    for (const at of [job, tick]) if (at) next = Math.min(next, at.getTime());
    return Math.max(1, next - this.clock.now());
  }
}
