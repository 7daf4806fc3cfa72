export interface RetentionOptions {
  /**
   * Delete a job's cache once nothing was written to it for this long (checked
   * when the backend is first used, then every tenth of the period, at most
   * hourly). Unset: caches are kept until deleted.
   */
  retentionMs?: number;
}

/** Deletes the caches of jobs that were not written to within the retention period. */
export class Retention {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly options: RetentionOptions,
    private readonly lastWritten: () => Promise<Map<string, Date>>,
    private readonly removeJob: (jobId: string) => Promise<void>,
  ) {
    const ms = options.retentionMs;
    if (ms !== undefined && (!Number.isFinite(ms) || ms <= 0)) throw new RangeError(`retentionMs must be a positive number of milliseconds, got ${ms}`);
  }

  /** Called on writes: starts the periodic pruning on first use. */
  touched(): void {
    const ms = this.options.retentionMs;
    if (ms === undefined || this.timer) return;
    this.timer = setInterval(() => void this.prune().catch(() => {}), Math.min(Math.max(ms / 10, 1_000), 3_600_000));
    this.timer.unref();
  }

  /** Deletes expired job caches now; returns their job ids. */
  async prune(): Promise<string[]> {
    const ms = this.options.retentionMs;
    if (ms === undefined) return [];
    const cutoff = Date.now() - ms;
    const removed: string[] = [];
    for (const [job, at] of await this.lastWritten()) {
      if (at.getTime() < cutoff) {
        await this.removeJob(job);
        removed.push(job);
      }
    }
    return removed;
  }
}
