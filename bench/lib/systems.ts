import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { Logger, runMigrations } from "graphile-worker";
import postgres, { type Sql } from "postgres";
import { JobService } from "../../gen/sluice/v1/job_service_pb.js";
import { Client } from "../../runner/index.js";
import { Child, ROOT, track } from "./child.js";
import { type Databases, fanoutCounterTime, waitUntil } from "./db.js";
import { now } from "./util.js";

export interface RunnerSpec {
  /** Runner processes. */
  processes: number;
  concurrency: number;
  /** Sluice: prefetch beyond concurrency. */
  prefetch?: number;
  /** graphile-worker: batching options on (localQueue 500, completeJobBatchDelay 0). */
  batched?: boolean;
  /** graphile-worker: pool size per process. */
  poolSize?: number;
}

export interface Settings {
  verbose: boolean;
  /** Extra node flags for Sluice server processes (e.g. --cpu-prof). */
  serverNodeArgs: string[];
  /** Extra node flags for runner and worker processes. */
  runnerNodeArgs: string[];
  /** The script and arguments of a Sluice server process (the package's compiled server, or bin/sluice.js server). */
  serverCommand: string[];
}

/** The systems the benchmark knows, as they are named in its output. */
export type SystemLabel = "sluice" | "graphile-worker" | "bullmq" | "bullmq-fsync" | "pg-boss";

/** One system under test, in a database (or Redis key prefix) of its own, with its processes. */
export interface System {
  readonly label: SystemLabel;
  /** Queues `n` no-op tasks in bulk (up to `perCall` per call), carrying the current time. */
  fillNoops(n: number, perCall?: number): Promise<void>;
  /** Starts runner processes; they wait for "start". */
  spawnRunners(spec: RunnerSpec): Promise<Child[]>;
  /** True while any queued or running task is left. */
  busy(): Promise<boolean>;
  /** Server processes (Sluice), for memory readings. */
  servers(): Child[];
  /** The environment of a submitter process (bench/submitter.ts) for this system. */
  submitterEnv(): NodeJS.ProcessEnv;
  /** Submits the fan-out job (root + n leaves + final) and resolves with its duration in ms, from the database's clock. */
  fanout(n: number, timeoutMs: number): Promise<number>;
  /** A one-off SQL connection to the system's database (for CHECKPOINT and sanity checks); none for BullMQ. */
  readonly sql?: Sql;
  /** The store's processes whose CPU counts: PostgreSQL backends on the system's database other than `sql`'s, or redis-server. */
  backendPids(): Promise<number[]>;
  stop(): Promise<void>;
}

const BULK_JOB_TASKS = 10_000;

const quietGraphileLogger = new Logger(() => (level, message) => {
  if (level === "error") console.error(`graphile-worker: ${message}`);
});

async function backendPids(sql: Sql): Promise<number[]> {
  const rows = await sql<{ pid: number }[]>`
    SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`;
  return rows.map((r) => r.pid);
}

export class SluiceSystem implements System {
  readonly label = "sluice" as const;
  private readonly serverChildren: Child[] = [];
  private runnerCount = 0;
  private client!: Client;
  sql!: Sql;

  private constructor(
    private readonly dbs: Databases,
    private readonly db: { name: string; url: string },
    private readonly settings: Settings,
  ) {}

  /** A fresh database and `servers` server processes (`settings.serverCommand`) on it. */
  static async start(dbs: Databases, settings: Settings, servers = 1): Promise<SluiceSystem> {
    const db = await dbs.create("sluice");
    const sys = new SluiceSystem(dbs, db, settings);
    try {
      for (let i = 0; i < servers; i++) {
        const child = track(
          new Child(
            `sluice-server-${i + 1}`,
            settings.serverCommand,
            { DATABASE_URL: db.url, SLUICE_PORT: "0", SLUICE_HOST: "127.0.0.1" },
            { echo: settings.verbose, nodeArgs: settings.serverNodeArgs },
          ),
        );
        sys.serverChildren.push(child);
        await child.waitFor(/Sluice is listening on (http:\/\/\S+)/, 60_000);
      }
      sys.client = new Client({ url: sys.urls[0] });
      sys.sql = postgres(db.url, { max: 1, onnotice: () => {} });
      return sys;
    } catch (e) {
      await sys.stop();
      throw e;
    }
  }

