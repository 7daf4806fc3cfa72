/**
 * `npm run bench`: Sluice against graphile-worker and pg-boss on the same
 * PostgreSQL, every run in a fresh database of its own, and against BullMQ on
 * Redis, with real processes: Sluice servers (`node bin/sluice.js server`),
 * Sluice runners, the peers' workers and a job submitter, each a child
 * process. See bench/README.md.
 *
 *   npm run bench                          # every scenario, 3 repetitions, medians
 *   npm run bench -- --quick               # short version (under two minutes)
 *   npm run bench -- --only drain,fanout   # some scenarios
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres npm run bench
 *
 * Without DATABASE_URL an embedded PostgreSQL is started in a temporary directory.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { startEmbeddedDatabase } from "../server/database/embedded.js";
import { Child, ProgressTotal, ROOT, allChildren, track } from "./lib/child.js";
import { Databases, waitUntil } from "./lib/db.js";
import { GraphileSystem, type RunnerSpec, type Settings, SluiceSystem, type System } from "./lib/systems.js";
import { BULLMQ_PREFIX, BullMQSystem, PgBossSystem, closeQueues } from "./lib/peers.js";
import { describePeerSettings } from "./lib/peer-settings.js";
import { buildServerPackage } from "./lib/server-package.js";
import { adminRedis, canMakeDurable, deleteKeys, describeRedis, pendingRestores, pingRedis, redisUrl } from "./lib/redis.js";
import { type Noise, NoiseProbe } from "./lib/noise.js";
import { CpuMeter, type LatencySummary, fmt, median, now, peakRss, sleep, summarize } from "./lib/util.js";

// ---------------------------------------------------------------- options

interface Config {
  quick: boolean;
  reps: number;
  only: Set<string> | null;
  verbose: boolean;
  /** Tasks queued for the drain and scale scenarios. */
  drainTasks: number;
  /** Jobs per second of the sustained scenarios. */
  rates: number[];
  sustainedMs: number;
  /** Submitting at the same rate before the measured phase of the sustained scenario. */
  warmupMs: number;
  /** How long a system that fell behind in the sustained scenario gets to work off its backlog. */
  backlogWaitMs: number;
  fanoutTasks: number;
  /** Runner processes of the scale scenario (one server), then 4 runners on 2 servers. */
  scaleRunners: number[];
  memoryTasks: number;
  /**
   * Tasks of each drain after the large run and of the new database's drain
   * paired with it: long enough that one drain is not a second of noise.
   */
  agedTasks: number;
  memoryWindowMs: number;
  concurrency: number;
  prefetch: number;
  /** Run the server as the sluice-server package runs it (compiled), or from the TypeScript sources through tsx. */
  server: "package" | "source";
  /** ANALYZE after queuing, before the runners start. */
  analyze: boolean;
  profileDir?: string;
  /** The systems to run; without graphile-worker there are no ratios (for profiling Sluice alone). */
  systems: SystemKey[];
}

/** The peers run beside Sluice and graphile-worker in the drain, sustained, fan-out and memory scenarios. */
const PEERS = ["bullmq", "bullmq-fsync", "pgboss"] as const;
type Peer = (typeof PEERS)[number];
type SystemKey = "sluice" | "graphile" | Peer;
const SYSTEM_KEYS: readonly SystemKey[] = ["sluice", "graphile", ...PEERS];
/** How each peer is named in the output. */
const PEER_LABEL: Record<Peer, string> = { bullmq: "bullmq", "bullmq-fsync": "bullmq-fsync", pgboss: "pg-boss" };

const SCENARIOS = ["drain", "sustained", "fanout", "scale", "memory"] as const;

const HELP = `usage: npm run bench -- [options]

  --quick             short version: fewer tasks, 1 repetition, 5 s sustained, no 1M-task memory run
  --only LIST         scenarios to run, comma-separated: ${SCENARIOS.join(", ")}
                      (also sustained-RATE for one rate, e.g. sustained-1000)
  --reps N            repetitions of each scenario; the median is reported (default 3, 1 with --quick)
  --tasks N           tasks of the drain and scale scenarios (default 50000, 10000 with --quick)
  --rates A,B         jobs/s of the sustained scenario (default 1000,5000)
  --duration S        seconds of submitting in the sustained scenario (default 20, 5 with --quick),
                      after a warm-up at the same rate (2 s, 0.5 s with --quick) whose latencies are not counted;
                      a system that falls behind gets 60 s (5 s with --quick) after the last submit to catch up,
                      else it is measured on the tasks it started (and latencies leave out those never started)
  --warmup S          seconds of the sustained scenario's warm-up (default 2, 0.5 with --quick)
  --fanout N          subtasks of the fan-out root (default 10000, 5000 with --quick)
  --memory-tasks N    tasks queued for the memory scenario's large run (default 1000000; skipped with --quick)
  --aged-tasks N      tasks of each drain after the large run, and of the new database's drain paired with it (default 200000)
  --concurrency N     tasks run at once per runner process (default 24; BullMQ and pg-boss use the
                      settings their docs advise, see bench/README.md and BENCH_BULLMQ_*/BENCH_PGBOSS_*)
  --prefetch N        Sluice runner prefetch (default: 500 minus the concurrency, so that a runner holds
                      at most 500 tasks, as graphile-worker's batched local queue does)
  --profile D         run Sluice servers and all runner/worker processes with node --cpu-prof,
                      writing .cpuprofile files to directory D (open them in Chrome DevTools)
  --no-analyze        do not ANALYZE the database between queuing and draining (by default it does,
                      for both systems, so that runs do not depend on when autovacuum gets to it)
  --server WHAT       how Sluice servers run: package (default), the compiled JavaScript the
                      sluice-server package ships, built first with scripts/pack.ts, as
                      \`npx sluice-server\` runs it; or source, the TypeScript through tsx
  --verbose           show the output of the child processes
  --systems LIST      run only these systems: sluice, graphile, bullmq, bullmq-fsync, pgboss (default all;
                      bullmq needs a Redis at REDIS_URL or 127.0.0.1:6379, bullmq-fsync one that allows
                      CONFIG SET); without graphile the table shows n/a for it and no graphile ratios
                      (to profile or compare builds of Sluice quickly)

DATABASE_URL names the PostgreSQL server to use (any database on it: the benchmark
creates its own, named sluice_bench_*, and drops them at the end); without it an
embedded PostgreSQL is started in a temporary directory. REDIS_URL names BullMQ's
Redis (keys under sluice-bench-<pid>-*, deleted after each run).`;

