import { randomUUID } from "node:crypto";
import type { Sql } from "postgres";
import { CANCEL_CHANNEL, FOLLOW_CHANNEL, JOB_EVENTS_CHANNEL } from "../store/channels.js";
import { followJob, followedJobs, unfollowJob } from "../store/job-followers.js";

/** How long a follow lasts in job_followers unless its server extends it. */
export const FOLLOW_TTL_MS = 60_000;

/**
 * Who follows which job (TailJobLogs), across servers. Every server keeps the
 * set of followed jobs in memory (from job_followers, kept current by NOTIFYs
 * on FOLLOW_CHANNEL), so that the paths that write logs, progress and results
 * notify only for followed jobs, with a lookup per job and no statement when
 * nobody follows. This server's followers are woken by NOTIFYs on
 * JOB_EVENTS_CHANNEL (and CANCEL_CHANNEL, for jobs cancelled or failed).
 */
export class JobFollowers {
  private followed = new Set<string>();
  private readonly local = new Map<string, Set<() => void>>();
  private unlisten: (() => Promise<void>)[] = [];
  private refresher: NodeJS.Timeout | null = null;
  private readonly id = randomUUID();

  constructor(
    private readonly sql: Sql,
    private readonly onError: (e: unknown) => void,
  ) {}

  async start(): Promise<void> {
    const reload = () => void this.reload().catch(this.onError);
    const follow = await this.sql.listen(FOLLOW_CHANNEL, reload, reload);
    // A listener reconnect may have missed events: every local follower looks again.
    const events = await this.sql.listen(JOB_EVENTS_CHANNEL, (jobId) => this.wake(jobId), () => this.wakeAll());
    const cancels = await this.sql.listen(CANCEL_CHANNEL, (jobId) => this.wake(jobId));
    this.unlisten = [follow.unlisten, events.unlisten, cancels.unlisten];
    // This server's follows are extended well before they expire.
    this.refresher = setInterval(() => void this.extend().catch(this.onError), FOLLOW_TTL_MS / 3);
    this.refresher.unref();
  }

  async stop(): Promise<void> {
    if (this.refresher) clearInterval(this.refresher);
    this.refresher = null;
    await Promise.all(this.unlisten.map((u) => u().catch(() => {})));
    this.unlisten = [];
  }

  /** Whether anyone follows any job (a test before looking up jobs one by one). */
  get any(): boolean {
    return this.followed.size > 0;
  }

  /** The jobs among these that someone follows (each once). */
  followedAmong(jobIds: Iterable<string>): string[] {
    if (this.followed.size === 0) return [];
    const out = new Set<string>();
    for (const j of jobIds) if (this.followed.has(j)) out.add(j);
    return [...out];
  }

  /**
   * Follows a job on behalf of a caller of this server: `wake` is called when
   * it may have changed. Returns the function that stops following.
   */
  async follow(jobId: string, wake: () => void): Promise<() => Promise<void>> {
    let set = this.local.get(jobId);
    if (!set) this.local.set(jobId, (set = new Set()));
    set.add(wake);
    this.followed.add(jobId);
    await followJob(this.sql, jobId, this.id, FOLLOW_TTL_MS);
    return async () => {
      set.delete(wake);
      if (set.size > 0) return;
      this.local.delete(jobId);
      await unfollowJob(this.sql, jobId, this.id).catch(this.onError);
    };
  }

  private async reload(): Promise<void> {
    const jobs = new Set(await followedJobs(this.sql));
    for (const j of this.local.keys()) jobs.add(j);
    this.followed = jobs;
  }

  private async extend(): Promise<void> {
    for (const jobId of this.local.keys()) await followJob(this.sql, jobId, this.id, FOLLOW_TTL_MS);
  }

  private wake(jobId: string): void {
    const set = this.local.get(jobId);
    if (set) for (const w of set) w();
  }

  private wakeAll(): void {
    for (const set of this.local.values()) for (const w of set) w();
  }
}