  get urls(): string[] {
    return this.serverChildren.map((c) => c.output.match(/Sluice is listening on (http:\/\/\S+)/)![1]);
  }

  servers(): Child[] {
    return this.serverChildren;
  }

  backendPids(): Promise<number[]> {
    return backendPids(this.sql);
  }

  /** Jobs of up to 10,000 tasks each, through JobService.SubmitJob (the generated client). */
  async fillNoops(n: number, tasksPerJob = BULK_JOB_TASKS): Promise<void> {
    const api = createClient(JobService, this.client.transport);
    const encoder = new TextEncoder();
    for (let done = 0; done < n; ) {
      const size = Math.min(tasksPerJob, n - done);
      const t = now();
      const tasks = Array.from({ length: size }, () => ({
        identifier: { name: "BenchNoop", version: "v1.0" },
        input: encoder.encode(`{"t":${t}}`),
        dependsOn: [],
      }));
      await api.submitJob({ name: "bench-drain", cluster: "default", tasks });
      done += size;
    }
  }

  async spawnRunners(spec: RunnerSpec): Promise<Child[]> {
    const urls = this.urls;
    const children: Child[] = [];
    for (let i = 0; i < spec.processes; i++) {
      children.push(
        track(
          new Child(
            `sluice-runner-${++this.runnerCount}`,
            [join(ROOT, "bench", "sluice-runner.ts")],
            {
              SLUICE_URL: urls[i % urls.length],
              BENCH_CONCURRENCY: String(spec.concurrency),
              BENCH_PREFETCH: String(spec.prefetch ?? spec.concurrency),
            },
            { echo: this.settings.verbose, nodeArgs: this.settings.runnerNodeArgs },
          ),
        ),
      );
    }
    await Promise.all(children.map((c) => c.next("loaded")));
    return children;
  }

  async busy(): Promise<boolean> {
    // A job is finished in the statement that records its last task; the
    // benchmark's jobs never fail. (No index of tasks covers their state.)
    const [row] = await this.sql<{ busy: boolean }[]>`
      SELECT EXISTS (SELECT 1 FROM jobs WHERE state IN ('queued', 'started')) AS busy`;
    return row.busy;
  }

  submitterEnv(): NodeJS.ProcessEnv {
    return { BENCH_SYSTEM: "sluice", SLUICE_URL: this.urls[0] };
  }

  async fanout(n: number, timeoutMs: number): Promise<number> {
    const api = createClient(JobService, this.client.transport);
    const res = await api.submitJob({
      name: "bench-fanout",
      cluster: "default",
      tasks: [{ identifier: { name: "BenchFanoutRoot", version: "v1.0" }, input: new TextEncoder().encode(JSON.stringify({ n })), dependsOn: [] }],
    });
    const id = res.job!.id;
    let ms = NaN;
    await waitUntil(
      async () => {
        const [row] = await this.sql<{ state: string; ms: number | null }[]>`
          SELECT state::text, (extract(epoch FROM finished_at - created_at) * 1000)::float8 AS ms FROM jobs WHERE id = ${id}`;
        if (row.state === "failed" || row.state === "cancelled") throw new Error(`fan-out job ${id} ${row.state}`);
        if (row.state !== "completed") return false;
        ms = row.ms!;
        return true;
      },
      "the fan-out job to complete",
      timeoutMs,
      20,
    );
    const [{ computed }] = await this.sql<{ computed: number }[]>`SELECT count(*)::int AS computed FROM tasks WHERE job_id = ${id} AND state = 'computed'`;
    if (computed !== n + 2) throw new Error(`fan-out job ${id} completed with ${computed} computed tasks, expected ${n + 2}`);
    return ms;
  }

