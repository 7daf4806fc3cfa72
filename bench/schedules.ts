/**
 * Scheduled jobs and cron ticks, against a real `sluice server` process.
 *
 * (a) N one-off jobs (100,000; --quick 10,000) with start times spread evenly
 *     over S seconds (60; --quick 15), submitted beforehand through
 *     JobService.SubmitJob with start_at, 20 calls in flight; one runner
 *     (concurrency 32, in this process) with a no-op task. Lateness = the
 *     task's started_at (set when it is leased) minus the job's start_at, from
 *     the database. None may start early.
 * (b) 1,000 cron tasks "* * * * * *" on one server for D seconds (30; --quick
 *     10), no runner: jobs submitted per second, missed or duplicated ticks per
 *     task, how late each tick's job was created, the server's CPU (from
 *     /proc/PID/stat) and the database's load (pg_stat_database deltas).
 *
 * npm run bench:schedules [-- --quick] [--only a|b] [--jobs N] [--spread S] [--crons N] [--cron-seconds D] [--verbose]
 * (every script waits until no other benchmark runs on the machine; --no-wait skips that)
 */
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import postgres, { type Sql } from "postgres";
import { JobService } from "../gen/sluice/v1/job_service_pb.js";
import { Client } from "../runner/index.js";
import {
  Databases,
  backendPids,
  cpuMs,
  inParallel,
  log,
  main,
  ms,
  option,
  printHeader,
  quick,
  sleep,
  startServer,
  summarize,
  waitUntil,
} from "./lib-extra/common.js";
import { BenchScheduledNoop, quietLogger } from "./lib-extra/tasks.js";

const JOBS = Number(option("jobs") ?? (quick ? 10_000 : 100_000));
const SPREAD_S = Number(option("spread") ?? (quick ? 15 : 60));
const CRONS = Number(option("crons") ?? 1_000);
const CRON_S = Number(option("cron-seconds") ?? (quick ? 10 : 30));
const only = option("only");
const IN_FLIGHT = 20;
const CONCURRENCY = 32;

const results: string[] = [];
const NOOP = { name: "BenchScheduledNoop", version: "v1.0" };
const EMPTY_INPUT = new TextEncoder().encode("{}");

interface DbStats {
  xact_commit: number;
  xact_rollback: number;
  tup_inserted: number;
  tup_updated: number;
  tup_deleted: number;
  tup_fetched: number;
  tup_returned: number;
}

async function dbStats(sql: Sql): Promise<DbStats> {
  const [row] = await sql<DbStats[]>`
    SELECT xact_commit::float8 AS xact_commit, xact_rollback::float8 AS xact_rollback, tup_inserted::float8 AS tup_inserted,
           tup_updated::float8 AS tup_updated, tup_deleted::float8 AS tup_deleted, tup_fetched::float8 AS tup_fetched,
           tup_returned::float8 AS tup_returned
    FROM pg_stat_database WHERE datname = current_database()`;
  return row;
}

/** CPU ms of a set of processes, counting pids first seen later from 0. */
function cpuOf(pids: Iterable<number>): Map<number, number> {
  const m = new Map<number, number>();
  for (const pid of pids) m.set(pid, cpuMs(pid));
  return m;
}
function cpuDelta(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, v] of after) if (Number.isFinite(v)) total += v - (before.get(pid) ?? 0);
  return total;
}