function parseArgs(argv: string[]): Config {
  const quick = argv.includes("--quick");
  const c: Config = {
    quick,
    reps: quick ? 1 : 3,
    only: null,
    verbose: false,
    drainTasks: quick ? 10_000 : 50_000,
    rates: [1000, 5000],
    sustainedMs: quick ? 5_000 : 20_000,
    warmupMs: quick ? 500 : 2_000,
    backlogWaitMs: quick ? 5_000 : 60_000,
    fanoutTasks: quick ? 5_000 : 10_000,
    scaleRunners: [1, 2, 4],
    memoryTasks: 1_000_000,
    agedTasks: 200_000,
    memoryWindowMs: 10_000,
    concurrency: 24,
    prefetch: 24,
    analyze: true,
    systems: [...SYSTEM_KEYS],
    server: "package",
  };
  let prefetchSet = false;
  const int = (flag: string, raw: string | undefined, min = 1) => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min) throw new Error(`${flag} needs an integer of at least ${min}, got ${raw}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => argv[++i];
    switch (a) {
      case "--quick":
        break;
      case "--only":
        c.only = new Set(value().split(",").map((s) => s.trim()).filter(Boolean));
        for (const s of c.only) {
          if (!(SCENARIOS as readonly string[]).includes(s) && !/^sustained-\d+$/.test(s)) {
            throw new Error(`--only: unknown scenario ${s}; use ${SCENARIOS.join(", ")} or sustained-RATE`);
          }
        }
        break;
      case "--reps":
        c.reps = int(a, value());
        break;
      case "--tasks":
        c.drainTasks = int(a, value());
        break;
      case "--rates":
        c.rates = value().split(",").map((r) => int(a, r));
        break;
      case "--duration":
        c.sustainedMs = int(a, value()) * 1000;
        break;
      case "--warmup":
        c.warmupMs = int(a, value(), 0) * 1000;
        break;
      case "--fanout":
        c.fanoutTasks = int(a, value());
        break;
      case "--memory-tasks":
        c.memoryTasks = int(a, value());
        break;
      case "--aged-tasks":
        c.agedTasks = int(a, value());
        break;
      case "--concurrency":
        c.concurrency = int(a, value());
        break;
      case "--prefetch":
        c.prefetch = int(a, value(), 0);
        prefetchSet = true;
        break;
      case "--profile":
        c.profileDir = value();
        break;
      case "--no-analyze":
        c.analyze = false;
        break;
      case "--verbose":
        c.verbose = true;
        break;
      case "--server": {
        const v = value();
        if (v !== "package" && v !== "source") throw new Error(`--server: use package or source, got ${v}`);
        c.server = v;
        break;
      }
      case "--systems": {
        const list = (value() ?? "").split(",").filter(Boolean);
        for (const x of list) {
          if (!(SYSTEM_KEYS as readonly string[]).includes(x)) throw new Error(`--systems: unknown system ${x}; use ${SYSTEM_KEYS.join(", ")}`);
        }
        if (list.length === 0) throw new Error(`--systems needs some of ${SYSTEM_KEYS.join(", ")}, comma-separated`);
        c.systems = list as Config["systems"];
        break;
      }
      case "--help":
      case "-h":
        console.log(HELP);
        process.exit(0);
      // falls through (exit does not return)
      default:
        throw new Error(`unknown option ${a}\n\n${HELP}`);
    }
  }
  // The same window as graphile-worker's localQueue.size of 500 in its batched run.
  if (!prefetchSet) c.prefetch = Math.max(0, 500 - c.concurrency);
  // Sustained rates named in --only are run even when not in --rates.
  for (const s of c.only ?? []) {
    const m = /^sustained-(\d+)$/.exec(s);
    if (m && !c.rates.includes(Number(m[1]))) c.rates.push(Number(m[1]));
  }
  return c;
}

const config = parseArgs(process.argv.slice(2));
const wanted = (scenario: string) =>
  config.only === null || config.only.has(scenario) || (scenario.startsWith("sustained-") && config.only.has("sustained"));

// ---------------------------------------------------------------- results

interface Row {
  scenario: string;
  metric: string;
  sluice: string;
  graphile: string;
  /** Sluice against graphile-worker. */
  ratio?: number;
  /** The peers' figures (their ratios are in the summary lines). */
  peers?: Partial<Record<Peer, string>>;
}

/** One `name: ratio R (sluice X, other Y)` line. */
interface Summary {
  name: string;
  ratio: number;
  sluice: string;
  other: string;
  otherValue: string;
}

const rows: Row[] = [];
const summaries: Summary[] = [];
const failures: string[] = [];

function log(line: string): void {
  console.log(line);
}

// ---------------------------------------------------------------- running

let dbs: Databases;
// BENCH_NODE_ARGS: extra node flags for every Sluice server, runner, worker
// and submitter process (e.g. "--trace-gc"); --profile adds its own.
const extraNodeArgs = (process.env.BENCH_NODE_ARGS ?? "").split(" ").filter(Boolean);
const settings: Settings = {
  verbose: config.verbose,
  serverNodeArgs: [...extraNodeArgs],
  runnerNodeArgs: [...extraNodeArgs],
  serverCommand: [join(ROOT, "bin", "sluice.js"), "server"],
};

type Factory = () => Promise<System>;
const sluice =
  (servers = 1): Factory =>
  () =>
    SluiceSystem.start(dbs, settings, servers);
const graphile: Factory = () => GraphileSystem.start(dbs, settings);
const peerFactory: Record<Peer, Factory> = {
  bullmq: () => BullMQSystem.start(settings, false),
  "bullmq-fsync": () => BullMQSystem.start(settings, true),
  pgboss: () => PgBossSystem.start(dbs, settings),
};
/** The peers that run (asked for, and their store answers); set in main(). */
let peers: Peer[] = [];

/**
 * The same starting point for both systems after queuing: planner statistics
 * that know the queue (as autovacuum's ANALYZE soon would, at a moment that
 * would otherwise make runs differ; --no-analyze skips it) and the dirty pages
 * written out.
 */
async function settle(sys: System): Promise<void> {
  if (!sys.sql) return;
  if (config.analyze) await sys.sql`ANALYZE`;
  await sys.sql`CHECKPOINT`.catch(() => {});
}

/** Sends "start" to every runner; resolves with the time it was sent once all have begun. */
async function startRunners(runners: Child[]): Promise<number> {
  const started = runners.map((r) => r.next("started"));
  const t0 = now();
  for (const r of runners) r.send({ type: "start" });
  await Promise.all(started);
  return t0;
}

/** Stops runners gracefully and collects their submit-to-start latencies. */
async function stopRunners(runners: Child[]): Promise<{ executed: number; latencies: number[] }> {
  const stats = await Promise.all(
    runners.map(async (r) => {
      const s = r.next("stats", 60_000);
      r.send({ type: "stop" });
      try {
        return await s;
      } catch (e) {
        failures.push(String((e as Error).message).split("\n")[0]);
        return { executed: 0, latencies: [] as number[] };
      } finally {
        await r.kill();
      }
    }),
  );
  return { executed: stats.reduce((a, s) => a + s.executed, 0), latencies: stats.flatMap((s) => s.latencies) };
}

async function withSystem<T>(factory: Factory, fn: (sys: System, runners: Child[]) => Promise<T>): Promise<T> {
  const sys = await factory();
  const runners: Child[] = [];
  try {
    return await fn(sys, runners);
  } finally {
    await Promise.all(runners.map((r) => r.kill()));
    await sys.stop();
  }
}

/** The largest value, or NaN for none. */
const maxOf = (xs: number[]) => (xs.length === 0 ? NaN : Math.max(...xs));

/** CPU time used during a run, in ms, by kind of process. */
interface CpuUse {
  server: number;
  runners: number;
  postgres: number;
  submitter: number;
}

/** Starts measuring the CPU of the system's processes; the returned function reads what they used since. */
async function meterCpu(sys: System, children: Child[]): Promise<() => Promise<CpuUse>> {
  const meter = new CpuMeter();
  const pids = (cs: Child[]) => cs.map((c) => c.pid).filter((p): p is number => p !== undefined);
  meter.start([...pids(sys.servers()), ...pids(children), ...(await sys.backendPids())]);
  return async () => ({
    server: meter.used(pids(sys.servers())),
    runners: meter.used(pids(children.filter((c) => c.label !== "submitter"))),
    // The submitter reports its own CPU (it has exited by now).
    submitter: NaN,
    postgres: meter.used(await sys.backendPids()),
  });
}

interface DrainResult {
  rate: number;
  ms: number;
  serverRss: number;
  runnerRss: number;
  cpu: CpuUse;
  /** WAL written while the runners worked, bytes (by every database of the server). */
  walBytes: number;
}

/**
 * Queues `n` no-op tasks, then starts the runner processes and times from
 * "start" until no task is queued or running in the database.
 */
function drain(factory: Factory, spec: RunnerSpec, n: number): Promise<DrainResult> {
  return withSystem(factory, (sys, runners) => drainOnce(sys, runners, spec, n));
}

/** Queues `n` no-op tasks on a running system, then times fresh runners draining them. */
async function drainOnce(sys: System, runners: Child[], spec: RunnerSpec, n: number): Promise<DrainResult> {
  await sys.fillNoops(n);
  await settle(sys);
  runners.push(...(await sys.spawnRunners(spec)));
  const progress = new ProgressTotal(runners);
  const timeoutMs = 60_000 + n * 5;
  const cpuUsed = await meterCpu(sys, runners);
  const lsn = sys.sql ? (await sys.sql<{ lsn: string }[]>`SELECT pg_current_wal_lsn()::text AS lsn`)[0].lsn : undefined;
  const t0 = await startRunners(runners);
  await progress.reach(n, timeoutMs);
  await waitUntil(async () => !(await sys.busy()), "the queue to drain", timeoutMs, 5);
  const ms = now() - t0;
  const cpu = await cpuUsed();
  const wal = sys.sql
    ? (await sys.sql<{ wal: string }[]>`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), ${lsn!}::pg_lsn)::text AS wal`)[0].wal
    : "NaN";
  const serverRss = maxOf(sys.servers().map((s) => peakRss(s.pid)));
  const runnerRss = maxOf(runners.map((r) => peakRss(r.pid)));
  const stats = await stopRunners(runners);
  runners.length = 0;
  if (stats.executed < n) throw new Error(`${sys.label}: only ${stats.executed} of ${n} tasks were executed`);
  return { rate: n / (ms / 1000), ms, serverRss, runnerRss, cpu, walBytes: Number(wal) };
}

interface SustainedResult {
  rate: number;
  submitRate: number;
  maxLagMs: number;
  callP50Ms: number;
  callP99Ms: number;
  latency: LatencySummary;
  submitted: number;
  /** Sluice only: insert to lease, from the database's timestamps. */
  leaseDelay?: { p50: number; p99: number; handedOver: number; toInsertP50: number; toInsertP99: number };
  /** CPU per 1,000 tasks executed (warm-up included). */
  cpuPer1000: CpuUse;
  /** Tasks not yet started when the backlog wait ran out (0: it caught up). */
  behind: number;
  /** What the machine did to everything while the submitter ran. */
  noise: Noise;
}

/**
 * One runner process works while a submitter process submits one-task no-op
 * jobs at `rate` per second for `durationMs`; then waits until every task is done.
 */
function sustained(factory: Factory, spec: RunnerSpec, rate: number, durationMs: number): Promise<SustainedResult> {
  return withSystem(factory, async (sys, runners) => {
    runners.push(...(await sys.spawnRunners(spec)));
    const progress = new ProgressTotal(runners);
    await startRunners(runners);
    const submitter = track(
      new Child("submitter", [join(ROOT, "bench", "submitter.ts")], {
        ...sys.submitterEnv(),
        BENCH_RATE: String(rate),
        BENCH_DURATION_MS: String(durationMs),
        BENCH_WARMUP_MS: String(config.warmupMs),
      }, { echo: config.verbose, nodeArgs: settings.runnerNodeArgs }),
    );
    runners.push(submitter);
    await submitter.next("loaded");
    const cpuUsed = await meterCpu(sys, runners);
    const done = submitter.next("submitted", config.warmupMs + durationMs + 300_000);
    const probe = new NoiseProbe();
    submitter.send({ type: "start" });
    const sub = await done;
    const noise = await probe.stop();
    if (sub.errors > 0) failures.push(`${sys.label} sustained-${rate}: ${sub.errors} submissions failed`);
    // A system that fell behind gets `backlogWaitMs` to catch up; after that it
    // is measured on what it did.
    const all = sub.warmup + sub.count;
    const caughtUp = await progress.reach(all, config.backlogWaitMs).then(
      () => waitUntil(async () => !(await sys.busy()), "the submitted tasks to finish", 60_000, 5).then(() => true),
      () => false,
    );
    const end = caughtUp ? now() : progress.lastAt;
    const measuredDone = Math.max(0, progress.total - sub.warmup);
    const cpu = await cpuUsed();
    const per1000 = (x: number) => (x * 1000) / Math.max(1, progress.total);
    const stats = await stopRunners(runners.filter((r) => r !== submitter));
    const leaseDelay = sys instanceof SluiceSystem ? await sys.leaseDelay() : undefined;
    return {
      rate: (caughtUp ? sub.count : measuredDone) / ((end - sub.firstAt) / 1000),
      behind: caughtUp ? 0 : all - progress.total,
      submitRate: sub.count / (Math.max(1, sub.lastAt - sub.firstAt) / 1000),
      maxLagMs: sub.maxLagMs,
      callP50Ms: sub.callP50Ms,
      callP99Ms: sub.callP99Ms,
      latency: summarize(stats.latencies),
      submitted: sub.count,
      leaseDelay,
      noise,
      cpuPer1000: { server: per1000(cpu.server), runners: per1000(cpu.runners), postgres: per1000(cpu.postgres), submitter: (sub.cpuMs * 1000) / (sub.warmup + sub.count) },
    };
  });
}

/** One runner process; the fan-out job's duration from the database's timestamps. */
function fanout(factory: Factory, spec: RunnerSpec, n: number): Promise<number> {
  return withSystem(factory, async (sys, runners) => {
    runners.push(...(await sys.spawnRunners(spec)));
    await startRunners(runners);
    const ms = await sys.fanout(n, 120_000 + n * 20);
    await stopRunners(runners);
    return ms;
  });
}

interface LargeQueueResult {
  fillMs: number;
  rate: number;
  serverRss: number;
  runnerRss: number;
  /** The time to drain all `n` tasks, ms. */
  allMs: number;
  /** Drains of `agedTasks` fresh tasks afterwards, in the same database. */
  aged: DrainResult[];
  /** The same, after a VACUUM of the database. */
  vacuumed: DrainResult[];
  /** Drains of `agedTasks` in a new database, each right after an aged or vacuumed one. */
  fresh: DrainResult[];
  /** How long the VACUUM took, ms. */
  vacuumMs: number;
}

/**
 * Queues `n` tasks (jobs of 10,000: the server's memory then shows the queue,
 * not one huge request), then lets one runner work for `windowMs`
 * (the rate then), and on until all are done. Then drains `agedTasks` fresh
 * tasks in the same database `config.reps` times, and as many times again
 * after a VACUUM: the drain rate after `n` tasks went through the tables (dead
 * tuples, index growth, finished tasks kept). Each of those drains is followed
 * by one in a new database, so that the aged and the fresh rates are measured
 * minutes apart at most, not a scenario apart (the machine's speed drifts).
 */
function largeQueue(factory: Factory, spec: RunnerSpec, n: number, windowMs: number, agedTasks: number): Promise<LargeQueueResult> {
  return withSystem(factory, async (sys, runners) => {
    const t = now();
    await sys.fillNoops(n, 10_000);
    const fillMs = now() - t;
    await settle(sys);
    runners.push(...(await sys.spawnRunners(spec)));
    const progress = new ProgressTotal(runners);
    const t0 = await startRunners(runners);
    await Promise.race([sleep(windowMs), progress.reach(n, windowMs).catch(() => {})]);
    const executed = progress.total;
    // A system that drains everything before the window ends is timed to its last task.
    const elapsedMs = executed >= n ? progress.lastAt - t0 : windowMs;
    const serverRss = maxOf(sys.servers().map((s) => peakRss(s.pid)));
    const runnerRss = maxOf(runners.map((r) => peakRss(r.pid)));
    await progress.reach(n, 30 * 60_000);
    await waitUntil(async () => !(await sys.busy()), "the queue to drain", 60_000, 5);
    const allMs = now() - t0;
    await stopRunners(runners);
    runners.length = 0;
    const fresh: DrainResult[] = [];
    const agedDrains = async () => {
      const out: DrainResult[] = [];
      for (let i = 0; i < config.reps; i++) {
        const r = await drainOnce(sys, runners, spec, agedTasks);
        const f = await drain(factory, spec, agedTasks);
        out.push(r);
        fresh.push(f);
      }
      return out;
    };
    const aged = await agedDrains();
    // Again after a VACUUM of the database (autovacuum's naptime is a minute:
    // it may or may not have run by the time of the first).
    const vacuumStart = now();
    await sys.sql?.unsafe("VACUUM");
    const vacuumMs = now() - vacuumStart;
    const vacuumed = await agedDrains();
    return { fillMs, rate: executed / (elapsedMs / 1000), serverRss, runnerRss, allMs, aged, vacuumed, fresh, vacuumMs };
  });
}

/** Runs `fn` `config.reps` times, printing each result; failures are recorded and skipped. */
async function repeat<T>(label: string, fn: () => Promise<T>, show: (r: T) => string, reps = config.reps): Promise<T[]> {
  const out: T[] = [];
  for (let i = 1; i <= reps; i++) await once(label, i, reps, fn, show, out);
  return out;
}

/**
 * Runs Sluice's, graphile-worker's and (given `peerFn`) the peers'
 * repetitions of a scenario alternately (Sluice, graphile-worker, BullMQ, ...,
 * Sluice, ...), so that all meet the machine in the same state: the speed of
 * the machines we measure on drifts by up to a third within minutes, and runs
 * of one system after the other put that drift into the ratio.
 */
async function repeatBoth<T>(
  sluiceLabel: string,
  sluiceFn: () => Promise<T>,
  graphileLabel: string,
  graphileFn: () => Promise<T>,
  show: (r: T) => string,
  reps = config.reps,
  peerFn?: (peer: Peer) => () => Promise<T>,
): Promise<[T[], T[], Record<Peer, T[]>]> {
  const s: T[] = [];
  const g: T[] = [];
  const p = { bullmq: [], "bullmq-fsync": [], pgboss: [] } as Record<Peer, T[]>;
  for (let i = 1; i <= reps; i++) {
    if (runs("sluice")) await once(sluiceLabel, i, reps, sluiceFn, show, s);
    if (runs("graphile")) await once(graphileLabel, i, reps, graphileFn, show, g);
    if (peerFn) for (const peer of peers) await once(PEER_LABEL[peer], i, reps, peerFn(peer), show, p[peer]);
  }
  return [s, g, p];
}

const runs = (system: "sluice" | "graphile") => config.systems.includes(system);

/**
 * Puts the peers' figures in the last row pushed, and a ratio line per peer
 * (`ratio(sluice, peer)`, > 1 when Sluice is better) when `unit` is given.
 */
function addPeers<T>(name: string, results: Record<Peer, T[]>, value: (r: T) => number, format: (x: number) => string, sluiceValue?: number, unit?: string, ratio?: (s: number, p: number) => number): void {
  const row = rows[rows.length - 1];
  row.peers ??= {};
  for (const peer of peers) {
    const v = median(results[peer].map(value));
    row.peers[peer] = format(v);
    if (unit && ratio && sluiceValue !== undefined && runs("sluice")) {
      summaries.push({ name, ratio: ratio(sluiceValue, v), sluice: `${fmtUnit(sluiceValue, unit)} ${unit}`, other: PEER_LABEL[peer], otherValue: `${fmtUnit(v, unit)} ${unit}` });
    }
  }
}

async function once<T>(label: string, i: number, reps: number, fn: () => Promise<T>, show: (r: T) => string, out: T[]): Promise<void> {
  const started = Date.now();
  try {
    const r = await fn();
    out.push(r);
    log(`  ${label} [${i}/${reps}]: ${show(r)}  (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (e) {
    const msg = `${label} [${i}/${reps}] failed: ${(e as Error).message}`;
    failures.push(msg.split("\n")[0]);
    log(`  ${msg}`);
  }
}

