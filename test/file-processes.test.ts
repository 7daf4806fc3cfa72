import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FileTask, type PathStatus, type TaskPaths, type TaskRunner } from "../runner/index.js";
import { FIXTURES, jobInState, quiet, useSandbox } from "./support/harness.js";

/** Submitted here; run as the Python process of the runner (same identifier). */
class PyVerify extends FileTask {
  static identifier = { name: "PyVerify", version: "v1.0" };
  processPaths() {
    throw new Error("runs as a process");
  }
}

class Count extends FileTask {
  static identifier = { name: "Count", version: "v1.0" };
  async processPaths(paths: TaskPaths, status: PathStatus) {
    for await (const p of paths) status.add("processed", p.path);
  }
}

describe("file tasks as processes", () => {
  const box = useSandbox();
  let runner: TaskRunner | undefined;
  afterAll(async () => {
    await runner?.stop();
  });

  it("read their paths page by page and report states over the job hook; the next task gets what they processed", async () => {
    runner = box.client.runner("default", {
      logger: quiet,
      tasks: [Count],
      processes: { "PyVerify@v1.0": { command: ["python3", join(FIXTURES, "job-hook", "file_task.py")], cwd: join(FIXTURES, "job-hook") } },
    });
    void runner.runForever();
    const paths = Array.from({ length: 23 }, (_, i) => `/py/${i % 4 === 0 ? "bad" : "ok"}-${String(i).padStart(2, "0")}`);
    const files = box.client.files();
    const { job } = await files.submitWorkflow("python files", [PyVerify, Count], { paths });
    await jobInState(box.client, job.id, ["completed"]);
    const details = await box.client.jobs().get(job.id);
    const out = details.tasks[0].output?.stdout ?? "";
    expect(out).toContain("seen 23");
    expect(out).toMatch(/refused 400 path "\/elsewhere" is not one of the input paths/);
    expect(out).toMatch(/refused 400 states\[0\]: state "done" is unknown: use processed, skipped, aborted, failures, inprogress/);
    const failures = [];
    for await (const p of files.paths(job.id, { task: "PyVerify", states: ["failures"] })) failures.push([p.path, p.message]);
    expect(failures).toEqual(paths.filter((p) => p.includes("bad")).map((p) => [p, "no such file"]));
    const counted = [];
    for await (const p of files.paths(job.id, { task: "Count", input: true })) counted.push(p.path);
    expect(counted.sort()).toEqual(paths.filter((p) => !p.includes("bad")));
  });
});