async function scheduledJobs(dbs: Databases, cleanup: (fn: () => Promise<unknown> | unknown) => void): Promise<void> {
  log(`\n## (a) ${JOBS} one-off jobs with start times spread over ${SPREAD_S} s, runner concurrency ${CONCURRENCY}`);
  const db = await dbs.create("sched");
  cleanup(() => dbs.drop(db.name));
  const server = await startServer(db.url);
  cleanup(() => server.stop());
  const client = new Client({ url: server.url });
  cleanup(() => client.close());
  const api = createClient(JobService, client.transport);
  const sql = postgres(db.url, { max: 2, onnotice: () => {} });
  cleanup(() => sql.end({ timeout: 5 }));

  const submit = (name: string, at: number) =>
    api.submitJob({ name, cluster: "default", tasks: [{ identifier: NOOP, input: EMPTY_INPUT, dependsOn: [] }], startAt: timestampFromDate(new Date(at)) });

  // Calibration: how fast scheduled jobs can be submitted here and now, with
  // jobs due a day from now (they never start during the run, and cost nothing
  // but a row in the due index). The real start times are then put far enough
  // ahead that every job is submitted before the first of them is due.
  // The first calls only warm up the connection, the server's code and the
  // database (submitting is much slower for the first thousand or so).
  const calibration = Math.min(1_000, Math.max(300, Math.round(JOBS / 20)));
  const warmup = Math.min(1_500, Math.max(500, Math.round(JOBS / 50)));
  const dayAhead = Date.now() + 86_400_000;
  let t = 0;
  await inParallel(Array.from({ length: warmup + calibration }), IN_FLIGHT, async (_, i) => {
    if (i === warmup) t = Date.now();
    await submit("bench-calibration", dayAhead);
  });
  const calibrationRate = (calibration * 1000) / (Date.now() - t);
  const leadMs = Math.max(5_000, Math.round((JOBS / calibrationRate) * 1000 * 1.15 + 3_000));
  log(`calibration: ${calibration} scheduled jobs at ${Math.round(calibrationRate)} jobs/s; first start ${(leadMs / 1000).toFixed(1)} s from now`);

  const base = Date.now() + leadMs;
  const step = (SPREAD_S * 1000) / JOBS;
  const submitCpu0 = cpuMs(server.pid);
  t = Date.now();
  let submitted = 0;
  const progress = setInterval(() => log(`  submitting: ${submitted}/${JOBS}`), 10_000);
  try {
    // In order of start time: were submitting to overrun, the earliest jobs would still be in.
    await inParallel(Array.from({ length: JOBS }), IN_FLIGHT, async (_, i) => {
      await submit("bench-scheduled", base + i * step);
      submitted++;
    });
  } finally {
    clearInterval(progress);
  }
  const submitEnd = Date.now();
  const submitRate = (JOBS * 1000) / (submitEnd - t);
  const submitCpu = cpuMs(server.pid) - submitCpu0;
  const margin = base - submitEnd;
  log(`submitted ${JOBS} scheduled jobs in ${((submitEnd - t) / 1000).toFixed(1)} s (${Math.round(submitRate)} jobs/s, server CPU ${ms((submitCpu / JOBS) * 1000)} ms per 1000); first due ${(margin / 1000).toFixed(1)} s later`);
  if (margin < 0) log(`WARNING: submitting overran the first start time by ${(-margin / 1000).toFixed(1)} s`);

  const runner = client.runner("default", { tasks: [BenchScheduledNoop], concurrency: CONCURRENCY, logger: quietLogger });
  const running = runner.runForever();
  cleanup(async () => {
    await runner.stop();
    await running.catch(() => {});
  });
  await sleep(Math.max(0, base - Date.now() - 1_000));
  const pids = [server.pid, ...(await backendPids(sql))];
  const cpu0 = cpuOf(pids);
  const stats0 = await dbStats(sql);
  const windowStart = Date.now();
  let lastLog = 0;
  const done = await waitUntil(
    async () => {
      // Cheap probes (indexes, no count over the jobs table) so as not to load the database being measured.
      if (Date.now() - lastLog > 10_000) {
        lastLog = Date.now();
        const [row] = await sql<{ scheduled: number; running: number }[]>`
          SELECT (SELECT count(*) FROM scheduled_jobs WHERE start_at < ${new Date(dayAhead - 3_600_000)})::int AS scheduled,
                 (SELECT count(*) FROM tasks WHERE state = 'running')::int AS running`;
        log(`  t=${((Date.now() - base) / 1000).toFixed(0)} s: ${row.scheduled} still scheduled, ${row.running} tasks running`);
      }
      const [busy] = await sql<{ busy: boolean }[]>`
        SELECT EXISTS (SELECT 1 FROM scheduled_jobs WHERE start_at < ${new Date(dayAhead - 3_600_000)})
            OR EXISTS (SELECT 1 FROM tasks WHERE state = 'running')
            OR EXISTS (SELECT 1 FROM tasks WHERE state = 'queued' AND deps_left = 0) AS busy`;
      return !busy.busy;
    },
    SPREAD_S * 1000 + leadMs + 120_000,
    200,
  );
  const windowMs = Date.now() - windowStart;
  const allPids = new Set([...pids, ...(await backendPids(sql))]);
  const cpu1 = cpuOf(allPids);
  const stats1 = await dbStats(sql);
  if (!done) log("WARNING: not every job completed within the time allowed");

  const rows = await sql<{ late: number | null; queued: number | null; leased: number | null; start_at: Date | null }[]>`
    SELECT (extract(epoch FROM t.started_at - j.start_at) * 1000)::float8 AS late,
           (extract(epoch FROM t.created_at - j.start_at) * 1000)::float8 AS queued,
           (extract(epoch FROM t.started_at - t.created_at) * 1000)::float8 AS leased,
           j.start_at
    FROM jobs j LEFT JOIN tasks t ON t.job_id = j.id
    WHERE j.name = 'bench-scheduled'`;
  const late: number[] = [];
  const queued: number[] = [];
  const leased: number[] = [];
  let early = 0;
  let notStarted = 0;
  let unscheduled = 0;
  for (const r of rows) {
    if (r.start_at === null) unscheduled++;
    if (r.late === null) {
      notStarted++;
      continue;
    }
    late.push(r.late);
    if (r.late < 0) early++;
    if (r.queued !== null) queued.push(r.queued);
    if (r.leased !== null) leased.push(r.leased);
  }
  // Each scheduler pass that queued jobs created their tasks in one transaction (one now()).
  const [passes] = await sql<{ n: number }[]>`
    SELECT count(DISTINCT t.created_at)::int AS n FROM jobs j JOIN tasks t ON t.job_id = j.id WHERE j.name = 'bench-scheduled'`;
  const l = summarize(late);
  const q = summarize(queued);
  const s = summarize(leased);
  const serverCpu = cpuDelta(cpu0, new Map([[server.pid, cpu1.get(server.pid)!]]));
  const pgCpu = cpuDelta(cpu0, new Map([...cpu1].filter(([pid]) => pid !== server.pid)));
  const sec = windowMs / 1000;
  log(`lateness (started_at - start_at): p50 ${ms(l.p50)} ms, p99 ${ms(l.p99)} ms, max ${ms(l.max)} ms over ${l.n} started; early ${early}, never started ${notStarted}, submitted unscheduled ${unscheduled}`);
  log(`  due -> tasks created (scheduler): p50 ${ms(q.p50)} ms, p99 ${ms(q.p99)} ms, max ${ms(q.max)} ms`);
  log(`  tasks created -> leased:          p50 ${ms(s.p50)} ms, p99 ${ms(s.p99)} ms, max ${ms(s.max)} ms`);
  log(`  scheduler: ${passes.n} transactions queued the jobs (${(passes.n / SPREAD_S).toFixed(0)}/s, ${(JOBS / Math.max(1, passes.n)).toFixed(1)} jobs each)`);
  log(`  while due (${sec.toFixed(1)} s): server CPU ${((serverCpu / windowMs) * 100).toFixed(0)}% of a core, PostgreSQL backends ${((pgCpu / windowMs) * 100).toFixed(0)}%, ` +
    `${Math.round((stats1.xact_commit - stats0.xact_commit) / sec)} commits/s`);
  results.push(
    `schedules-lateness: p50 ${ms(l.p50)} ms, p99 ${ms(l.p99)} ms, max ${ms(l.max)} ms, early ${early}, not started ${notStarted} (${JOBS} jobs over ${SPREAD_S} s)`,
    `schedules-submit: ${Math.round(submitRate)} jobs/s (${JOBS} scheduled jobs through SubmitJob, ${IN_FLIGHT} in flight; first due ${(margin / 1000).toFixed(1)} s after the last submit)`,
    `schedules-breakdown: due->queued p50 ${ms(q.p50)} ms, p99 ${ms(q.p99)} ms; queued->leased p50 ${ms(s.p50)} ms, p99 ${ms(s.p99)} ms`,
    `schedules-server-cpu: ${((serverCpu / windowMs) * 100).toFixed(0)}% of a core (PostgreSQL backends ${((pgCpu / windowMs) * 100).toFixed(0)}%) while ${Math.round(JOBS / SPREAD_S)} jobs/s came due`,
  );
}

