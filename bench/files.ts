/**
 * File workflows end to end: a job of N paths (100,000 and 1,000,000; --quick
 * 20,000 and 100,000) through a workflow of three no-op file tasks, in chunks
 * of 10,000, on 2 runner processes (concurrency 2 each), against a real
 * `sluice server` process. For each size, on a fresh database and fresh
 * processes:
 *   submit     the paths staged page by page (10,000 per call) and the job inserted
 *   run        from the runners' start to the job completed
 *   states/s   path states recorded per second while running (3 per path)
 *   peak RSS   of each runner process and of the server (VmHWM)
 *
 * npm run bench:files [-- --quick] [--sizes 100000,1000000] [--chunk 10000] [--runners 2] [--concurrency 2]
 *                     [--server-node-args "--cpu-prof --cpu-prof-dir=/tmp/prof"] [--runner-node-args "--max-old-space-size=64"]
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { Client } from "../runner/index.js";
import { Databases, ROOT, cpuMs, log, main, option, peakRss, printHeader, quick, sleep, startServer } from "./lib-extra/common.js";
import { BenchIndex, BenchTranscode, BenchVerify } from "./lib-extra/file-tasks.js";

const SIZES = (option("sizes") ?? (quick ? "20000,100000" : "100000,1000000")).split(",").map(Number);
const CHUNK = Number(option("chunk") ?? 10_000);
const RUNNERS = Number(option("runners") ?? 2);
const CONCURRENCY = Number(option("concurrency") ?? 2);
const MiB = 1024 * 1024;
const RUNNER_NODE_ARGS = option("runner-node-args")?.split(" ").filter(Boolean) ?? [];

function* paths(n: number) {
  for (let i = 0; i < n; i++) yield { path: `/mmfs1/data/bench/${String(i).padStart(8, "0")}.dat`, size: i };
}

await main(async (cleanup) => {
  await printHeader("file workflows: N paths through 3 no-op file tasks");
  log(`chunks of ${CHUNK}, ${RUNNERS} runner processes with concurrency ${CONCURRENCY}`);
  log("");
  log("| paths | submit | run | path states/s | runner peak RSS | server peak RSS | server CPU | runner CPU |");
  log("|---:|---:|---:|---:|---:|---:|---:|---:|");
  const dbs = new Databases();
  cleanup(() => dbs.dropAll());
  for (const n of SIZES) {
    const db = await dbs.create("files");
    const server = await startServer(db.url, {}, option("server-node-args")?.split(" ") ?? []);
    const client = new Client({ url: server.url });
    try {
      const files = client.files();
      const t0 = performance.now();
      const { job, chunks } = await files.submitWorkflow(`bench ${n}`, [BenchVerify, BenchTranscode, BenchIndex], { paths: paths(n), chunkSize: CHUNK });
      const submitted = performance.now();
      const runners = Array.from({ length: RUNNERS }, () =>
        spawn(process.execPath, [...RUNNER_NODE_ARGS, "--import", "tsx", join(ROOT, "bench", "lib-extra", "file-runner.ts"), server.url, String(CONCURRENCY)], {
          cwd: ROOT,
          stdio: ["ignore", "inherit", "inherit"],
        }),
      );
      const started = performance.now();
      const serverCpu0 = cpuMs(server.pid);
      let state = "queued";
      while (state !== "completed") {
        await sleep(200);
        state = (await client.jobs().list({ limit: 1 }))[0]?.state ?? "?";
        if (state === "failed" || state === "cancelled") throw new Error(`job ${job.id} ${state}`);
      }
      const ran = performance.now() - started;
      const runnerRss = runners.map((r) => peakRss(r.pid!));
      const runnerCpu = runners.map((r) => cpuMs(r.pid!));
      const serverCpu = cpuMs(server.pid) - serverCpu0;
      const serverRss = peakRss(server.pid);
      for (const r of runners) r.kill("SIGTERM");
      await Promise.all(runners.map((r) => new Promise((res) => (r.exitCode !== null ? res(null) : r.once("exit", res)))));
      const info = await files.job(job.id);
      const states = info.steps.reduce((s, x) => s + x.summary.processed, 0);
      if (states !== 3 * n) throw new Error(`expected ${3 * n} path states, got ${states}`);
      log(
        `| ${n.toLocaleString("en")} (${chunks} chunks) | ${((submitted - t0) / 1000).toFixed(1)} s | ${(ran / 1000).toFixed(1)} s | ${Math.round(states / (ran / 1000)).toLocaleString("en")} | ${runnerRss.map((r) => `${Math.round(r / MiB)}`).join(", ")} MiB | ${Math.round(serverRss / MiB)} MiB | ${(serverCpu / 1000).toFixed(1)} s | ${runnerCpu.map((c) => (c / 1000).toFixed(1)).join(", ")} s |`,
      );
    } finally {
      client.close();
      await server.stop();
      await dbs.drop(db.name);
    }
  }
});