const runnerSpec = (processes = 1, extra: Partial<RunnerSpec> = {}): RunnerSpec => ({
  processes,
  concurrency: config.concurrency,
  prefetch: config.prefetch,
  batched: true,
  ...extra,
});

function addRatio(name: string, metric: string, unit: string, s: number, g: number, ratio: number, summary = true): void {
  rows.push({ scenario: name, metric, sluice: `${fmtUnit(s, unit)}`, graphile: `${fmtUnit(g, unit)}`, ratio });
  if (summary && runs("graphile")) summaries.push({ name, ratio, sluice: `${fmtUnit(s, unit)} ${unit}`, other: "graphile-worker", otherValue: `${fmtUnit(g, unit)} ${unit}` });
}

function fmtUnit(x: number, unit: string): string {
  if (unit === "ms") return fmt.ms(x);
  if (unit === "MB") return fmt.mb(x);
  return fmt.rate(x);
}

// ---------------------------------------------------------------- scenarios

let drainCache: { sluice: DrainResult[]; graphile: DrainResult[]; peers?: Record<Peer, DrainResult[]> } | undefined;

async function scenarioDrain(): Promise<void> {
  const n = config.drainTasks;
  log(`\n== drain: ${n} queued no-op tasks, 1 runner process, concurrency ${config.concurrency}`);
  const [s, g, p] = await repeatBoth(
    "sluice",
    () => drain(sluice(), runnerSpec(), n),
    "graphile-worker (batched)",
    () => drain(graphile, runnerSpec(), n),
    (r) => `${fmt.rate(r.rate)} tasks/s`,
    config.reps,
    (peer) => () => drain(peerFactory[peer], runnerSpec(), n),
  );
  const d = runs("graphile")
    ? await repeat("graphile-worker (defaults)", () => drain(graphile, runnerSpec(1, { batched: false }), n), (r) => `${fmt.rate(r.rate)} tasks/s`)
    : [];
  drainCache = { sluice: s, graphile: g, peers: p };
  const sr = median(s.map((r) => r.rate));
  const gr = median(g.map((r) => r.rate));
  const dr = median(d.map((r) => r.rate));
  addRatio("drain", "tasks/s (graphile-worker batched)", "tasks/s", sr, gr, sr / gr);
  addPeers("drain", p, (r) => r.rate, fmt.rate, sr, "tasks/s", (a, b) => a / b);
  addRatio("drain-defaults", "tasks/s (graphile-worker defaults)", "tasks/s", sr, dr, sr / dr, false);
  const cpu = (xs: DrainResult[], f: (c: CpuUse) => number) => fmt.ms(median(xs.map((r) => (f(r.cpu) * 1000) / n)));
  const perTask = (f: (c: CpuUse) => number) => (r: DrainResult) => (f(r.cpu) * 1000) / n;
  rows.push({ scenario: "drain", metric: "CPU ms per 1,000 tasks: Sluice server", sluice: cpu(s, (c) => c.server), graphile: "-", peers: { bullmq: "-", "bullmq-fsync": "-", pgboss: "-" } });
  rows.push({ scenario: "drain", metric: "CPU ms per 1,000 tasks: runner / worker", sluice: cpu(s, (c) => c.runners), graphile: `${cpu(g, (c) => c.runners)} / defaults ${cpu(d, (c) => c.runners)}` });
  addPeers("drain", p, perTask((c) => c.runners), fmt.ms);
  rows.push({ scenario: "drain", metric: "CPU ms per 1,000 tasks: PostgreSQL backends (BullMQ: redis-server)", sluice: cpu(s, (c) => c.postgres), graphile: `${cpu(g, (c) => c.postgres)} / defaults ${cpu(d, (c) => c.postgres)}` });
  addPeers("drain", p, perTask((c) => c.postgres), fmt.ms);
  rows.push({
    scenario: "drain",
    metric: "time to drain, ms",
    sluice: fmt.ms(median(s.map((r) => r.ms))),
    graphile: `${fmt.ms(median(g.map((r) => r.ms)))} / defaults ${fmt.ms(median(d.map((r) => r.ms)))}`,
  });
  addPeers("drain", p, (r) => r.ms, fmt.ms);
}

