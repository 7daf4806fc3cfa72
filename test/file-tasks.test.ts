import { describe, expect, it } from "vitest";
import { type ExecutionContext, FileTask, type PathObject, type PathStatus, Task, type TaskPaths } from "../runner/index.js";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deleteExpiredJobs } from "../server/store/job-retention.js";
import { ROOT, jobInState, quiet, spawnNode, useSandbox } from "./support/harness.js";

/** Fails paths with "bad" in their name, skips those with "skip", processes the rest. */
class Verify extends FileTask {
  static identifier = { name: "Verify", version: "v1.0" };
  async processPaths(paths: TaskPaths, status: PathStatus) {
    for await (const p of paths) {
      if (p.path.includes("bad")) status.add("failures", p, "checksum mismatch");
      else if (p.path.includes("skip")) status.add("skipped", p);
      else status.add("processed", p);
    }
  }
}

/** Aborts paths with "abort" in their name; records the size it was given. */
class Transcode extends FileTask<{ codec: string }> {
  static identifier = { name: "Transcode", version: "v1.0" };
  async processPaths(paths: TaskPaths, status: PathStatus) {
    for await (const p of paths) {
      if (p.path.includes("abort")) status.add("aborted", p, `not transcoded to ${this.input.codec}`);
      else status.add("processed", p);
    }
  }
}

