import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Client, type ExecutionContext, Task } from "../runner/index.js";
import { type SluiceServer, buildServer } from "../server/build-server.js";
import { ObservabilityDefaults } from "../server/observe/config.js";
import { ROOT, eventually, jobInState, quiet, sluice, spawnNode, useSandbox } from "./support/harness.js";

const gates = new Map<string, () => void>();
function gated(name: string): Promise<void> {
  return new Promise((resolve) => gates.set(name, resolve));
}
const open = (name: string) => eventually(() => gates.get(name), 20_000, `task behind gate ${name} to start`).then((o) => o());

class Hello extends Task<{ gate?: string; fail?: boolean }> {
  static identifier = { name: "Hello", version: "v1.0" };
  async execute(context: ExecutionContext) {
    const steps = context.progress("steps", 4);
    console.log("hello from the task");
    steps.add(1);
    if (this.input.gate) await gated(this.input.gate);
    context.logger.info("after the gate", { step: 2 });
    steps.add(3);
    if (this.input.fail) throw new Error("asked to fail");
  }
}

class Other extends Task {
  static identifier = { name: "Other", version: "v2.3" };
  execute() {}
}

describe("runners", () => {
  const box = useSandbox({ observability: { ...ObservabilityDefaults, runnerTouchIntervalMs: 200 } });
  let second: SluiceServer | undefined;
  afterAll(async () => {
    await second?.stop();
  });

  it("lists connected runners on every server of the database, with what they hold, until they stop", async () => {
    await box.client.clusters().create("gpu");
    const runner = box.client.runner("default", { tasks: [Hello, Other], concurrency: 3, prefetch: 2, name: "test-runner", logger: quiet, echoTaskLogs: false });
    const gpu = box.client.runner("gpu", { tasks: [Other], logger: quiet });
    const running = [runner.runForever(), gpu.runForever()];
    try {
      const obs = box.client.observability();
      const listed = await eventually(async () => {
        const all = await obs.runners();
        return all.length === 2 ? all : undefined;
      });
      const mine = listed.find((r) => r.id === runner.id)!;
      expect(mine).toMatchObject({
        name: "test-runner",
        cluster: "default",
        concurrency: 3,
        prefetch: 2,
        inFlight: 0,
        tasks: [
          { name: "Hello", version: "v1.0" },
          { name: "Other", version: "v2.3" },
        ],
      });
      expect(mine.host).not.toBe("");
      expect(Date.now() - mine.connectedAt.getTime()).toBeLessThan(60_000);
      expect((await obs.runners({ cluster: "gpu" })).map((r) => r.id)).toEqual([gpu.id]);

      // Another server on the same database sees the same runners, and what they hold.
      second = await buildServer({ host: "127.0.0.1", port: 0, databaseUrl: box.databaseUrl });
      const other = new Client({ url: second.url });
      const job = await box.client.jobs().submit("held", new Hello({ gate: "held" }));
      const holding = await eventually(async () => {
        const r = (await other.observability().runners({ cluster: "default" }))[0];
        return r?.inFlight === 1 ? r : undefined;
      });
      expect(holding.id).toBe(runner.id);
      await open("held");
      await jobInState(box.client, job.id, ["completed"]);
      other.close();

      await gpu.stop();
      await eventually(async () => (await obs.runners()).length === 1);
      const cli = await sluice(["runners", "list"], { SLUICE_URL: box.url });
      expect(cli.stdout).toContain(runner.id);
      expect(cli.stdout).toContain("Hello v1.0, Other v2.3");
      expect(cli.stdout).toMatch(/default\s+0\/3\+2 in flight/);
    } finally {
      await runner.stop();
      await gpu.stop();
      await Promise.all(running);
    }
  });

  it("names a task no connected runner can run, in the API, in sluice jobs show and when submitting", async () => {
    const runner = box.client.runner("default", { tasks: [Hello], logger: quiet });
    const running = runner.runForever();
    try {
      await eventually(async () => (await box.client.observability().runners({ cluster: "default" })).some((r) => r.id === runner.id));
      const env = { SLUICE_URL: box.url };
      const submitted = await sluice(["jobs", "submit", "old hello", "--task", "Hello@v0.0"], env);
      expect(submitted.code).toBe(0);
      expect(submitted.stderr).toContain("no connected runner of cluster default has Hello v0.0 (runners have Hello v1.0)");
      const jobId = /submitted job (\d+)/.exec(submitted.stdout)![1];
      const progress = await box.client.observability().progress(jobId);
      expect(progress.unrunnable).toEqual([
        {
          cluster: "default",
          identifier: { name: "Hello", version: "v0.0" },
          count: 1,
          runnerVersions: ["v1.0"],
          message: "no connected runner has Hello v0.0 (runners have Hello v1.0)",
        },
      ]);
      const shown = await sluice(["jobs", "show", jobId], env);
      expect(shown.stdout).toContain("waiting: 1 ready task on cluster default: no connected runner has Hello v0.0 (runners have Hello v1.0)");

      const nobody = await sluice(["jobs", "submit", "nobody", "--task", "Nobody@v1.0"], env);
      expect(nobody.stderr).toContain("no connected runner of cluster default has Nobody v1.0 (no runner has Nobody at all)");
      // A task a runner has: no warning.
      const fine = await sluice(["jobs", "submit", "fine", "--task", "Hello@v1.0"], env);
      expect(fine.stderr).not.toContain("warning");
    } finally {
      await runner.stop();
      await running;
    }
  });

  it("follows logs from the CLI while a task runs, and submit --wait shows progress and fails with the job", async () => {
    const runner = box.client.runner("default", { tasks: [Hello], logger: quiet, echoTaskLogs: false });
    const running = runner.runForever();
    try {
      const env = { SLUICE_URL: box.url };
      const job = await box.client.jobs().submit("followed", new Hello({ gate: "cli" }));
      const follow = spawnNode([join(ROOT, "bin", "sluice.js"), "jobs", "logs", job.id, "--follow"], env);
      await follow.waitFor(/INFO\s+hello from the task/);
      expect(follow.stdout()).not.toContain("after the gate");
      expect((await box.client.jobs().get(job.id)).state).toBe("started");
      const shown = await sluice(["jobs", "show", job.id], env);
      expect(shown.stdout).toMatch(/steps\s+\[#+-+\]\s+25%\s+1\/4/);
      await open("cli");
      await follow.waitFor(/after the gate \{"step":2\}/);
      expect(await follow.exited).toBe(0);
      expect(follow.stderr()).toContain(`job ${job.id} completed`);

      const failing = await sluice(["jobs", "submit", "failing", "--task", "Hello@v1.0", "--input", '{"fail":true}', "--wait"], env);
      expect(failing.code).toBe(1);
      expect(failing.stderr).toMatch(/steps\s+\[#{30}\]\s+100%\s+4\/4/);
      expect(failing.stderr).toMatch(/job \d+ failed/);
      const ok = await sluice(["jobs", "submit", "fine", "--task", "Hello@v1.0", "--wait"], env);
      expect(ok.code).toBe(0);
      expect(ok.stderr).toMatch(/job \d+ is completed/);
    } finally {
      await runner.stop();
      await running;
    }
  });
});