async function scenarioSustained(rate: number): Promise<void> {
  const name = `sustained-${rate}`;
  log(`\n== ${name}: a submitter process submits ${rate} one-task jobs/s for ${config.warmupMs / 1000} s of warm-up + ${config.sustainedMs / 1000} s; 1 runner process`);
  const show = (r: SustainedResult) =>
    `${fmt.rate(r.rate)} tasks/s${r.behind > 0 ? ` [fell behind: ${r.behind} tasks not started ${config.backlogWaitMs / 1000} s after the last submit]` : ""} (submitted ${r.submitted} at ${fmt.rate(r.submitRate)}/s, submit call p50 ${fmt.ms(r.callP50Ms)} ms, p99 ${fmt.ms(r.callP99Ms)} ms), submit-to-start p50 ${fmt.ms(r.latency.p50)} ms, p99 ${fmt.ms(r.latency.p99)} ms, max ${fmt.ms(r.latency.max)} ms${r.leaseDelay ? ` (submit to insert p50 ${fmt.ms(r.leaseDelay.toInsertP50)} ms, p99 ${fmt.ms(r.leaseDelay.toInsertP99)} ms; in the database: insert to lease p50 ${fmt.ms(r.leaseDelay.p50)} ms, p99 ${fmt.ms(r.leaseDelay.p99)} ms; ${Math.round(r.leaseDelay.handedOver * 100)} % handed over as inserted)` : ""}; machine: ${r.noise.stalls} stalls > 5 ms (longest ${fmt.ms(r.noise.longestMs)} ms), ${r.noise.stealPct.toFixed(1)} % steal`;
  const [s, g, p] = await repeatBoth(
    "sluice",
    () => sustained(sluice(), runnerSpec(), rate, config.sustainedMs),
    "graphile-worker (batched)",
    () => sustained(graphile, runnerSpec(), rate, config.sustainedMs),
    show,
    config.reps,
    (peer) => () => sustained(peerFactory[peer], runnerSpec(), rate, config.sustainedMs),
  );
  const m = (xs: SustainedResult[], f: (r: SustainedResult) => number) => median(xs.map(f));
  const dash = { bullmq: "-", "bullmq-fsync": "-", pgboss: "-" };
  addRatio(name, "tasks/s kept up with", "tasks/s", m(s, (r) => r.rate), m(g, (r) => r.rate), m(s, (r) => r.rate) / m(g, (r) => r.rate));
  addPeers(name, p, (r) => r.rate, fmt.rate, m(s, (r) => r.rate), "tasks/s", (a, b) => a / b);
  rows.push({ scenario: name, metric: `tasks not started ${config.backlogWaitMs / 1000} s after the last submit`, sluice: fmt.rate(m(s, (r) => r.behind)), graphile: fmt.rate(m(g, (r) => r.behind)) });
  addPeers(name, p, (r) => r.behind, fmt.rate);
  rows.push({ scenario: name, metric: "jobs/s submitted", sluice: fmt.rate(m(s, (r) => r.submitRate)), graphile: fmt.rate(m(g, (r) => r.submitRate)) });
  addPeers(name, p, (r) => r.submitRate, fmt.rate);
  for (const [metric, f] of [
    ["submit-to-start p50, ms", (r: SustainedResult) => r.latency.p50],
    ["submit-to-start p99, ms", (r: SustainedResult) => r.latency.p99],
    ["submit-to-start max, ms", (r: SustainedResult) => r.latency.max],
  ] as const) {
    const sv = m(s, f);
    const gv = m(g, f);
    // Latency ratio as graphile / sluice, so that > 1 means Sluice is faster here too.
    rows.push({ scenario: name, metric, sluice: fmt.ms(sv), graphile: fmt.ms(gv), ratio: gv / sv });
    if (metric.includes("p99")) {
      if (runs("sluice") && runs("graphile")) summaries.push({ name: `${name}-p99`, ratio: gv / sv, sluice: `${fmt.ms(sv)} ms`, other: "graphile-worker", otherValue: `${fmt.ms(gv)} ms` });
      addPeers(`${name}-p99`, p, f, fmt.ms, sv, "ms", (a, b) => b / a);
    } else {
      addPeers(name, p, f, fmt.ms);
    }
  }
  // The tail moves with the hypervisor: each repetition's p99 beside the steal
  // measured while it ran.
  const each = (xs: SustainedResult[]) => xs.map((r) => `${fmt.ms(r.latency.p99)} (${r.noise.stealPct.toFixed(1)})`).join(" / ");
  rows.push({ scenario: name, metric: "submit-to-start p99 of each repetition, ms (steal %)", sluice: each(s), graphile: each(g), peers: Object.fromEntries(peers.map((x) => [x, each(p[x])])) });
  rows.push({ scenario: name, metric: "Sluice submit-to-insert p50 / p99 (the submit statement's start), ms", sluice: `${fmt.ms(m(s, (r) => r.leaseDelay?.toInsertP50 ?? NaN))} / ${fmt.ms(m(s, (r) => r.leaseDelay?.toInsertP99 ?? NaN))}`, graphile: "-", peers: dash });
  rows.push({ scenario: name, metric: "Sluice insert-to-lease p50 / p99 (database clock), ms", sluice: `${fmt.ms(m(s, (r) => r.leaseDelay?.p50 ?? NaN))} / ${fmt.ms(m(s, (r) => r.leaseDelay?.p99 ?? NaN))}`, graphile: "-", peers: dash });
  rows.push({ scenario: name, metric: "Sluice tasks handed over to a waiting runner as inserted, %", sluice: `${Math.round(m(s, (r) => r.leaseDelay?.handedOver ?? NaN) * 100)}`, graphile: "-", peers: dash });
  rows.push({ scenario: name, metric: "submit call p50, ms", sluice: fmt.ms(m(s, (r) => r.callP50Ms)), graphile: fmt.ms(m(g, (r) => r.callP50Ms)) });
  addPeers(name, p, (r) => r.callP50Ms, fmt.ms);
  rows.push({ scenario: name, metric: "submit call p99, ms", sluice: fmt.ms(m(s, (r) => r.callP99Ms)), graphile: fmt.ms(m(g, (r) => r.callP99Ms)) });
  addPeers(name, p, (r) => r.callP99Ms, fmt.ms);
  for (const [metric, f] of [
    ["CPU ms per 1,000 tasks: Sluice server", (c: CpuUse) => c.server],
    ["CPU ms per 1,000 tasks: runner / worker", (c: CpuUse) => c.runners],
    ["CPU ms per 1,000 tasks: PostgreSQL backends (BullMQ: redis-server)", (c: CpuUse) => c.postgres],
    ["CPU ms per 1,000 tasks: submitter", (c: CpuUse) => c.submitter],
  ] as const) {
    const server = metric.includes("Sluice");
    rows.push({ scenario: name, metric, sluice: fmt.ms(m(s, (r) => f(r.cpuPer1000))), graphile: server ? "-" : fmt.ms(m(g, (r) => f(r.cpuPer1000))) });
    if (server) rows[rows.length - 1].peers = dash;
    else addPeers(name, p, (r) => f(r.cpuPer1000), fmt.ms);
  }
  rows.push({ scenario: name, metric: "submitter's worst lag behind schedule, ms", sluice: fmt.ms(m(s, (r) => r.maxLagMs)), graphile: fmt.ms(m(g, (r) => r.maxLagMs)) });
  addPeers(name, p, (r) => r.maxLagMs, fmt.ms);
  rows.push({ scenario: name, metric: "machine: idle thread woken > 5 ms late, times", sluice: fmt.rate(m(s, (r) => r.noise.stalls)), graphile: fmt.rate(m(g, (r) => r.noise.stalls)) });
  addPeers(name, p, (r) => r.noise.stalls, fmt.rate);
  rows.push({ scenario: name, metric: "machine: CPU time taken by the hypervisor (steal), %", sluice: m(s, (r) => r.noise.stealPct).toFixed(1), graphile: m(g, (r) => r.noise.stealPct).toFixed(1) });
  addPeers(name, p, (r) => r.noise.stealPct, (x) => x.toFixed(1));
}

