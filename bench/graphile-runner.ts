/**
 * A graphile-worker process for the benchmark: the same no-op and fan-out
 * work as bench/sluice-runner.ts, between the parent's "start" and "stop".
 *
 * Env: DATABASE_URL, BENCH_CONCURRENCY (24), BENCH_BATCHED ("1": localQueue.size
 * 500, completeJobBatchDelay 0, failJobBatchDelay 0; "0": graphile-worker's
 * defaults), BENCH_POOL_SIZE (concurrency + 1, as graphile-worker's own perf test).
 */
import { Logger, type Runner, type TaskList, run } from "graphile-worker";
import { Recorder, lifecycle } from "./lib/child-side.js";
import type { NoopInput } from "./lib/protocol.js";

const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 24);
const batched = process.env.BENCH_BATCHED !== "0";
const poolSize = Number(process.env.BENCH_POOL_SIZE ?? concurrency + 1);
const recorder = new Recorder();

const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") console.error(`graphile-worker ${level}: ${message}`);
});

/**
 * Fan-out without dependencies: the root adds `n` leaf jobs with addJobs (one
 * add_jobs call); every leaf decrements a counter row in bench_fanout, and the
 * leaf that brings it to 0 adds the final job, which stamps finished_at.
 */
const taskList: TaskList = {
  noop: (payload) => {
    const input = payload as NoopInput;
    recorder.started(input.w ? undefined : input.t);
  },
  fanout_root: async (payload, helpers) => {
    recorder.started(undefined);
    const { run: id, n } = payload as { run: number; n: number };
    const specs = Array.from({ length: n }, () => ({ identifier: "fanout_leaf", payload: { run: id } }));
    await helpers.addJobs(specs);
  },
  fanout_leaf: async (payload, helpers) => {
    recorder.started(undefined);
    const { run: id } = payload as { run: number };
    const { rows } = await helpers.query<{ remaining: number }>(
      "UPDATE bench_fanout SET remaining = remaining - 1 WHERE id = $1 RETURNING remaining",
      [id],
    );
    if (rows[0]?.remaining === 0) await helpers.addJob("fanout_final", { run: id });
  },
  fanout_final: async (payload, helpers) => {
    recorder.started(undefined);
    const { run: id } = payload as { run: number };
    await helpers.query("UPDATE bench_fanout SET finished_at = clock_timestamp() WHERE id = $1", [id]);
  },
};

let runner: Runner | undefined;

lifecycle(
  {
    async start() {
      runner = await run({
        connectionString: process.env.DATABASE_URL,
        concurrency,
        maxPoolSize: poolSize,
        noHandleSignals: true,
        logger,
        taskList,
        preset: {
          worker: batched
            ? { localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0 }
            : {},
        },
      });
      runner.promise.catch((e) => console.error("graphile-worker failed:", e));
    },
    async stop() {
      await runner?.stop();
    },
  },
  recorder,
);
