/**
 * Submits one-task no-op jobs at a fixed rate, for the sustained scenario:
 * to Sluice with the SDK (`client.jobs().submit` per job; the SDK sends the
 * submits made while its previous batch is on its way as one message on its
 * SubmitStream)
 * or to graphile-worker with `addJob` (one add_job per job), to BullMQ with
 * `queue.add` and to pg-boss with `boss.send` (one job per call). Each task's
 * input carries the wall-clock time its submit call was made.
 *
 * Env: BENCH_SYSTEM (sluice | graphile | bullmq | pgboss), SLUICE_URL, DATABASE_URL
 * or REDIS_URL and BENCH_BULLMQ_PREFIX,
 * BENCH_RATE (jobs/s), BENCH_DURATION_MS, BENCH_WARMUP_MS (submitted before the
 * measured phase, at the same rate, marked so that runners do not record their
 * latency), BENCH_MAX_IN_FLIGHT (256).
 */
import { Queue } from "bullmq";
import { type WorkerUtils, makeWorkerUtils } from "graphile-worker";
import PgBoss from "pg-boss";
import { Client } from "../runner/index.js";
import { sendToParent } from "./lib/child-side.js";
import { BULLMQ, PGBOSS } from "./lib/peer-settings.js";
import type { NoopInput, ToChild } from "./lib/protocol.js";
import { bullmqConnection } from "./lib/redis.js";
import { Samples, now, sleep, summarize } from "./lib/util.js";
import { Noop } from "./tasks.js";

const system = process.env.BENCH_SYSTEM;
const rate = Number(process.env.BENCH_RATE ?? 1000);
const durationMs = Number(process.env.BENCH_DURATION_MS ?? 20_000);
const maxInFlight = Number(process.env.BENCH_MAX_IN_FLIGHT ?? 256);
const warmupMs = Number(process.env.BENCH_WARMUP_MS ?? 0);

let submit: (input: NoopInput) => Promise<unknown>;
let close: () => Promise<void>;
if (system === "sluice") {
  const client = new Client({ url: process.env.SLUICE_URL });
  const jobs = client.jobs();
  submit = (input) => jobs.submit("bench-sustained", new Noop(input));
  close = async () => client.close();
} else if (system === "graphile") {
  const utils: WorkerUtils = await makeWorkerUtils({ connectionString: process.env.DATABASE_URL, maxPoolSize: 10 });
  await utils.migrate();
  submit = (input) => utils.addJob("noop", input);
  close = async () => {
    await utils.release();
  };
} else if (system === "bullmq") {
  const queue = new Queue(BULLMQ.queue, { connection: bullmqConnection(), prefix: process.env.BENCH_BULLMQ_PREFIX, defaultJobOptions: BULLMQ.jobOptions });
  await queue.waitUntilReady();
  submit = (input) => queue.add("noop", input);
  close = () => queue.close();
} else if (system === "pgboss") {
  // Only sends: no maintenance or cron loops here (the worker process runs them).
  const boss = new PgBoss({ connectionString: process.env.DATABASE_URL, max: PGBOSS.poolSize, supervise: false, schedule: false, migrate: false });
  boss.on("error", (e) => console.error("pg-boss error:", e));
  await boss.start();
  submit = (input) => boss.send("noop", input);
  close = () => boss.stop({ graceful: false, wait: true });
} else {
  throw new Error(`BENCH_SYSTEM must be sluice, graphile, bullmq or pgboss, got ${system}`);
}

async function main(): Promise<void> {
  // The first `warmupMs` of submitting is the warm-up, at the same rate and
  // straight into the measured phase; its tasks are counted but their
  // latencies are not recorded.
  const total = Math.round((rate * (warmupMs + durationMs)) / 1000);
  const interval = 1000 / rate;
  let submitted = 0;
  let warmup = 0;
  let inFlight = 0;
  let errors = 0;
  let maxLagMs = 0;
  let firstError = "";
  const pending = new Set<Promise<unknown>>();
  const callMs = new Samples();
  const cpuAtStart = process.cpuUsage();
  const start = now();
  const measuredFrom = start + warmupMs;
  let firstAt = NaN;
  let lastAt = start;
  // Submitting stops at the deadline even when the system could not take
  // everything: how many it took is part of the result.
  const deadline = measuredFrom + durationMs;
  while (submitted < total && now() < deadline) {
    const due = Math.min(total, Math.floor((now() - start) / interval) + 1);
    while (submitted < due && inFlight < maxInFlight) {
      const t = now();
      if (t >= deadline) break;
      const warm = t < measuredFrom;
      if (warm) warmup++;
      else {
        if (Number.isNaN(firstAt)) firstAt = t;
        maxLagMs = Math.max(maxLagMs, t - (start + submitted * interval));
      }
      lastAt = t;
      submitted++;
      inFlight++;
      const p = submit(warm ? { t, w: 1 } : { t })
        .then(() => warm || callMs.push(now() - t))
        .catch((e) => {
          errors++;
          firstError ||= String(e);
        })
        .finally(() => {
          inFlight--;
          pending.delete(p);
        });
      pending.add(p);
    }
    await sleep(1);
  }
  await Promise.all(pending);
  if (firstError) console.error(`submit failed ${errors} times, first: ${firstError}`);
  const call = summarize(callMs.toArray());
  await sendToParent({
    type: "submitted",
    count: Math.max(0, submitted - warmup - errors),
    warmup,
    firstAt: Number.isNaN(firstAt) ? measuredFrom : firstAt,
    lastAt,
    maxLagMs,
    errors,
    callP50Ms: call.p50,
    callP99Ms: call.p99,
    cpuMs: (() => {
      const u = process.cpuUsage(cpuAtStart);
      return (u.user + u.system) / 1000;
    })(),
  });
  await close();
}

process.on("message", (m: ToChild) => {
  if (m.type === "start") {
    void sendToParent({ type: "started", at: now() });
    main()
      .catch((e) => sendToParent({ type: "error", message: String((e as Error)?.stack ?? e) }))
      .finally(() => {
        process.disconnect?.();
        setTimeout(() => process.exit(0), 100).unref();
      });
  }
});
void sendToParent({ type: "loaded" });
