import { describe, expect, it } from "vitest";
import { type ExecutionContext, Task, type TaskClass } from "../runner/index.js";
import { quiet, useSandbox } from "./support/harness.js";

/** What ran, in order: the tag of the task and the class that executed it. */
const ran: string[] = [];

/** Makes a task class with the given identifier that records its runs. */
function taskClass(name: string, version: string): TaskClass<Task<{ tag: string }>> {
  return class extends Task<{ tag: string }> {
    static identifier = { name, version };
    execute() {
      ran.push(`${this.input.tag} by ${name} ${version}`);
    }
  };
}

describe("a runner is only given tasks it can run", () => {
  const box = useSandbox();
  const runAll = (cluster: string, tasks: TaskClass[]) => box.client.runner(cluster, { tasks, concurrency: 4, logger: quiet }).runAll();

  it("runs tasks with its names and compatible versions, and leaves the rest queued", async () => {
    ran.length = 0;
    const jobs = box.client.jobs();
    const submitted = {
      v10: await jobs.submit("v1.0", new (taskClass("Hello", "v1.0"))({ tag: "v1.0" })),
      v12: await jobs.submit("v1.2", new (taskClass("Hello", "v1.2"))({ tag: "v1.2" })),
      v13: await jobs.submit("v1.3", new (taskClass("Hello", "v1.3"))({ tag: "v1.3" })),
      v20: await jobs.submit("v2.0", new (taskClass("Hello", "v2.0"))({ tag: "v2.0" })),
      other: await jobs.submit("other", new (taskClass("Other", "v1.0"))({ tag: "other" })),
    };

    // A runner with Hello v1.2 runs Hello v1.0 and v1.2 tasks, with its v1.2 class.
    await runAll("default", [taskClass("Hello", "v1.2")]);
    expect(ran.sort()).toEqual(["v1.0 by Hello v1.2", "v1.2 by Hello v1.2"]);
    const state = async (id: string) => (await jobs.get(id)).state;
    expect(await state(submitted.v10.id)).toBe("completed");
    expect(await state(submitted.v12.id)).toBe("completed");
    for (const waiting of [submitted.v13, submitted.v20, submitted.other]) expect(await state(waiting.id)).toBe("queued");

    // The waiting tasks run once a runner that can run them comes.
    ran.length = 0;
    await runAll("default", [taskClass("Hello", "v2.1"), taskClass("Other", "v1.0"), taskClass("Hello", "v1.3")]);
    expect(ran.sort()).toEqual(["other by Other v1.0", "v1.3 by Hello v1.3", "v2.0 by Hello v2.1"]);
    for (const done of [submitted.v13, submitted.v20, submitted.other]) expect(await state(done.id)).toBe("completed");
  });

  it("refuses to register two minor versions of one major version", () => {
    expect(() => box.client.runner("default", { tasks: [taskClass("Hello", "v1.0"), taskClass("Hello", "v1.4")] })).toThrow(
      /Hello v1.0 and v1.4 are both registered/,
    );
  });

  it("keeps tasks of another cluster for a runner of that cluster, subtasks included", async () => {
    ran.length = 0;
    await box.client.clusters().create("gpu", "GPU machines");
    const Work = taskClass("Work", "v1.0");
    class Split extends Task {
      static identifier = { name: "Split", version: "v1.0" };
      execute(context: ExecutionContext) {
        ran.push("split");
        context.submitSubtask(new Work({ tag: "on gpu" }), { cluster: "gpu" });
        context.submitSubtask(new Work({ tag: "on default" }));
      }
    }
    const jobs = box.client.jobs();
    const gpuJob = await jobs.submit("gpu job", new Work({ tag: "gpu root" }), { cluster: "gpu" });
    const split = await jobs.submit("split", new Split());

    await runAll("default", [Work, Split]);
    expect(ran.sort()).toEqual(["on default by Work v1.0", "split"]);
    expect((await jobs.get(gpuJob.id)).state).toBe("queued");
    const waiting = await jobs.get(split.id);
    expect(waiting.state).toBe("started");
    expect(waiting.tasks.find((t) => t.state === "queued")).toMatchObject({ cluster: "gpu", input: { tag: "on gpu" } });

    ran.length = 0;
    await runAll("gpu", [Work]);
    expect(ran.sort()).toEqual(["gpu root by Work v1.0", "on gpu by Work v1.0"]);
    expect((await jobs.get(gpuJob.id)).state).toBe("completed");
    expect((await jobs.get(split.id)).state).toBe("completed");
    expect((await jobs.list({ cluster: "gpu" })).map((j) => j.id)).toEqual([gpuJob.id]);
  });
});