async function scenarioFanout(): Promise<void> {
  const n = config.fanoutTasks;
  log(`\n== fanout: one job whose root submits ${n} subtasks and a final task depending on all of them; 1 runner process`);
  const show = (ms: number) => `${fmt.ms(ms)} ms`;
  const [s, g, p] = await repeatBoth(
    "sluice",
    () => fanout(sluice(), runnerSpec(), n),
    "graphile-worker (batched)",
    () => fanout(graphile, runnerSpec(), n),
    show,
    config.reps,
    (peer) => () => fanout(peerFactory[peer], runnerSpec(), n),
  );
  const sm = median(s);
  const gm = median(g);
  addRatio("fanout", "job duration, ms (ratio = peer / sluice; graphile-worker and pg-boss emulate it with a counter row)", "ms", sm, gm, gm / sm);
  addPeers("fanout", p, (ms) => ms, fmt.ms, sm, "ms", (a, b) => b / a);
}

async function scenarioScale(): Promise<void> {
  const n = config.drainTasks;
  log(`\n== scale: drain ${n} tasks with several runner processes (concurrency ${config.concurrency} each)`);
  const configs: { name: string; runners: number; servers: number }[] = [
    ...config.scaleRunners.map((k) => ({ name: `scale-${k}`, runners: k, servers: 1 })),
    { name: "scale-4-2servers", runners: 4, servers: 2 },
  ];
  // graphile-worker has no servers: its figure for k processes is run
  // alongside every Sluice configuration with k runners, and the ratio of each
  // configuration uses the repetitions run alongside it.
  for (const c of configs) {
    let sr: number;
    let gr: number;
    if (c.runners === 1 && c.servers === 1 && drainCache && drainCache.sluice.length > 0) {
      log(`  ${c.name}: the drain scenario's figures`);
      sr = median(drainCache.sluice.map((r) => r.rate));
      gr = median(drainCache.graphile.map((r) => r.rate));
    } else {
      // 4 processes x 25 connections would exceed a default max_connections of 100.
      const poolSize = c.runners >= 4 ? 15 : config.concurrency + 1;
      const [s, g] = await repeatBoth(
        `sluice ${c.runners} runners, ${c.servers} server${c.servers > 1 ? "s" : ""}`,
        () => drain(sluice(c.servers), runnerSpec(c.runners), n),
        `graphile-worker ${c.runners} processes`,
        () => drain(graphile, runnerSpec(c.runners, { poolSize }), n),
        (r) => `${fmt.rate(r.rate)} tasks/s`,
      );
      sr = median(s.map((r) => r.rate));
      gr = median(g.map((r) => r.rate));
    }
    addRatio(c.name, `tasks/s, ${c.runners} runner processes, ${c.servers} Sluice server${c.servers > 1 ? "s" : ""}`, "tasks/s", sr, gr, sr / gr);
  }
}

