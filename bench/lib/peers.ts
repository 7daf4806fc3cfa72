import { join } from "node:path";
import { Job, Queue } from "bullmq";
import PgBoss from "pg-boss";
import postgres, { type Sql } from "postgres";
import { Child, ROOT, track } from "./child.js";
import { type Databases, fanoutCounterTime, waitUntil } from "./db.js";
import { BULLMQ, PGBOSS } from "./peer-settings.js";
import type { Redis } from "ioredis";
import { adminRedis, bullmqConnection, deleteKeys, makeDurable, redisPid, redisUrl } from "./redis.js";
import type { RunnerSpec, Settings, System } from "./systems.js";
import { now } from "./util.js";

const BULK = 10_000;

/**
 * BullMQ queues of runs not yet stopped, closed by `closeQueues` on Ctrl-C
 * before their keys are deleted; after that no run starts.
 */
const openQueues = new Set<Queue>();
let queuesClosed = false;

export async function closeQueues(): Promise<void> {
  queuesClosed = true;
  await Promise.all([...openQueues].map((q) => q.close().catch(() => {})));
}

/** The Redis key prefix of this benchmark process's BullMQ runs (then the run's number). */
export const BULLMQ_PREFIX = `sluice-bench-${process.pid}-`;
let prefixCounter = 0;

/**
 * BullMQ on the Redis at REDIS_URL (or 127.0.0.1:6379), in a key prefix of
 * its own that is deleted after the run. With `fsync`, Redis is switched to
 * `appendonly yes` + `appendfsync always` (every write on disk before BullMQ
 * hears OK) for the run, and switched back afterwards.
 */
export class BullMQSystem implements System {
  readonly sql = undefined;
  private runnerCount = 0;
  private restore?: () => Promise<void>;

  private constructor(
    readonly label: "bullmq" | "bullmq-fsync",
    private readonly prefix: string,
    private readonly queue: Queue,
    private readonly admin: Redis,
    private readonly settings: Settings,
  ) {}

  static async start(settings: Settings, fsync: boolean): Promise<BullMQSystem> {
    if (queuesClosed) throw new Error("the benchmark is stopping");
    const prefix = `${BULLMQ_PREFIX}${++prefixCounter}`;
    const queue = new Queue(BULLMQ.queue, { connection: bullmqConnection(), prefix, defaultJobOptions: BULLMQ.jobOptions });
    queue.on("error", (e) => console.error("bullmq queue error:", e));
    openQueues.add(queue);
    const sys = new BullMQSystem(fsync ? "bullmq-fsync" : "bullmq", prefix, queue, await adminRedis(), settings);
    try {
      await queue.waitUntilReady();
      if (fsync) {
        // Checked in the same turn as makeDurable registers its undo, so that
        // closeQueues (Ctrl-C) either sees that undo or stops this run.
        if (queuesClosed) throw new Error("the benchmark is stopping");
        sys.restore = await makeDurable();
      }
      return sys;
    } catch (e) {
      await sys.stop();
      throw e;
    }
  }

  servers(): Child[] {
    return [];
  }

  /** redis-server, when it runs on this machine (its CPU counts like PostgreSQL's backends do). */
  async backendPids(): Promise<number[]> {
    const pid = await redisPid(this.admin);
    return pid === undefined ? [] : [pid];
  }

  /** `addBulk` of up to 10,000 jobs per call. */
  async fillNoops(n: number, perCall = BULK): Promise<void> {
    for (let done = 0; done < n; ) {
      const size = Math.min(perCall, n - done);
      const t = now();
      await this.queue.addBulk(Array.from({ length: size }, () => ({ name: "noop", data: { t }, opts: BULLMQ.jobOptions })));
      done += size;
    }
  }

  async spawnRunners(spec: RunnerSpec): Promise<Child[]> {
    const children: Child[] = [];
    for (let i = 0; i < spec.processes; i++) {
      children.push(
        track(
          new Child(
            `${this.label}-worker-${++this.runnerCount}`,
            [join(ROOT, "bench", "bullmq-runner.ts")],
            { REDIS_URL: redisUrl(), BENCH_BULLMQ_PREFIX: this.prefix },
            { echo: this.settings.verbose, nodeArgs: this.settings.runnerNodeArgs },
          ),
        ),
      );
    }
    await Promise.all(children.map((c) => c.next("loaded")));
    return children;
  }

  async busy(): Promise<boolean> {
    const counts = await this.queue.getJobCounts("waiting", "active", "delayed", "prioritized", "waiting-children", "paused");
    return Object.values(counts).some((c) => c > 0);
  }

  submitterEnv(): NodeJS.ProcessEnv {
    return { BENCH_SYSTEM: "bullmq", REDIS_URL: redisUrl(), BENCH_BULLMQ_PREFIX: this.prefix };
  }