async function cronTicks(dbs: Databases, cleanup: (fn: () => Promise<unknown> | unknown) => void): Promise<void> {
  log(`\n## (b) ${CRONS} cron tasks "* * * * * *" on one server for ${CRON_S} s, no runner`);
  const db = await dbs.create("cron");
  cleanup(() => dbs.drop(db.name));
  const server = await startServer(db.url);
  cleanup(() => server.stop());
  const client = new Client({ url: server.url });
  cleanup(() => client.close());
  const sql = postgres(db.url, { max: 2, onnotice: () => {} });
  cleanup(() => sql.end({ timeout: 5 }));

  const recurrent = client.recurrentTasks();
  let t = Date.now();
  await inParallel(Array.from({ length: CRONS }), IN_FLIGHT, async (_, i) => {
    await recurrent.createRecurringCronTask(`every-second-${i}`, "default", new BenchScheduledNoop({}), "* * * * * *");
  });
  log(`created ${CRONS} cron tasks in ${((Date.now() - t) / 1000).toFixed(1)} s`);

  // Let it settle, then measure from half a second past a whole second.
  await sleep(2_000);
  await sleep(1_500 - (Date.now() % 1000));
  const pids = [server.pid, ...(await backendPids(sql))];
  const cpu0 = cpuOf(pids);
  const stats0 = await dbStats(sql);
  const t0 = Date.now();
  const firstTick = Math.ceil(t0 / 1000) * 1000;
  await sleep(CRON_S * 1000);
  const t1 = Date.now();
  const allPids = new Set([...pids, ...(await backendPids(sql))]);
  const cpu1 = cpuOf(allPids);
  const stats1 = await dbStats(sql);
  const windowMs = t1 - t0;
  // Ticks firstTick .. firstTick + (CRON_S - 1) s were all due inside the window; give late ones time to land.
  await sleep(3_000);

  const [created] = await sql<{ n: number }[]>`
    SELECT count(*)::int AS n FROM jobs WHERE created_at >= ${new Date(t0)} AND created_at < ${new Date(t1)}`;
  const perTask = await sql<{ id: string; jobs: number; ticks: number; odd: number }[]>`
    SELECT r.id::text, count(j.id)::int AS jobs, count(DISTINCT j.tick_at)::int AS ticks,
           count(j.id) FILTER (WHERE extract(milliseconds FROM j.tick_at)::int % 1000 <> 0)::int AS odd
    FROM recurrent_tasks r
    LEFT JOIN jobs j ON j.recurrent_task_id = r.id AND j.tick_at >= ${new Date(firstTick)} AND j.tick_at < ${new Date(firstTick + CRON_S * 1000)}
    GROUP BY r.id`;
  let missed = 0;
  let duplicated = 0;
  let odd = 0;
  let tasksMissing = 0;
  for (const r of perTask) {
    missed += Math.max(0, CRON_S - r.ticks);
    duplicated += r.jobs - r.ticks;
    odd += r.odd;
    if (r.ticks < CRON_S) tasksMissing++;
  }
  const lags = await sql<{ lag: number }[]>`
    SELECT (extract(epoch FROM created_at - tick_at) * 1000)::float8 AS lag FROM jobs
    WHERE tick_at >= ${new Date(firstTick)} AND tick_at < ${new Date(firstTick + CRON_S * 1000)}`;
  const lag = summarize(lags.map((r) => r.lag));
  // How long each tick took to submit all its jobs: the lag of its last job.
  const perTick = await sql<{ tick: Date; last: number; first: number; n: number }[]>`
    SELECT tick_at AS tick, (extract(epoch FROM max(created_at) - tick_at) * 1000)::float8 AS last,
           (extract(epoch FROM min(created_at) - tick_at) * 1000)::float8 AS first, count(*)::int AS n
    FROM jobs WHERE tick_at >= ${new Date(firstTick)} AND tick_at < ${new Date(firstTick + CRON_S * 1000)}
    GROUP BY tick_at ORDER BY tick_at`;
  const lastOfTick = summarize(perTick.map((r) => r.last));
  if (process.argv.includes("--verbose")) for (const r of perTick) log(`  tick ${r.tick.toISOString()}: ${r.n} jobs created +${ms(r.first)} .. +${ms(r.last)} ms`);
  const serverCpu = cpuDelta(cpu0, new Map([[server.pid, cpu1.get(server.pid)!]]));
  const pgCpu = cpuDelta(cpu0, new Map([...cpu1].filter(([pid]) => pid !== server.pid)));
  const sec = windowMs / 1000;
  const perSec = (k: keyof DbStats) => Math.round((stats1[k] - stats0[k]) / sec);
  const jobsPerSec = created.n / sec;
  log(`jobs created: ${created.n} in ${sec.toFixed(1)} s = ${Math.round(jobsPerSec)}/s (expected ${CRONS}/s)`);
  log(`ticks ${new Date(firstTick).toISOString()} + ${CRON_S} s: ${perTask.length} tasks, missed ${missed} (in ${tasksMissing} tasks), duplicated ${duplicated}, not on a whole second ${odd}`);
  log(`tick -> job created: p50 ${ms(lag.p50)} ms, p99 ${ms(lag.p99)} ms, max ${ms(lag.max)} ms; a tick's last job: median ${ms(lastOfTick.p50)} ms, max ${ms(lastOfTick.max)} ms`);
  log(`server CPU ${((serverCpu / windowMs) * 100).toFixed(1)}% of a core, PostgreSQL backends ${((pgCpu / windowMs) * 100).toFixed(1)}%`);
  log(`pg_stat_database per second: ${perSec("xact_commit")} commits, ${perSec("xact_rollback")} rollbacks, ${perSec("tup_inserted")} inserted, ` +
    `${perSec("tup_updated")} updated, ${perSec("tup_deleted")} deleted, ${perSec("tup_fetched")} fetched, ${perSec("tup_returned")} returned`);
  results.push(
    `cron-jobs: ${Math.round(jobsPerSec)} jobs/s (${CRONS} tasks "* * * * * *" for ${CRON_S} s, expected ${CRONS}/s), missed ticks ${missed}, duplicated ticks ${duplicated}`,
    `cron-tick-lag: p50 ${ms(lag.p50)} ms, p99 ${ms(lag.p99)} ms, max ${ms(lag.max)} ms (tick time to job created); all ${CRONS} jobs of a tick created within median ${ms(lastOfTick.p50)} ms, max ${ms(lastOfTick.max)} ms`,
    `cron-server-cpu: ${((serverCpu / windowMs) * 100).toFixed(1)}% of a core (PostgreSQL backends ${((pgCpu / windowMs) * 100).toFixed(1)}%)`,
    `cron-db-load: ${perSec("xact_commit")} commits/s, ${perSec("tup_inserted")} tuples inserted/s, ${perSec("tup_updated")} updated/s, ${perSec("tup_fetched")} fetched/s`,
  );
}

await main(async (cleanup) => {
  await printHeader("Sluice benchmark: scheduled jobs and cron ticks");
  const dbs = new Databases();
  cleanup(() => dbs.dropAll());
  if (!only || only === "a") {
    const steps: (() => Promise<unknown> | unknown)[] = [];
    try {
      await scheduledJobs(dbs, (fn) => steps.push(fn));
    } finally {
      for (const fn of steps.reverse()) await Promise.resolve().then(fn).catch((e) => console.error(`cleanup failed: ${e}`));
    }
  }
  if (!only || only === "b") {
    const steps: (() => Promise<unknown> | unknown)[] = [];
    try {
      await cronTicks(dbs, (fn) => steps.push(fn));
    } finally {
      for (const fn of steps.reverse()) await Promise.resolve().then(fn).catch((e) => console.error(`cleanup failed: ${e}`));
    }
  }
  log("");
  for (const line of results) log(line);
});
