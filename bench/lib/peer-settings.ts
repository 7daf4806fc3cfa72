/**
 * How BullMQ and pg-boss are set up for throughput in the benchmark, following
 * their own documentation; printed in the header of every run.
 */

/**
 * BullMQ: one Worker with a local concurrency factor (its docs' "concurrency"
 * guide shows 50 for asynchronous jobs; one process, like the other systems'
 * single runner), jobs queued with `addBulk`, and completed jobs removed
 * (`removeOnComplete`, as its "going to production" guide advises;
 * graphile-worker deletes them too).
 */
export const BULLMQ = {
  queue: "bench",
  concurrency: Number(process.env.BENCH_BULLMQ_CONCURRENCY ?? 50),
  jobOptions: { removeOnComplete: true, removeOnFail: 1000 },
} as const;

/**
 * pg-boss 10: it has no concurrency option since version 10; its maintainer
 * advises several `work()` calls (each a polling loop of its own) whose
 * handlers run a batch of `batchSize` jobs at once. A loop that found jobs
 * still waits out the rest of `pollingIntervalSeconds` (0.5 s is the least it
 * accepts) before fetching again, so workers x batchSize / 0.5 s bounds the
 * rate of one process.
 */
export const PGBOSS = {
  workers: Number(process.env.BENCH_PGBOSS_WORKERS ?? 8),
  batchSize: Number(process.env.BENCH_PGBOSS_BATCH ?? 500),
  pollingIntervalSeconds: Number(process.env.BENCH_PGBOSS_POLL ?? 0.5),
  /** Connections of each pg-boss instance (pg-boss's own default). */
  poolSize: 10,
} as const;

export function describePeerSettings(): string {
  return (
    `BullMQ Worker concurrency ${BULLMQ.concurrency}, addBulk of 10,000, removeOnComplete; ` +
    `pg-boss ${PGBOSS.workers} work() loops x batchSize ${PGBOSS.batchSize}, pollingIntervalSeconds ${PGBOSS.pollingIntervalSeconds}, pool ${PGBOSS.poolSize}, insert() of 10,000`
  );
}
