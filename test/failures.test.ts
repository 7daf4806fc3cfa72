import { describe, expect, it } from "vitest";
import { type ExecutionContext, Task } from "../runner/index.js";
import { quiet, sluice, useSandbox } from "./support/harness.js";

let flakyCalls = 0;

class Flaky extends Task<{ failTimes: number }> {
  static identifier = { name: "Flaky", version: "v1.0" };
  execute() {
    flakyCalls++;
    if (flakyCalls <= this.input.failTimes) throw new Error(`flaky failure ${flakyCalls}`);
  }
}

let attempts = 0;
const started: string[] = [];

class AlwaysFails extends Task {
  static identifier = { name: "AlwaysFails", version: "v1.0" };
  execute() {
    attempts++;
    failHere(attempts);
  }
}

function failHere(n: number): never {
  throw new Error(`disk full (attempt ${n})`);
}

class Recorder extends Task<{ tag: string }> {
  static identifier = { name: "Recorder", version: "v1.0" };
  execute() {
    started.push(this.input.tag);
  }
}

class Pipeline extends Task {
  static identifier = { name: "Pipeline", version: "v1.0" };
  execute(context: ExecutionContext) {
    const failing = context.submitSubtask(new AlwaysFails(), { maxRetries: 2 });
    context.submitSubtask(new Recorder({ tag: "after the failing task" }), { dependsOn: [failing] });
  }
}

describe("a throwing task", () => {
  const box = useSandbox();
  const runAll = () => box.client.runner("default", { tasks: [Flaky, AlwaysFails, Recorder, Pipeline], concurrency: 2, logger: quiet }).runAll();

  it("is retried ahead of tasks submitted after it", async () => {
    flakyCalls = 0;
    started.length = 0;
    const first = await box.client.jobs().submit("flaky first", new Flaky({ failTimes: 1 }), { maxRetries: 1 });
    const later = [];
    for (let i = 1; i <= 8; i++) later.push(await box.client.jobs().submit(`later ${i}`, new Recorder({ tag: `later ${i}` })));
    // One task at a time, none held ahead: each lease takes the oldest ready task.
    const order: string[] = [];
    class Tracking extends Flaky {
      execute() {
        order.push(`flaky ${flakyCalls + 1}`);
        super.execute();
      }
    }
    class TrackingRecorder extends Recorder {
      execute() {
        order.push(this.input.tag);
        super.execute();
      }
    }
    await box.client.runner("default", { tasks: [Tracking, TrackingRecorder], concurrency: 1, prefetch: 0, logger: quiet }).runAll();
    expect((await box.client.jobs().get(first.id)).state).toBe("completed");
    for (const j of later) expect((await box.client.jobs().get(j.id)).state).toBe("completed");
    // The retry is ready again once its failure is recorded, while the next
    // lease may already be under way: it runs within the next two leases, not
    // after every task queued behind it.
    expect(order[0]).toBe("flaky 1");
    expect(order.indexOf("flaky 2")).toBeGreaterThan(0);
    expect(order.indexOf("flaky 2")).toBeLessThanOrEqual(3);
  });

  it("is retried and its job completes when a retry succeeds", async () => {
    flakyCalls = 0;
    const job = await box.client.jobs().submit("flaky", new Flaky({ failTimes: 2 }), { maxRetries: 2 });
    await runAll();
    const done = await box.client.jobs().get(job.id);
    expect(done.state).toBe("completed");
    expect(flakyCalls).toBe(3);
    expect(done.tasks[0]).toMatchObject({ state: "computed", failures: 2, attempts: 3 });
    // The last error is kept even though the task finally succeeded.
    expect(done.tasks[0].lastError?.message).toBe("flaky failure 2");
  });

  it("fails its job after its last retry, cancels the remaining tasks and keeps the error and stack", async () => {
    attempts = 0;
    started.length = 0;
    const job = await box.client.jobs().submit("pipeline", new Pipeline());
    await runAll();

    expect(attempts).toBe(3);
    expect(started).toEqual([]);
    const failed = await box.client.jobs().get(job.id);
    expect(failed.state).toBe("failed");
    expect(failed.finishedAt).toBeInstanceOf(Date);
    const byName = new Map(failed.tasks.map((t) => [t.identifier.name, t]));
    expect(byName.get("Pipeline")!.state).toBe("computed");
    expect(byName.get("Recorder")!.state).toBe("cancelled");
    const failing = byName.get("AlwaysFails")!;
    expect(failing).toMatchObject({ state: "failed", failures: 3, maxRetries: 2 });
    expect(failing.lastError).toMatchObject({ message: "disk full (attempt 3)", attempt: 3 });
    expect(failing.lastError!.stack).toMatch(/at failHere \(.*failures\.test\.ts/);

    // `sluice jobs show` prints them.
    const shown = await sluice(["jobs", "show", job.id, "--url", box.url]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain("state      failed");
    expect(shown.stdout).toMatch(/AlwaysFails v1\.0 .*failures 3, max retries 2/);
    expect(shown.stdout).toContain("error (attempt 3): disk full (attempt 3)");
    expect(shown.stdout).toMatch(/at failHere \(.*failures\.test\.ts/);

    const list = await sluice(["jobs", "list", "--state", "failed", "--json"], { SLUICE_URL: box.url });
    expect(list.code).toBe(0);
    expect((JSON.parse(list.stdout) as { id: string }[]).map((j) => j.id)).toEqual([job.id]);
  });
});
