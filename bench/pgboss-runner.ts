/**
 * A pg-boss worker process for the benchmark: the same no-op and fan-out work
 * as bench/sluice-runner.ts, between the parent's "start" and "stop".
 *
 * Env: DATABASE_URL, BENCH_PGBOSS_WORKERS, BENCH_PGBOSS_BATCH,
 * BENCH_PGBOSS_POLL (see bench/lib/peer-settings.ts).
 */
import PgBoss from "pg-boss";
import postgres from "postgres";
import { Recorder, lifecycle } from "./lib/child-side.js";
import { PGBOSS } from "./lib/peer-settings.js";
import type { NoopInput } from "./lib/protocol.js";

const url = process.env.DATABASE_URL!;
const recorder = new Recorder();
const boss = new PgBoss({ connectionString: url, max: PGBOSS.poolSize });
boss.on("error", (e) => console.error("pg-boss error:", e));
// The fan-out counter (pg-boss has no dependencies between jobs; the same
// emulation as graphile-worker's, see bench/README.md).
const sql = postgres(url, { max: 1, onnotice: () => {} });
const options = { batchSize: PGBOSS.batchSize, pollingIntervalSeconds: PGBOSS.pollingIntervalSeconds };

async function start(): Promise<void> {
  await boss.start();
  // Several polling loops for concurrency; each runs the jobs of its batch at once.
  for (let i = 0; i < PGBOSS.workers; i++) {
    await boss.work<NoopInput>("noop", options, async (jobs) => {
      await Promise.all(jobs.map(async (job) => recorder.started(job.data.w ? undefined : job.data.t)));
    });
    await boss.work<{ run: number }>("fanout_leaf", options, async (jobs) => {
      for (const _ of jobs) recorder.started(undefined);
      const [row] = await sql<{ remaining: number }[]>`
        UPDATE bench_fanout SET remaining = remaining - ${jobs.length} WHERE id = ${jobs[0].data.run} RETURNING remaining`;
      if (row?.remaining === 0) await boss.send("fanout_final", { run: jobs[0].data.run });
    });
  }
  await boss.work<{ run: number; n: number }>("fanout_root", options, async ([job]) => {
    recorder.started(undefined);
    const { run, n } = job.data;
    await boss.insert(Array.from({ length: n }, () => ({ name: "fanout_leaf", data: { run } })));
  });
  await boss.work<{ run: number }>("fanout_final", options, async ([job]) => {
    recorder.started(undefined);
    await sql`UPDATE bench_fanout SET finished_at = clock_timestamp() WHERE id = ${job.data.run}`;
  });
}

lifecycle(
  {
    start,
    async stop() {
      await boss.stop({ graceful: true, wait: true, timeout: 10_000 });
      await sql.end({ timeout: 5 });
    },
  },
  recorder,
);
