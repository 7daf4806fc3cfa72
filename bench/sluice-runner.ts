/**
 * A Sluice runner process for the benchmark: runs the bench tasks with the
 * given concurrency against SLUICE_URL, between the parent's "start" and "stop".
 *
 * Env: SLUICE_URL, BENCH_CONCURRENCY (24), BENCH_PREFETCH (= concurrency).
 */
import { Client } from "../runner/index.js";
import { Recorder, lifecycle } from "./lib/child-side.js";
import { allTasks, hooks } from "./tasks.js";

const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 24);
const prefetch = Number(process.env.BENCH_PREFETCH ?? concurrency);
const recorder = new Recorder();
hooks.recorder = recorder;

const warnings: string[] = [];
const logger = {
  info() {},
  warn: (m: string) => warnings.length < 20 && warnings.push(m),
  error: (m: string) => console.error(m),
};

const client = new Client({ url: process.env.SLUICE_URL });
// Task log lines go to the server only: echoing them would measure the parent reading a pipe.
const runner = client.runner("default", { tasks: allTasks, concurrency, prefetch, logger, echoTaskLogs: false });
let running: Promise<void> | undefined;

lifecycle(
  {
    start() {
      running = runner.runForever();
      running.catch((e) => console.error("runner failed:", e));
    },
    async stop() {
      await runner.stop();
      await running?.catch(() => {});
      client.close();
      if (warnings.length > 0) console.error(`runner warnings (first ${warnings.length}):\n${warnings.join("\n")}`);
    },
  },
  recorder,
);
