import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres, { type Sql } from "postgres";
import { createDatabaseOn } from "../support/databases.js";
import { RunnerProcess, ServerProcess, freePort } from "./processes.js";

export interface FleetOptions {
  /** A database URL on the PostgreSQL server to use; the fleet creates a database of its own there. */
  adminUrl: string;
  /** Prefix of the database's name (a test run drops every database with it at the end). */
  dbPrefix: string;
  /** The servers' lease TTL (SLUICE_LEASE_TTL_MS). */
  leaseTtlMs: number;
}

/** What the database and the tasks' own records say at the end of a scenario. */
export interface Counts {
  /** Tasks of acknowledged submits (every job of the suite is one task). */
  submitted: number;
  /** Of those, computed in the database. */
  completed: number;
  /** Of those, with at least one execution in the tasks' records. */
  executed: number;
  /** Tasks (of any job) with more than one execution in the records. */
  executedMoreThanOnce: number;
  /** Acknowledged tasks not computed at the end. */
  lost: number;
  /** Acknowledged tasks computed but never executed according to their records. */
  neverExecuted: number;
  /** Computed tasks whose lease no execution record names: a completion nobody executed. */
  completedUnexecuted: number;
  /** Jobs whose count of open tasks disagrees with their tasks: a completion counted twice (or not at all). */
  miscounted: number;
  /** Tasks that failed (the suite's task never throws). */
  failed: number;
  /** Acknowledged jobs that are not in the database. */
  acknowledgedMissing: number;
  /** Jobs in the database that no acknowledgement named (written, but the answer was lost). */
  writtenUnacknowledged: number;
}


const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** How often the queue's progress is read from the database. */
const POLL_MS = 100;

/**
 * Servers and runners as separate processes on one fresh database, the
 * execution records of their tasks, and a connection of its own to watch the
 * queue from the database.
 */
export class Fleet {
  readonly servers: ServerProcess[] = [];
  readonly runners: RunnerProcess[] = [];
  /** Every runner process ever started (killed ones too): their crashes count. */
  private readonly everRun: RunnerProcess[] = [];

  private constructor(
    readonly options: FleetOptions,
    readonly databaseUrl: string,
    private readonly dropDatabase: () => Promise<void>,
    private readonly recordDir: string,
    /** One connection: a backend termination run on it spares it. */
    readonly sql: Sql,
  ) {}

  static async create(options: FleetOptions): Promise<Fleet> {
    const db = await createDatabaseOn(options.adminUrl, `${options.dbPrefix}${randomBytes(5).toString("hex")}`);
    const dir = await mkdtemp(join(tmpdir(), "sluice-faults-"));
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    return new Fleet(options, db.url, db.drop, dir, sql);
  }

  /** Starts a server on a port of its own (one at a time: the first applies the migrations). */
  async addServer(): Promise<ServerProcess> {
    const server = new ServerProcess(await freePort(), {
      DATABASE_URL: this.databaseUrl,
      SLUICE_LEASE_TTL_MS: String(this.options.leaseTtlMs),
    });
    this.servers.push(server);
    await server.start();
    return server;
  }

  /** Starts runner processes on `server`, `concurrency` slots each, all at once. */
  async addRunners(server: ServerProcess, count: number, concurrency: number): Promise<RunnerProcess[]> {
    const added = Array.from(
      { length: count },
      () => new RunnerProcess(server, concurrency, join(this.recordDir, `${randomBytes(6).toString("hex")}.log`)),
    );
    this.runners.push(...added);
    this.everRun.push(...added);
    await Promise.all(added.map((r) => r.start()));
    return added;
  }

  /** Kills a runner for good and forgets it. */
  async killRunner(runner: RunnerProcess): Promise<void> {
    await runner.kill();
    this.runners.splice(this.runners.indexOf(runner), 1);
  }

  /** Exits of servers and runners that the scenario did not cause. */
  crashes(): string[] {
    return [...this.servers, ...this.everRun].flatMap((p) => p.crashes);
  }

  /** Unhandled rejections the servers logged. */
  unhandled(): string[] {
    return this.servers.flatMap((s) => s.unhandled);
  }

  /** Tasks computed, and tasks in all. */
  async progress(): Promise<{ computed: number; total: number }> {
    const [row] = await this.sql<{ computed: number; total: number }[]>`
      SELECT count(*) FILTER (WHERE state = 'computed')::int AS computed, count(*)::int AS total FROM tasks`;
    return row;
  }

  /** Waits until at least `target` tasks are computed; false if none was computed for `stallMs`. */
  async waitForComputed(target: number, stallMs: number): Promise<boolean> {
    let last = -1;
    let lastChange = performance.now();
    for (;;) {
      const { computed } = await this.progressOrNull();
      if (computed >= target) return true;
      if (computed !== last) {
        last = computed;
        lastChange = performance.now();
      } else if (performance.now() - lastChange > stallMs) {
        return false;
      }
      await sleep(POLL_MS);
    }
  }

  /**
   * When the queue moves again: the moment `need` tasks more than `from` are
   * computed (fewer when fewer are left), as ms after `since`; null when that
   * does not happen within `boundMs` of `since`.
   */
  async movedAfter(since: number, from: number, need: number, boundMs: number): Promise<number | null> {
    for (;;) {
      const { computed, total } = await this.progressOrNull();
      if (computed >= Math.min(from + need, total)) return Math.round(performance.now() - since);
      if (performance.now() - since > boundMs) return null;
      await sleep(POLL_MS);
    }
  }

