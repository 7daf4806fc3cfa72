import { reportOnSession } from "./support/session.js";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { type ExecutionContext, Task } from "../runner/index.js";
import { jobInState, quiet, useSandbox } from "./support/harness.js";

let blockerStarted: (info: { taskId: string; lease: number }) => void;
let blockerAborted: (reason: string) => void;
const laterRan: number[] = [];

class Blocker extends Task {
  static identifier = { name: "Blocker", version: "v1.0" };
  async execute(context: ExecutionContext) {
    blockerStarted({ taskId: context.taskId, lease: context.attempt });
    const reason = await new Promise<string>((resolve) =>
      context.signal.addEventListener("abort", () => resolve(String((context.signal.reason as Error)?.message ?? context.signal.reason)), {
        once: true,
      }),
    );
    blockerAborted(reason);
    // Returning normally: the runner reports success, which must be refused.
  }
}

class Later extends Task<{ i: number }> {
  static identifier = { name: "Later", version: "v1.0" };
  execute() {
    laterRan.push(this.input.i);
  }
}

class Plan extends Task {
  static identifier = { name: "Plan", version: "v1.0" };
  execute(context: ExecutionContext) {
    const blocker = context.submitSubtask(new Blocker());
    for (let i = 0; i < 3; i++) context.submitSubtask(new Later({ i }), { dependsOn: [blocker] });
  }
}

let failing = true;

class Switch extends Task {
  static identifier = { name: "Switch", version: "v1.0" };
  execute() {
    if (failing) throw new Error("the switch is off");
  }
}

async function refusedWith(call: Promise<unknown>, code: Code, message: RegExp) {
  const err = await call.then(() => undefined, ConnectError.from);
  expect(err).toBeInstanceOf(ConnectError);
  expect(Code[err!.code]).toBe(Code[code]);
  expect(err!.rawMessage).toMatch(message);
}

describe("cancel and retry", () => {
  const box = useSandbox();

  it("cancelling a running job cancels its queued tasks, tells the runner and refuses later completions", async () => {
    const started = new Promise<{ taskId: string; lease: number }>((r) => (blockerStarted = r));
    const aborted = new Promise<string>((r) => (blockerAborted = r));
    laterRan.length = 0;
    const job = await box.client.jobs().submit("to cancel", new Plan());
    const runner = box.client.runner("default", { tasks: [Plan, Blocker, Later], concurrency: 2, logger: quiet });
    const running = runner.runForever();

    const blocker = await started;
    expect((await box.client.jobs().get(job.id)).state).toBe("started");
    const cancelled = await box.client.jobs().cancel(job.id);
    expect(cancelled.state).toBe("cancelled");

    // The runner was told: the running task's signal was aborted.
    expect(await aborted).toMatch(new RegExp(`job ${job.id} was cancelled`));
    await runner.stop();
    await running;

    const after = await box.client.jobs().get(job.id);
    expect(after.state).toBe("cancelled");
    expect(after.tasks.map((t) => `${t.identifier.name}:${t.state}`).sort()).toEqual([
      "Blocker:cancelled",
      "Later:cancelled",
      "Later:cancelled",
      "Later:cancelled",
      "Plan:computed",
    ]);
    expect(laterRan).toEqual([]);

    // A completion that arrives now is refused and changes nothing.
    const res = await reportOnSession(box.api.runner, { results: [{ task: blocker, jobId: job.id, outcome: { case: "computed", value: { subtasks: [] } } }] }, runner.id);
    expect(res.refused).toHaveLength(1);
    expect(res.refused[0]).toMatchObject({ taskId: blocker.taskId, code: "failed_precondition" });
    expect(res.refused[0].message).toMatch(new RegExp(`its job ${job.id} was cancelled`));
    expect((await box.client.jobs().get(job.id)).tasks.find((t) => t.id === blocker.taskId)!.state).toBe("cancelled");

    await refusedWith(box.client.jobs().cancel(job.id), Code.FailedPrecondition, /already cancelled; only scheduled, queued or started jobs can be cancelled/);
  });

  it("retrying a failed job queues its failed tasks again and it completes", async () => {
    failing = true;
    const job = await box.client.jobs().submit("to retry", new Switch());
    await refusedWith(box.client.jobs().retry(job.id), Code.FailedPrecondition, /is queued; only failed or cancelled jobs can be retried/);
    await box.client.runner("default", { tasks: [Switch], logger: quiet }).runAll();
    expect((await box.client.jobs().get(job.id)).state).toBe("failed");

    failing = false;
    const retried = await box.client.jobs().retry(job.id);
    expect(retried.state).toBe("started");
    expect(retried.finishedAt).toBeUndefined();
    await box.client.runner("default", { tasks: [Switch], logger: quiet }).runAll();
    const done = await jobInState(box.client, job.id, ["completed"]);
    expect(done.taskCounts).toMatchObject({ computed: 1, failed: 0 });
    await refusedWith(box.client.jobs().retry(job.id), Code.FailedPrecondition, /is completed/);
  });

  it("retrying a cancelled job runs what was cancelled", async () => {
    laterRan.length = 0;
    class Quick extends Task<{ i: number }> {
      static identifier = { name: "Later", version: "v1.0" };
      execute() {
        laterRan.push(this.input.i);
      }
    }
    const job = await box.client.jobs().submit("cancel before start", new Quick({ i: 7 }));
    await box.client.jobs().cancel(job.id);
    await box.client.runner("default", { tasks: [Quick], logger: quiet }).runAll();
    expect(laterRan).toEqual([]);
    expect((await box.client.jobs().retry(job.id)).state).toBe("queued");
    await box.client.runner("default", { tasks: [Quick], logger: quiet }).runAll();
    expect(laterRan).toEqual([7]);
    expect((await box.client.jobs().get(job.id)).state).toBe("completed");
  });
});