  /** The root job adds a flow: `fanout_final` with `n` children. From the root's creation to the final job's end. */
  async fanout(n: number, timeoutMs: number): Promise<number> {
    const root = await this.queue.add("fanout_root", { n }, { jobId: "fanout-root" });
    let ms = NaN;
    await waitUntil(
      async () => {
        const final = await Job.fromId(this.queue, "fanout-final");
        if (final?.failedReason) throw new Error(`fan-out final job failed: ${final.failedReason}`);
        if (!final?.finishedOn) return false;
        ms = final.finishedOn - root.timestamp;
        return true;
      },
      "the fan-out final job to run",
      timeoutMs,
      20,
    );
    return ms;
  }

  async stop(): Promise<void> {
    try {
      await this.queue.obliterate({ force: true }).catch(() => {});
      // Keys obliterate leaves (its meta and event stream, the flow's).
      await deleteKeys(this.admin, `${this.prefix}:*`);
    } finally {
      await this.restore?.();
      await this.queue.close();
      openQueues.delete(this.queue);
      this.admin.disconnect();
    }
  }
}

/**
 * pg-boss 10 in a fresh database of its own on the benchmark's PostgreSQL,
 * with the same fan-out counter table as graphile-worker's (pg-boss has no
 * dependencies between jobs).
 */
export class PgBossSystem implements System {
  readonly label = "pg-boss" as const;
  private runnerCount = 0;
  sql!: Sql;

  private constructor(
    private readonly dbs: Databases,
    private readonly db: { name: string; url: string },
    private readonly boss: PgBoss,
    private readonly settings: Settings,
  ) {}

  /** Creates the database, pg-boss's schema (its own migrations, on start) and the queues. */
  static async start(dbs: Databases, settings: Settings): Promise<PgBossSystem> {
    const db = await dbs.create("pgboss");
    // This instance only queues: no maintenance or cron loops in the orchestrator.
    const boss = new PgBoss({ connectionString: db.url, max: PGBOSS.poolSize, supervise: false, schedule: false });
    boss.on("error", (e) => console.error("pg-boss error:", e));
    const sys = new PgBossSystem(dbs, db, boss, settings);
    try {
      await boss.start();
      for (const q of ["noop", "fanout_root", "fanout_leaf", "fanout_final"]) await boss.createQueue(q);
      sys.sql = postgres(db.url, { max: 1, onnotice: () => {} });
      await sys.sql`CREATE TABLE bench_fanout (id int PRIMARY KEY, remaining int NOT NULL, created_at timestamptz NOT NULL, finished_at timestamptz)`;
      return sys;
    } catch (e) {
      await sys.stop();
      throw e;
    }
  }

  servers(): Child[] {
    return [];
  }

  async backendPids(): Promise<number[]> {
    const rows = await this.sql<{ pid: number }[]>`
      SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`;
    return rows.map((r) => r.pid);
  }

  /** `boss.insert` of up to 10,000 jobs per call. */
  async fillNoops(n: number, perCall = BULK): Promise<void> {
    for (let done = 0; done < n; ) {
      const size = Math.min(perCall, n - done);
      const t = now();
      await this.boss.insert(Array.from({ length: size }, () => ({ name: "noop", data: { t } })));
      done += size;
    }
  }

  async spawnRunners(spec: RunnerSpec): Promise<Child[]> {
    const children: Child[] = [];
    for (let i = 0; i < spec.processes; i++) {
      children.push(
        track(
          new Child(
            `pg-boss-worker-${++this.runnerCount}`,
            [join(ROOT, "bench", "pgboss-runner.ts")],
            { DATABASE_URL: this.db.url },
            { echo: this.settings.verbose, nodeArgs: this.settings.runnerNodeArgs },
          ),
        ),
      );
    }
    await Promise.all(children.map((c) => c.next("loaded")));
    return children;
  }

  async busy(): Promise<boolean> {
    const [row] = await this.sql<{ busy: boolean }[]>`
      SELECT EXISTS (SELECT 1 FROM pgboss.job WHERE state IN ('created', 'retry', 'active')) AS busy`;
    return row.busy;
  }

  submitterEnv(): NodeJS.ProcessEnv {
    return { BENCH_SYSTEM: "pgboss", DATABASE_URL: this.db.url };
  }

  async fanout(n: number, timeoutMs: number): Promise<number> {
    const id = 1;
    await this.sql`INSERT INTO bench_fanout (id, remaining, created_at) VALUES (${id}, ${n}, now())`;
    await this.boss.send("fanout_root", { run: id, n });
    return fanoutCounterTime(this.sql, id, timeoutMs);
  }

  async stop(): Promise<void> {
    await this.boss.stop({ graceful: false, wait: true, timeout: 5_000 }).catch(() => {});
    await this.sql?.end({ timeout: 5 });
    await this.dbs.drop(this.db.name);
  }
}