async function scenarioMemory(): Promise<void> {
  log(`\n== memory: peak RSS (VmHWM) in the drain scenario${config.quick ? "" : ` and with ${config.memoryTasks} tasks queued`}`);
  if (!drainCache || (runs("sluice") && drainCache.sluice.length === 0) || (runs("graphile") && drainCache.graphile.length === 0)) {
    const n = config.drainTasks;
    const s = runs("sluice")
      ? await repeat("sluice drain", () => drain(sluice(), runnerSpec(), n), (r) => `${fmt.rate(r.rate)} tasks/s; server ${fmt.mb(r.serverRss)} MB, runner ${fmt.mb(r.runnerRss)} MB`, 1)
      : [];
    const g = runs("graphile") ? await repeat("graphile-worker drain", () => drain(graphile, runnerSpec(), n), (r) => `${fmt.rate(r.rate)} tasks/s; worker ${fmt.mb(r.runnerRss)} MB`, 1) : [];
    drainCache = { sluice: s, graphile: g };
  }
  if (!drainCache.peers && peers.length > 0) {
    const p = { bullmq: [], "bullmq-fsync": [], pgboss: [] } as Record<Peer, DrainResult[]>;
    for (const peer of peers) {
      p[peer] = await repeat(`${PEER_LABEL[peer]} drain`, () => drain(peerFactory[peer], runnerSpec(), config.drainTasks), (r) => `${fmt.rate(r.rate)} tasks/s; worker ${fmt.mb(r.runnerRss)} MB`, 1);
    }
    drainCache.peers = p;
  }
  const server = median(drainCache.sluice.map((r) => r.serverRss));
  const runner = median(drainCache.sluice.map((r) => r.runnerRss));
  const worker = median(drainCache.graphile.map((r) => r.runnerRss));
  rows.push({ scenario: "memory", metric: "peak RSS in drain, MB: Sluice server", sluice: fmt.mb(server), graphile: "-", peers: { bullmq: "-", "bullmq-fsync": "-", pgboss: "-" } });
  rows.push({ scenario: "memory", metric: "peak RSS in drain, MB: runner / worker process", sluice: fmt.mb(runner), graphile: fmt.mb(worker) });
  if (drainCache.peers) addPeers("memory", drainCache.peers, (r) => r.runnerRss, fmt.mb);
  addRatio("memory", "peak RSS in drain, MB: server + runner vs worker (ratio = peer / sluice; PostgreSQL and Redis not counted)", "MB", server + runner, worker, worker / (server + runner));
  if (drainCache.peers) addPeers("memory", drainCache.peers, (r) => r.runnerRss, fmt.mb, server + runner, "MB", (a, b) => b / a);

  if (config.quick) {
    log("  (the large-queue run is skipped with --quick)");
    return;
  }
  const n = config.memoryTasks;
  const spec = runnerSpec();
  const rates = (rs: DrainResult[]) => rs.map((r) => fmt.rate(r.rate)).join("/");
  const show = (r: LargeQueueResult) =>
    `queued in ${fmt.ms(r.fillMs / 1000)} s; ${fmt.rate(r.rate)} tasks/s over ${config.memoryWindowMs / 1000} s; server ${fmt.mb(r.serverRss)} MB, runner ${fmt.mb(r.runnerRss)} MB; ` +
    `all drained in ${fmt.ms(r.allMs / 1000)} s; then ${config.agedTasks} more at ${rates(r.aged)} tasks/s, ` +
    `and after a VACUUM (${fmt.ms(r.vacuumMs / 1000)} s) at ${rates(r.vacuumed)} tasks/s; in new databases meanwhile ${rates(r.fresh)} tasks/s`;
  const m = config.agedTasks;
  const [s] = runs("sluice") ? await repeat(`sluice, ${n} queued`, () => largeQueue(sluice(), spec, n, config.memoryWindowMs, m), show, 1) : [];
  const [g] = runs("graphile") ? await repeat(`graphile-worker, ${n} queued`, () => largeQueue(graphile, spec, n, config.memoryWindowMs, m), show, 1) : [];
  if ((runs("sluice") && !s) || (runs("graphile") && !g)) return;
  const name = `memory-${n >= 1_000_000 && n % 1_000_000 === 0 ? `${n / 1_000_000}m` : n}`;
  const na = (x: number | undefined, f: (x: number) => string) => (x === undefined ? "n/a" : f(x));
  const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? undefined : a / b);
  const rate = (rs: DrainResult[] | undefined) => (rs ? median(rs.map((r) => r.rate)) : undefined);
  const row = (metric: string, sv: number | undefined, gv: number | undefined, f: (x: number) => string, r?: number) =>
    rows.push({ scenario: name, metric, sluice: na(sv, f), graphile: na(gv, f), ratio: r });
  row("time to queue, s (bulk, 10,000 per call)", s && s.fillMs / 1000, g && g.fillMs / 1000, fmt.ms, ratio(g?.fillMs, s?.fillMs));
  row(`tasks/s in the first ${config.memoryWindowMs / 1000} s of draining`, s?.rate, g?.rate, fmt.rate, ratio(s?.rate, g?.rate));
  row(`tasks/s over all ${n} tasks`, s && n / (s.allMs / 1000), g && n / (g.allMs / 1000), fmt.rate, ratio(g?.allMs, s?.allMs));
  row(`drain of ${m} after ${n} went through, tasks/s (median of ${config.reps})`, rate(s?.aged), rate(g?.aged), fmt.rate, ratio(rate(s?.aged), rate(g?.aged)));
  row(
    `the same after a VACUUM (which took: Sluice ${na(s && s.vacuumMs / 1000, fmt.ms)} s, graphile-worker ${na(g && g.vacuumMs / 1000, fmt.ms)} s)`,
    rate(s?.vacuumed), rate(g?.vacuumed), fmt.rate, ratio(rate(s?.vacuumed), rate(g?.vacuumed)),
  );
  row(`drain of ${m} in a new database, between those, tasks/s (median of ${2 * config.reps})`, rate(s?.fresh), rate(g?.fresh), fmt.rate, ratio(rate(s?.fresh), rate(g?.fresh)));
  const pct = (x: number) => `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)} %`;
  // Each aged drain against the fresh one that followed it, then the median.
  const change = (r: LargeQueueResult | undefined, rs: (r: LargeQueueResult) => DrainResult[], offset: number) =>
    r && median(rs(r).map((d, i) => d.rate / r.fresh[offset + i].rate - 1));
  const beforeAfter = (r: LargeQueueResult | undefined) =>
    r ? `${pct(change(r, (x) => x.aged, 0)!)} / ${pct(change(r, (x) => x.vacuumed, r.aged.length)!)}` : "n/a";
  rows.push({ scenario: name, metric: "aged drains vs a new database's (before / after the VACUUM; median of pairs)", sluice: beforeAfter(s), graphile: beforeAfter(g) });
  const wal = (rs: DrainResult[] | undefined) => (rs ? median(rs.map((d) => d.walBytes / m)) : undefined);
  const walText = (r: LargeQueueResult | undefined) =>
    r ? `${fmt.ms(wal(r.aged)!)} / ${fmt.ms(wal(r.vacuumed)!)} / ${fmt.ms(wal(r.fresh)!)}` : "n/a";
  rows.push({ scenario: name, metric: "WAL bytes per task drained: aged / after the VACUUM / new database", sluice: walText(s), graphile: walText(g) });
  row("peak RSS, MB: Sluice server", s?.serverRss, undefined, fmt.mb);
  rows[rows.length - 1].graphile = "-";
  row("peak RSS, MB: runner / worker process", s?.runnerRss, g?.runnerRss, fmt.mb);
  if (s && g) addRatio(name, "peak RSS, MB: server + runner vs worker (ratio = graphile-worker / sluice)", "MB", s.serverRss + s.runnerRss, g.runnerRss, g.runnerRss / (s.serverRss + s.runnerRss));
}

