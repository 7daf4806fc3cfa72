import type { Sql } from "postgres";
import { expireLeases, nextLeaseExpiry } from "../store/leases.js";

export interface LeaseExpiryConfig {
  /** The longest it sleeps between checks when no lease is due sooner. */
  maxIntervalMs: number;
  /** Expired leases returned to the queue per statement. */
  batchSize: number;
}

export const LeaseExpiryDefaults: LeaseExpiryConfig = {
  maxIntervalMs: 5_000,
  batchSize: 1_000,
};

/**
 * Returns the tasks of runners that stopped extending their leases to the queue.
 * It sleeps until the earliest lease is due (read from the expiry index), so it
 * costs one indexed query per lease period, not a scan per second. Every server
 * runs one; SKIP LOCKED makes them share the work without conflict.
 */
export class LeaseExpiry {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private stopped = true;

  constructor(
    private readonly sql: Sql,
    private readonly config: LeaseExpiryConfig,
    private readonly onError: (error: unknown) => void,
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), Math.max(0, Math.min(delayMs, this.config.maxIntervalMs)));
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = true;
    let delay = this.config.maxIntervalMs;
    try {
      while ((await expireLeases(this.sql, this.config.batchSize)) === this.config.batchSize && !this.stopped);
      const next = await nextLeaseExpiry(this.sql);
      // A few milliseconds late, so the lease has surely passed in the database's clock too.
      if (next) delay = next.getTime() - Date.now() + 5;
    } catch (e) {
      this.onError(e);
    } finally {
      this.running = false;
      this.schedule(delay);
    }
  }
}