  /**
   * Percentiles of created-to-leased time in ms from the database's own
   * timestamps (tasks.created_at to started_at), leaving out warm-up tasks.
   */
  /**
   * Insert to lease from the database's timestamps, and the share of tasks
   * handed over as they were inserted (started in the inserting statement:
   * started_at = created_at).
   */
  async leaseDelay(): Promise<{ p50: number; p99: number; handedOver: number; toInsertP50: number; toInsertP99: number }> {
    // Insert to lease from the database's timestamps; submit to insert from the
    // submit time each task's input carries (the machine's clock, as now() is).
    const [row] = await this.sql<{ p: number[] | null; i: number[] | null; handed: number | null }[]>`
      SELECT percentile_cont(array[0.5, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at) * 1000) AS p,
             percentile_cont(array[0.5, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM created_at) * 1000 - t) AS i,
             avg((started_at = created_at)::int)::float8 AS handed
      FROM (SELECT started_at, created_at, (convert_from(input, 'UTF8')::json ->> 't')::float8 AS t FROM tasks
            WHERE started_at IS NOT NULL AND convert_from(input, 'UTF8')::json ->> 'w' IS NULL) AS x`;
    return { p50: row.p?.[0] ?? NaN, p99: row.p?.[1] ?? NaN, handedOver: row.handed ?? NaN, toInsertP50: row.i?.[0] ?? NaN, toInsertP99: row.i?.[1] ?? NaN };
  }

  async stop(): Promise<void> {
    this.client?.close();
    await Promise.all(this.serverChildren.map((c) => c.kill()));
    await this.sql?.end({ timeout: 5 });
    await this.dbs.drop(this.db.name);
  }
}

export class GraphileSystem implements System {
  readonly label = "graphile-worker" as const;
  private runnerCount = 0;
  sql!: Sql;

  private constructor(
    private readonly dbs: Databases,
    private readonly db: { name: string; url: string },
    private readonly settings: Settings,
  ) {}

  /** A fresh database with graphile-worker's schema and the fan-out counter table. */
  static async start(dbs: Databases, settings: Settings): Promise<GraphileSystem> {
    const db = await dbs.create("graphile");
    const sys = new GraphileSystem(dbs, db, settings);
    try {
      await runMigrations({ connectionString: db.url, logger: quietGraphileLogger });
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

  backendPids(): Promise<number[]> {
    return backendPids(this.sql);
  }

  /** graphile_worker.add_jobs with up to 10,000 job specs per call. */
  async fillNoops(n: number, perCall = BULK_JOB_TASKS): Promise<void> {
    for (let done = 0; done < n; ) {
      const size = Math.min(perCall, n - done);
      await this.sql`
        SELECT count(*) FROM graphile_worker.add_jobs(array(
          SELECT json_populate_record(null::graphile_worker.job_spec,
                   json_build_object('identifier', 'noop', 'payload', json_build_object('t', ${now()}::float8)))
          FROM generate_series(1, ${size}::int)))`;
      done += size;
    }
  }

  async spawnRunners(spec: RunnerSpec): Promise<Child[]> {
    const children: Child[] = [];
    for (let i = 0; i < spec.processes; i++) {
      children.push(
        track(
          new Child(
            `graphile-worker-${++this.runnerCount}`,
            [join(ROOT, "bench", "graphile-runner.ts")],
            {
              DATABASE_URL: this.db.url,
              BENCH_CONCURRENCY: String(spec.concurrency),
              BENCH_BATCHED: spec.batched === false ? "0" : "1",
              BENCH_POOL_SIZE: String(spec.poolSize ?? spec.concurrency + 1),
            },
            { echo: this.settings.verbose, nodeArgs: this.settings.runnerNodeArgs },
          ),
        ),
      );
    }
    await Promise.all(children.map((c) => c.next("loaded")));
    return children;
  }

  async busy(): Promise<boolean> {
    // Completed jobs are deleted: any row left is queued, locked or failed.
    const [row] = await this.sql<{ busy: boolean }[]>`SELECT EXISTS (SELECT 1 FROM graphile_worker._private_jobs) AS busy`;
    return row.busy;
  }

  submitterEnv(): NodeJS.ProcessEnv {
    return { BENCH_SYSTEM: "graphile", DATABASE_URL: this.db.url };
  }

  async fanout(n: number, timeoutMs: number): Promise<number> {
    const id = 1;
    await this.sql`
      WITH counter AS (INSERT INTO bench_fanout (id, remaining, created_at) VALUES (${id}, ${n}, now()))
      SELECT graphile_worker.add_job('fanout_root', json_build_object('run', ${id}::int, 'n', ${n}::int)) IS NOT NULL`;
    return fanoutCounterTime(this.sql, id, timeoutMs);
  }

  async stop(): Promise<void> {
    await this.sql?.end({ timeout: 5 });
    await this.dbs.drop(this.db.name);
  }
}