// ---------------------------------------------------------------- report

async function header(): Promise<void> {
  const cpu = cpus();
  const sql = dbs.admin();
  let pg = "?";
  let settingsLine = "";
  try {
    const [v] = await sql<{ server_version: string }[]>`SHOW server_version`;
    pg = v.server_version;
    const s = await sql<{ name: string; setting: string; unit: string | null }[]>`
      SELECT name, setting, unit FROM pg_settings
      WHERE name IN ('shared_buffers', 'max_connections', 'synchronous_commit', 'fsync', 'max_wal_size') ORDER BY name`;
    settingsLine = s.map((r) => `${r.name}=${r.setting}${r.unit ?? ""}`).join(", ");
  } finally {
    await sql.end({ timeout: 5 });
  }
  const gwVersion = JSON.parse(await readFile(join(ROOT, "node_modules", "graphile-worker", "package.json"), "utf8")).version;
  let commit = process.env.BENCH_COMMIT ?? "(not a git checkout)";
  try {
    const git = (...args: string[]) => execFileSync("git", args, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    commit = git("rev-parse", "--short", "HEAD");
    if (git("status", "--porcelain", "--", "server", "runner", "bin", "gen") !== "") commit += " with uncommitted changes";
  } catch {}
  const version = async (pkg: string) => JSON.parse(await readFile(join(ROOT, "node_modules", pkg, "package.json"), "utf8")).version as string;
  log(`Sluice vs graphile-worker${peers.length > 0 ? `, ${[...new Set(peers.map((p) => PEER_LABEL[p].replace("-fsync", "")))].join(", ")}` : ""} benchmark`);
  log(`machine:     ${cpu[0]?.model ?? "?"}, ${cpu.length} cores, ${(totalmem() / 1024 ** 3).toFixed(1)} GiB RAM, ${process.platform} ${process.arch}; load average ${loadavg().map((x) => x.toFixed(2)).join(" ")} at start`);
  log(`PostgreSQL:  ${pg}${process.env.DATABASE_URL ? "" : " (embedded)"}; ${settingsLine}`);
  if (redisDescription) log(`Redis:       ${redisDescription}`);
  log(`software:    node ${process.version}, sluice ${commit}, graphile-worker ${gwVersion}, bullmq ${await version("bullmq")}, pg-boss ${await version("pg-boss")}`);
  log(
    `settings:    ${config.quick ? "--quick, " : ""}${config.reps} repetition(s) (median), ${config.drainTasks} drain tasks, ` +
      `sustained ${config.rates.join(" and ")} jobs/s for ${config.sustainedMs / 1000} s, fan-out ${config.fanoutTasks}, ` +
      `${config.quick ? "" : `${config.memoryTasks} queued then drains of ${config.agedTasks}, `}` +
      `concurrency ${config.concurrency}, Sluice prefetch ${config.prefetch}, ${config.analyze ? "ANALYZE" : "no ANALYZE"} after queuing; graphile-worker batched = localQueue.size 500, completeJobBatchDelay 0, pool concurrency+1`,
  );
  log(`server:      ${config.server === "package" ? "the sluice-server package's compiled JavaScript, with node" : "the TypeScript sources, through tsx"} (--server)`);
  if (peers.length > 0) log(`peers:       ${describePeerSettings()}`);
}

let redisDescription = "";

/** The peers asked for whose store answers; one line for each left out, and why. */
async function choosePeers(): Promise<Peer[]> {
  const wantedPeers = PEERS.filter((p) => config.systems.includes(p));
  if (!wantedPeers.some((p) => p.startsWith("bullmq"))) return wantedPeers;
  const unreachable = await pingRedis();
  if (unreachable) {
    log(`bullmq: skipped: no Redis answers at ${redisUrl()} (${unreachable}); set REDIS_URL to run it`);
    return wantedPeers.filter((p) => !p.startsWith("bullmq"));
  }
  redisDescription = await describeRedis();
  if (!wantedPeers.includes("bullmq-fsync")) return wantedPeers;
  const refused = await canMakeDurable();
  if (refused) {
    log(`bullmq-fsync: skipped: this Redis refuses CONFIG SET (${refused})`);
    return wantedPeers.filter((p) => p !== "bullmq-fsync");
  }
  return wantedPeers;
}

function printTable(): void {
  const head: Row = { scenario: "scenario", metric: "metric", sluice: "sluice", graphile: "graphile-worker", peers: Object.fromEntries(peers.map((p) => [p, PEER_LABEL[p]])) };
  const all = [head, ...rows];
  const width = (f: (r: Row) => string) => Math.max(...all.map((r) => f(r).length));
  const columns: { get: (r: Row) => string; align: "left" | "right" }[] = [
    { get: (r) => r.scenario, align: "left" },
    { get: (r) => r.metric, align: "left" },
    { get: (r) => r.sluice, align: "right" },
    { get: (r) => r.graphile, align: "right" },
    ...peers.map((p) => ({ get: (r: Row) => r.peers?.[p] ?? "", align: "right" as const })),
  ];
  const widths = columns.map((c) => width(c.get));
  const line = (r: Row, ratio: string) =>
    [...columns.map((c, i) => (c.align === "left" ? c.get(r).padEnd(widths[i]) : c.get(r).padStart(widths[i]))), ratio].join("  ");
  log("");
  log(line(head, "ratio (vs graphile-worker)"));
  log("-".repeat(widths.reduce((a, b) => a + b + 2, 0) + 26));
  for (const r of rows) log(line(r, r.ratio === undefined ? "" : fmt.ratio(r.ratio)));
  if (peers.includes("bullmq")) log(`bullmq: Redis as it is configured (${redisDescription}); with appendonly no, a job BullMQ acknowledged is lost if Redis stops.`);
  if (peers.includes("bullmq-fsync")) log("bullmq-fsync: the same Redis with appendonly yes and appendfsync always for its runs (every write on disk before Redis answers), restored afterwards.");
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  let embedded: { stop(): Promise<void>; dir: string } | undefined;
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    const dir = await mkdtemp(join(tmpdir(), "sluice-bench-pg-"));
    console.error(`DATABASE_URL is not set: starting an embedded PostgreSQL in ${dir}`);
    const db = await startEmbeddedDatabase(dir);
    adminUrl = db.url;
    embedded = { stop: db.stop, dir };
  }
  dbs = new Databases(adminUrl);
  if (config.server === "package" && config.systems.includes("sluice")) settings.serverCommand = buildServerPackage();
  if (config.profileDir) {
    settings.serverNodeArgs = [...extraNodeArgs, "--cpu-prof", "--cpu-prof-interval=200", `--cpu-prof-dir=${config.profileDir}`];
    settings.runnerNodeArgs = settings.serverNodeArgs;
  }

  let interrupted = false;
  const cleanup = async () => {
    await Promise.all([...allChildren].map((c) => c.kill(5_000)));
    if (redisDescription) {
      // BullMQ runs cut short leave their keys, and bullmq-fsync its Redis
      // settings, behind. Their queues are closed first, so that no run starts
      // and no fill under way adds more.
      await closeQueues();
      for (const restore of [...pendingRestores]) await restore().catch((e) => console.error(`could not restore Redis's persistence settings: ${e}`));
      await adminRedis()
        .then(async (r) => {
          await deleteKeys(r, `${BULLMQ_PREFIX}*`);
          r.disconnect();
        })
        .catch((e) => console.error(`could not delete the benchmark's Redis keys: ${e}`));
    }
    await dbs.dropAll().catch((e) => console.error(`could not drop the benchmark databases: ${e}`));
    if (embedded) {
      await embedded.stop().catch(() => {});
      await rm(embedded.dir, { recursive: true, force: true });
    }
  };
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    console.error("\ninterrupted: stopping child processes and dropping the benchmark databases");
    void cleanup().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const started = Date.now();
  try {
    peers = await choosePeers();
    await header();
    if (wanted("drain")) await scenarioDrain();
    for (const rate of config.rates) if (wanted(`sustained-${rate}`)) await scenarioSustained(rate);
    if (wanted("fanout")) await scenarioFanout();
    if (wanted("scale")) await scenarioScale();
    if (wanted("memory")) await scenarioMemory();
  } finally {
    await cleanup();
  }

  printTable();
  log("");
  log(`took ${((Date.now() - started) / 1000).toFixed(0)} s`);
  if (failures.length > 0) {
    log(`${failures.length} failure(s):`);
    for (const f of failures) log(`  ${f}`);
    process.exitCode = 1;
  }
  log("Every ratio is arranged so that > 1 means Sluice is better: tasks/s sluice / peer;");
  log("fanout and latencies peer time / sluice time (> 1: Sluice is faster); memory peer RSS / sluice RSS.");
  for (const s of summaries) log(`${s.name}: ratio ${fmt.ratio(s.ratio)} (sluice ${s.sluice}, ${s.other} ${s.otherValue})`);
}

await main();
