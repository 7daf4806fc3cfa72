import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FileTask, type ExecutionContext, type PathStatus, type TaskPaths } from "../runner/index.js";
import { FIXTURES, jobInState, quiet, spawnNode, useSandbox } from "./support/harness.js";

/** Submitted here, run by the fixture runner (same identifiers). */
class Touch extends FileTask {
  static identifier = { name: "Touch", version: "v1.0" };
  processPaths() {
    throw new Error("runs in the fixture runner");
  }
}

/** The second attempt of the fixture's Halting task: reports every path it is given. */
const seen: { attempt: number; paths: number; reported: number }[] = [];
class Halting extends FileTask {
  static identifier = { name: "Halting", version: "v1.0" };
  async processPaths(paths: TaskPaths, status: PathStatus, context: ExecutionContext) {
    let n = 0;
    for await (const p of paths) {
      status.add("processed", p, `attempt ${context.attempt}`);
      n++;
    }
    await status.flush();
    let reported = 0;
    for await (const p of context.allPaths()) if (p.state !== undefined) reported++;
    seen.push({ attempt: context.attempt, paths: n, reported });
  }
}

function* manyPaths(n: number, prefix: string) {
  for (let i = 0; i < n; i++) yield { path: `/${prefix}/${String(i).padStart(7, "0")}.dat`, size: i };
}

describe("file task runners", () => {
  const box = useSandbox({ leaseTtlMs: 2_000 });

  it("run a 200,000-path job without holding its paths: the runner's live heap is that of a 20,000-path job", async () => {
    const files = box.client.files();
    const small = await files.submitWorkflow("20k", [Touch], { paths: manyPaths(20_000, "small"), chunkSize: 20_000 });
    const big = await files.submitWorkflow("200k", [Touch], { paths: manyPaths(200_000, "big"), chunkSize: 100_000 });
    expect([small.inputTotal, big.inputTotal, big.chunks]).toEqual([20_000, 200_000, 2]);
    const runner = spawnNode(["--expose-gc", join(FIXTURES, "file-runner.ts"), "touch"], { SLUICE_URL: box.url });
    const [, rss] = await runner.waitFor(/peak rss (\d+) MiB/, 180_000);
    expect(await runner.exited).toBe(0);
    const heaps = [...runner.stdout().matchAll(/task (\d+) paths (\d+) live heap ([\d.]+) MiB/g)].map((m) => ({ paths: Number(m[2]), heap: Number(m[3]) }));
    expect(heaps.map((h) => h.paths)).toEqual([20_000, 100_000, 100_000]);
    // Two pages of 10,000 paths at most are live at once, whatever the job's size.
    const [first, ...rest] = heaps;
    for (const h of rest) expect(h.heap).toBeLessThan(first.heap + 8);
    expect(Number(rss)).toBeLessThan(200);
    await jobInState(box.client, big.job.id, ["completed"]);
    const info = await files.job(big.job.id);
    expect(info.steps[0].summary.processed).toBe(200_000);
  }, 180_000);

  it("keep the states a killed runner reported; the retried attempt gets only the paths not reported yet", async () => {
    const files = box.client.files();
    const { job } = await files.submitWorkflow("halts", [Halting], { paths: manyPaths(12_000, "halt"), chunkSize: 20_000 });
    const doomed = spawnNode([join(FIXTURES, "file-runner.ts"), "halt", "5000"], { SLUICE_URL: box.url });
    const [, , taskId] = await doomed.waitFor(/flushed (\d+) of task (\d+)/, 60_000);
    doomed.process.kill("SIGKILL");
    expect(await doomed.exited).toBe("SIGKILL");

    // The lease runs out; another runner takes the task as its attempt 2.
    const rescuer = box.client.runner("default", { tasks: [Halting], logger: quiet });
    const running = rescuer.runForever();
    await jobInState(box.client, job.id, ["completed"]);
    await rescuer.stop();
    await running;
    expect(seen).toEqual([{ attempt: 2, paths: 7_000, reported: 12_000 }]);
    const byAttempt = await box.sql<{ message: string; n: string }[]>`
      SELECT message, count(*) AS n FROM path_states WHERE task_id = ${taskId} GROUP BY message ORDER BY message`;
    expect(byAttempt.map((r) => [r.message, Number(r.n)])).toEqual([
      ["attempt 1", 5_000],
      ["attempt 2", 7_000],
    ]);
  }, 120_000);
});
