import { describe, expect, it } from "vitest";
import { type ExecutionContext, Task } from "../runner/index.js";
import { quiet, useSandbox } from "./support/harness.js";

/** Start and end of each task's execution, by tag. */
const log: { tag: string; event: "start" | "end" }[] = [];
const pause = () => new Promise((r) => setTimeout(r, 5));

class Step extends Task<{ tag: string }> {
  static identifier = { name: "Step", version: "v1.0" };
  async execute() {
    log.push({ tag: this.input.tag, event: "start" });
    await pause();
    log.push({ tag: this.input.tag, event: "end" });
  }
}

class Diamond extends Task {
  static identifier = { name: "Diamond", version: "v1.0" };
  execute(context: ExecutionContext) {
    const a = context.submitSubtask(new Step({ tag: "a" }));
    const b = context.submitSubtask(new Step({ tag: "b" }), { dependsOn: [a] });
    const c = context.submitSubtask(new Step({ tag: "c" }), { dependsOn: [a] });
    context.submitSubtask(new Step({ tag: "d" }), { dependsOn: [b, c] });
  }
}

let leavesRun = 0;
let leavesSeenBySum = -1;

class Leaf extends Task<{ i: number }> {
  static identifier = { name: "Leaf", version: "v1.0" };
  execute() {
    leavesRun++;
  }
}

class Sum extends Task {
  static identifier = { name: "Sum", version: "v1.0" };
  execute() {
    leavesSeenBySum = leavesRun;
  }
}

class FanOut extends Task<{ n: number }> {
  static identifier = { name: "FanOut", version: "v1.0" };
  execute(context: ExecutionContext) {
    const leaves = Array.from({ length: this.input.n }, (_, i) => context.submitSubtask(new Leaf({ i })));
    context.submitSubtask(new Sum(), { dependsOn: leaves });
  }
}

let orphansRun = 0;

class Orphan extends Task {
  static identifier = { name: "Orphan", version: "v1.0" };
  execute() {
    orphansRun++;
  }
}

class SubmitsThenThrows extends Task {
  static identifier = { name: "SubmitsThenThrows", version: "v1.0" };
  execute(context: ExecutionContext) {
    context.submitSubtasks([new Orphan(), new Orphan()]);
    throw new Error("parent failed after submitting subtasks");
  }
}

class SubmitsToNowhere extends Task {
  static identifier = { name: "SubmitsToNowhere", version: "v1.0" };
  execute(context: ExecutionContext) {
    context.submitSubtask(new Orphan());
    context.submitSubtask(new Orphan(), { cluster: "no-such-cluster" });
  }
}

describe("subtasks", () => {
  const box = useSandbox();
  const tasks = [Step, Diamond, Leaf, Sum, FanOut, Orphan, SubmitsThenThrows, SubmitsToNowhere];
  const runAll = () => box.client.runner("default", { tasks, concurrency: 8, logger: quiet }).runAll();

  it("run a diamond in dependency order", async () => {
    log.length = 0;
    const job = await box.client.jobs().submit("diamond", new Diamond());
    await runAll();

    const at = (tag: string, event: "start" | "end") => log.findIndex((e) => e.tag === tag && e.event === event);
    expect(log).toHaveLength(8);
    expect(at("b", "start")).toBeGreaterThan(at("a", "end"));
    expect(at("c", "start")).toBeGreaterThan(at("a", "end"));
    expect(at("d", "start")).toBeGreaterThan(at("b", "end"));
    expect(at("d", "start")).toBeGreaterThan(at("c", "end"));

    const done = await box.client.jobs().get(job.id);
    expect(done.state).toBe("completed");
    const byTag = new Map(done.tasks.map((t) => [(t.input as { tag?: string }).tag ?? "root", t]));
    expect(byTag.get("d")!.dependsOn.sort()).toEqual([byTag.get("b")!.id, byTag.get("c")!.id].sort());
    expect(byTag.get("a")!.parentId).toBe(byTag.get("root")!.id);
  });

  it("fan out to 1,000 subtasks and a task that waits for all of them", async () => {
    leavesRun = 0;
    leavesSeenBySum = -1;
    const job = await box.client.jobs().submit("fan-out", new FanOut({ n: 1000 }));
    await runAll();
    expect(leavesRun).toBe(1000);
    expect(leavesSeenBySum).toBe(1000);
    const done = await box.client.jobs().get(job.id);
    expect(done.state).toBe("completed");
    expect(done.taskCounts.computed).toBe(1002);
  });

  it("are never created when their parent fails", async () => {
    orphansRun = 0;
    const job = await box.client.jobs().submit("parent fails", new SubmitsThenThrows(), { maxRetries: 1 });
    await runAll();
    const failed = await box.client.jobs().get(job.id);
    expect(failed.state).toBe("failed");
    expect(failed.tasks).toHaveLength(1);
    expect(failed.tasks[0].failures).toBe(2);
    expect(orphansRun).toBe(0);
  });

  it("that name an unknown cluster fail their parent, and none of its subtasks are created", async () => {
    orphansRun = 0;
    const job = await box.client.jobs().submit("bad subtasks", new SubmitsToNowhere());
    await runAll();
    const failed = await box.client.jobs().get(job.id);
    expect(failed.state).toBe("failed");
    expect(failed.tasks).toHaveLength(1);
    expect(failed.tasks[0].lastError?.message).toMatch(/cluster "no-such-cluster" does not exist/);
    expect(orphansRun).toBe(0);
  });
});
