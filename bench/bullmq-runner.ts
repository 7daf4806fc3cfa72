/**
 * A BullMQ worker process for the benchmark: the same no-op and fan-out work
 * as bench/sluice-runner.ts, between the parent's "start" and "stop".
 *
 * Env: REDIS_URL, BENCH_BULLMQ_PREFIX (the run's key prefix),
 * BENCH_BULLMQ_CONCURRENCY (see bench/lib/peer-settings.ts).
 */
import { FlowProducer, type Job, Worker } from "bullmq";
import { Recorder, lifecycle } from "./lib/child-side.js";
import { BULLMQ } from "./lib/peer-settings.js";
import type { NoopInput } from "./lib/protocol.js";
import { bullmqConnection } from "./lib/redis.js";

const prefix = process.env.BENCH_BULLMQ_PREFIX ?? "sluice-bench";
const connection = bullmqConnection();
const recorder = new Recorder();
const flows = new FlowProducer({ connection, prefix });

/**
 * Fan-out as BullMQ expresses it: a flow whose parent (`fanout_final`) runs
 * once all its children (`n` leaves) have completed, added by the root job.
 */
async function processJob(job: Job): Promise<void> {
  switch (job.name) {
    case "noop": {
      const input = job.data as NoopInput;
      recorder.started(input.w ? undefined : input.t);
      return;
    }
    case "fanout_root": {
      recorder.started(undefined);
      const { n } = job.data as { n: number };
      await flows.add({
        name: "fanout_final",
        queueName: BULLMQ.queue,
        opts: { jobId: "fanout-final", removeOnComplete: false },
        children: Array.from({ length: n }, () => ({ name: "fanout_leaf", queueName: BULLMQ.queue, opts: { removeOnComplete: true } })),
      });
      return;
    }
    default:
      recorder.started(undefined);
  }
}

const worker = new Worker(BULLMQ.queue, processJob, { connection, prefix, concurrency: BULLMQ.concurrency, autorun: false });
worker.on("error", (e) => console.error("bullmq worker error:", e));
worker.on("failed", (job, e) => console.error(`bullmq job ${job?.id} failed: ${e}`));
let running: Promise<void> | undefined;

lifecycle(
  {
    start() {
      running = worker.run();
      running.catch((e) => console.error("bullmq worker failed:", e));
    },
    async stop() {
      await worker.close();
      await running?.catch(() => {});
      await flows.close();
    },
  },
  recorder,
);