class Index extends FileTask {
  static identifier = { name: "Index", version: "v1.0" };
  async processPaths(paths: TaskPaths, status: PathStatus) {
    for await (const p of paths) status.add("processed", p.path);
  }
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** Where each task ran: `context.queue` as the seed writes it. */
const queues: string[] = [];
class Where extends FileTask {
  static identifier = { name: "Where", version: "v1.0" };
  async processPaths(paths: TaskPaths, status: PathStatus, context: ExecutionContext) {
    for await (const p of paths) status.add("processed", p, String(context.queue));
    queues.push(`file task at ${context.queue}`);
  }
}
class Plain extends Task<{ tag: string }> {
  static identifier = { name: "Plain", version: "v1.0" };
  execute(context: ExecutionContext) {
    queues.push(`${this.input.tag} at ${context.queue}`);
  }
}

const names = (ps: PathObject[]) => ps.map((p) => p.path).sort();

describe("file workflows", () => {
  const box = useSandbox();

  it("passes exactly the processed and skipped paths of each task to the next, chunk by chunk", async () => {
    const inputs: PathObject[] = [];
    for (let i = 0; i < 40; i++) {
      const kind = i % 10 === 3 ? "bad" : i % 10 === 5 ? "skip" : i % 10 === 7 ? "abort" : "ok";
      inputs.push({ path: `/data/${kind}-${String(i).padStart(2, "0")}.mov`, size: 1000 + i, owner: "ops" });
    }
    const files = box.client.files();
    const { job, inputTotal, chunks } = await files.submitWorkflow("ingest", [new Verify(), new Transcode({ codec: "av1" }), Index], {
      paths: inputs,
      chunkSize: 15,
    });
    expect(inputTotal).toBe(40);
    expect(chunks).toBe(3);
    const runner = box.client.runner("default", { tasks: [Verify, Transcode, Index], concurrency: 4, logger: quiet });
    await runner.runAll();
    expect((await jobInState(box.client, job.id, ["completed"])).state).toBe("completed");

    const all = names(inputs);
    const verified = all.filter((p) => !p.includes("bad"));
    const transcoded = verified.filter((p) => !p.includes("abort"));
    const input = async (task: string) => names(await collect(files.paths(job.id, { task, input: true })));
    expect(await input("Verify")).toEqual(all);
    expect(await input("Transcode")).toEqual(verified);
    expect(await input("Index")).toEqual(transcoded);
    // Small pages across the chunks' tasks give the same paths, each once.
    expect(names(await collect(files.paths(job.id, { task: "Verify", input: true, pageSize: 4 })))).toEqual(all);
    expect(names(await collect(files.paths(job.id, { task: "Transcode", pageSize: 3 })))).toEqual(verified);

    // Reported states, per task and per state, with messages.
    const failures = await collect(files.paths(job.id, { task: "Verify", states: ["failures"] }));
    expect(names(failures)).toEqual(all.filter((p) => p.includes("bad")));
    expect(failures.every((p) => p.message === "checksum mismatch")).toBe(true);
    const aborted = await collect(files.paths(job.id, { task: "1", states: ["aborted"] }));
    expect(names(aborted)).toEqual(verified.filter((p) => p.includes("abort")));

    // The path objects travel with their size and other keys.
    const indexed = await collect(files.paths(job.id, { task: "Index", input: true }));
    const first = indexed.find((p) => p.path === "/data/ok-00.mov")!;
    expect(first.size).toBe(1000);
    expect(first.owner).toBe("ops");

    // The job's summary adds the chunks up.
    const info = await files.job(job.id);
    expect(info.tasks).toHaveLength(9);
    expect(info.steps.map((s) => [s.task, s.inputTotal, s.summary])).toEqual([
      ["Verify", 40, { processed: 32, skipped: 4, aborted: 0, failures: 4, inprogress: 0 }],
      ["Transcode", 36, { processed: 32, skipped: 0, aborted: 4, failures: 0, inprogress: 0 }],
      ["Index", 32, { processed: 32, skipped: 0, aborted: 0, failures: 0, inprogress: 0 }],
    ]);

    // The CLI pages through the same paths.
    const cli = spawnNode([join(ROOT, "bin", "sluice.js"), "jobs", "paths", job.id, "--task", "Verify", "--state", "failures"], { SLUICE_URL: box.url });
    expect(await cli.exited, cli.stderr()).toBe(0);
    const lines = cli.stdout().trim().split("\n").map((l) => l.split("\t"));
    expect(lines.map((l) => l[2]).sort()).toEqual(all.filter((p) => p.includes("bad")));
    expect(lines.every((l) => l[1] === "failures" && l[3] === "checksum mismatch")).toBe(true);
    const summary = spawnNode([join(ROOT, "bin", "sluice.js"), "jobs", "files", job.id], { SLUICE_URL: box.url });
    expect(await summary.exited, summary.stderr()).toBe(0);
    expect(summary.stdout()).toMatch(/0\. Verify\s+40 in: 32 processed, 4 skipped, 0 aborted, 4 failures, 0 inprogress/);
    expect(summary.stdout()).toMatch(/2\. Index\s+32 in: 32 processed/);
  });

  it("reads a task's result back in the seed's payload format", async () => {
    const files = box.client.files();
    const { job } = await files.submitWorkflow("seed payload", [Verify], {
      paths: ["/mmfs1/data/my-fileset/file1", { path: "/mmfs1/data/my-fileset/bad-file2", size: 7 }],
    });
    await box.client.runner("default", { tasks: [Verify], logger: quiet }).runAll();
    await jobInState(box.client, job.id, ["completed"]);
    const payload = await files.payload(job.id, "Verify");
    const cli = spawnNode([join(ROOT, "bin", "sluice.js"), "jobs", "paths", job.id, "--task", "Verify", "--payload"], { SLUICE_URL: box.url });
    expect(await cli.exited, cli.stderr()).toBe(0);
    expect(JSON.parse(cli.stdout())).toEqual(payload);
    expect(payload).toEqual({
      jobid: Number(job.id),
      paths: [{ path: "/mmfs1/data/my-fileset/file1" }],
      status: {
        task: "Verify",
        input_paths: [{ path: "/mmfs1/data/my-fileset/file1" }, { path: "/mmfs1/data/my-fileset/bad-file2", size: 7 }],
        input_total: 2,
        summary: { processed: 1, skipped: 0, aborted: 0, failures: 1, inprogress: 0 },
        details: {
          processed: [{ path: "/mmfs1/data/my-fileset/file1" }],
          skipped: [],
          aborted: [],
          failures: [{ path: "/mmfs1/data/my-fileset/bad-file2", size: 7, message: ["checksum mismatch"] }],
          inprogress: [],
        },
        started: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00$/),
      },
    });
    // The time is the task's start, with its offset.
    const started = new Date(payload.status.started!).getTime();
    expect(Math.abs(started - (await box.client.jobs().get(job.id)).tasks[0].startedAt!.getTime())).toBeLessThan(1);
  });

  it("runs a task bound to a site only on that site's runners, and tells it its queue as site.queue#function", async () => {
    await box.client.clusters().create("sites", "Sites");
    const files = box.client.files();
    const { job: workflow } = await files.submitWorkflow("at paris", [Where], { paths: ["/p/1", "/p/2"], cluster: "sites", site: "paris" });
    const plain = await box.client.jobs().submit("at london", new Plain({ tag: "bound" }), { cluster: "sites", site: "london" });
    const anywhere = await box.client.jobs().submit("anywhere", new Plain({ tag: "unbound" }), { cluster: "sites" });
    const runners = ["london", "paris", undefined].map((site) => box.client.runner("sites", { tasks: [Where, Plain], site, logger: quiet }));
    // The runner without a site starts first: it takes only the task bound to none.
    const running = runners.reverse().map((r) => r.runForever());
    for (const id of [workflow.id, plain.id, anywhere.id]) await jobInState(box.client, id, ["completed"]);
    await Promise.all(runners.map((r) => r.stop()));
    await Promise.all(running);
    expect(queues.filter((q) => !q.startsWith("unbound")).sort()).toEqual(["bound at london.sites#Plain", "file task at paris.sites#Where"]);
    expect(queues.filter((q) => q.startsWith("unbound"))).toEqual([expect.stringMatching(/^unbound at ((london|paris)\.)?sites#Plain$/)]);
    const info = await files.job(workflow.id);
    expect([info.site, info.tasks[0].task]).toEqual(["paris", "Where"]);
    const states = await collect(files.paths(workflow.id, { task: "Where" }));
    expect(states.map((p) => p.message)).toEqual(["paris.sites#Where", "paris.sites#Where"]);
  });

  it("takes its input from a listing of a storage location (prefix and glob) or from a storage event", async () => {
    const folder = await mkdtemp(join(tmpdir(), "sluice-files-"));
    await mkdir(join(folder, "in", "deep"), { recursive: true });
    for (const f of ["in/a.mov", "in/b.txt", "in/deep/c.mov", "out/d.mov"]) {
      await mkdir(join(folder, f, ".."), { recursive: true });
      await writeFile(join(folder, f), "12345");
    }
    const location = await box.client.recurrentTasks().registerStorageLocation({ type: "fs", location: folder, reconcileIntervalSeconds: 0 });
    const files = box.client.files();
    const listed = await files.submitWorkflow("listed", [Index], { listing: { location, prefix: "in/", glob: "**.mov" } });
    expect(listed.inputTotal).toBe(2);
    const fired = await files.submitWorkflow("fired", [Index], {
      event: { type: "CREATED", key: "out/d.mov", location: "out/d.mov", version: "1", storage: location },
    });
    await box.client.runner("default", { tasks: [Index], logger: quiet }).runAll();
    for (const j of [listed, fired]) await jobInState(box.client, j.job.id, ["completed"]);
    const input = await collect(files.paths(listed.job.id, { input: true }));
    expect(input.map((p) => [p.path, p.size]).sort()).toEqual([
      [join(folder, "in/a.mov"), 5],
      [join(folder, "in/deep/c.mov"), 5],
    ].sort());
    expect((await collect(files.paths(fired.job.id, { states: ["processed"] }))).map((p) => p.path)).toEqual([join(folder, "out/d.mov")]);
  });

  it("deletes the paths and states of a file workflow with its job (job retention)", async () => {
    const counts = async () =>
      (await box.sql`SELECT (SELECT count(*) FROM file_tasks) AS f, (SELECT count(*) FROM path_states) AS s, (SELECT count(*) FROM path_list_items) AS i`)[0];
    expect(Number((await counts()).s)).toBeGreaterThan(0);
    while ((await deleteExpiredJobs(box.sql, 0, 1_000)) > 0);
    expect(await counts()).toEqual({ f: "0", s: "0", i: "0" });
  });
});