  /**
   * When every runner works again: the moment each of `runners` has executed
   * `need` more tasks than when this was called (or the queue is empty), as
   * ms after `since`; null when that does not happen within `boundMs` of
   * `since`. A runner left connected and idle while work waits never gets there.
   */
  async everyRunnerMoved(since: number, runners: readonly RunnerProcess[], need: number, boundMs: number): Promise<number | null> {
    const base = await Promise.all(runners.map((r) => this.executedBy(r)));
    for (;;) {
      const now = await Promise.all(runners.map((r) => this.executedBy(r)));
      if (now.every((n, i) => n - base[i] >= need)) return Math.round(performance.now() - since);
      const { computed, total } = await this.progressOrNull();
      if (computed >= total) return Math.round(performance.now() - since);
      if (performance.now() - since > boundMs) return null;
      await sleep(POLL_MS);
    }
  }

  /** Executions in a runner's records so far. */
  private async executedBy(runner: RunnerProcess): Promise<number> {
    let text: string;
    try {
      text = await readFile(runner.records, "utf8");
    } catch {
      return 0;
    }
    let n = 0;
    for (let i = text.indexOf("\n"); i !== -1; i = text.indexOf("\n", i + 1)) n++;
    return n;
  }

  /** Ids of tasks running under the leases of these runners. */
  async runningOn(runnerIds: string[]): Promise<string[]> {
    const rows = await this.sql<{ id: string }[]>`
      SELECT id::text FROM tasks WHERE state = 'running' AND runner_id = ANY(${runnerIds}::uuid[])`;
    return rows.map((r) => r.id);
  }

  /** Ms after `since` when every task of `ids` was computed; null when not within `boundMs` of `since`. */
  async computedAfter(since: number, ids: string[], boundMs: number): Promise<number | null> {
    for (;;) {
      let left = ids.length;
      if (left > 0) {
        try {
          const [row] = await this.sql<{ left: number }[]>`
            SELECT count(*)::int AS left FROM tasks WHERE id = ANY(${ids}::bigint[]) AND state <> 'computed'`;
          left = row.left;
        } catch {
          // The watching connection was terminated; postgres.js opens another.
        }
      }
      if (left === 0) return Math.round(performance.now() - since);
      if (performance.now() - since > boundMs) return null;
      await sleep(POLL_MS);
    }
  }

  /** Terminates every backend of the fleet's database but the watching connection's own. */
  async terminateBackends(): Promise<number> {
    const [row] = await this.sql<{ n: number }[]>`
      SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid()`;
    return row.n;
  }

  /** Counts what happened, from the database and from the execution records. */
  async count(acknowledged: ReadonlyMap<string, string>): Promise<Counts> {
    const ackedIds = new Set(acknowledged.values());
    const jobs = await this.sql<{ id: string; state: string; open_tasks: number; not_computed: number }[]>`
      SELECT j.id::text, j.state::text, j.open_tasks,
             (SELECT count(*) FROM tasks t WHERE t.job_id = j.id AND t.state <> 'computed')::int AS not_computed
      FROM jobs j`;
    const tasks = await this.sql<{ id: string; job_id: string; lease: number; state: string }[]>`
      SELECT id::text, job_id::text, lease, state::text FROM tasks`;
    const executions = await this.executions();

    const jobIds = new Set(jobs.map((j) => j.id));
    const computedJobs = new Set<string>();
    let executedMoreThanOnce = 0;
    let completedUnexecuted = 0;
    let failed = 0;
    let executed = 0;
    let neverExecuted = 0;
    for (const t of tasks) {
      const leases = executions.get(t.id) ?? [];
      if (leases.length > 1) executedMoreThanOnce++;
      if (t.state === "failed") failed++;
      if (t.state === "computed" && !leases.includes(t.lease)) completedUnexecuted++;
      if (ackedIds.has(t.job_id)) {
        if (t.state === "computed") computedJobs.add(t.job_id);
        if (leases.length > 0) executed++;
        else if (t.state === "computed") neverExecuted++;
      }
    }
    return {
      submitted: ackedIds.size,
      completed: computedJobs.size,
      executed,
      executedMoreThanOnce,
      lost: ackedIds.size - computedJobs.size,
      neverExecuted,
      completedUnexecuted,
      miscounted: jobs.filter((j) => j.state !== "failed" && j.state !== "cancelled" && j.open_tasks !== j.not_computed).length,
      failed,
      acknowledgedMissing: [...ackedIds].filter((id) => !jobIds.has(id)).length,
      writtenUnacknowledged: jobs.filter((j) => !ackedIds.has(j.id)).length,
    };
  }

  /** The leases under which each task was executed, from every runner's record file. */
  private async executions(): Promise<Map<string, number[]>> {
    const byTask = new Map<string, number[]>();
    for (const file of await readdir(this.recordDir)) {
      const text = await readFile(join(this.recordDir, file), "utf8");
      for (const line of text.split("\n")) {
        if (line === "") continue;
        const [taskId, lease] = line.split(" ");
        const leases = byTask.get(taskId) ?? [];
        leases.push(Number(lease));
        byTask.set(taskId, leases);
      }
    }
    return byTask;
  }

  /** Kills every process, drops the database, removes the records. */
  async close(): Promise<void> {
    await Promise.all([...this.everRun, ...this.servers].map((p) => p.kill()));
    await this.sql.end({ timeout: 5 });
    await this.dropDatabase();
    await rm(this.recordDir, { recursive: true, force: true });
  }

  /** `progress`, or no progress while the watching connection is being replaced. */
  private async progressOrNull(): Promise<{ computed: number; total: number }> {
    try {
      return await this.progress();
    } catch {
      return { computed: -1, total: Number.POSITIVE_INFINITY };
    }
  }
}
