import { reportOnSession } from "./support/session.js";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type ExecutionContext, Task } from "../runner/index.js";
import { FIXTURES, eventually, jobInState, quiet, spawnNode, useSandbox } from "./support/harness.js";

const ran: string[] = [];

/** Same identifier as the task of the fixture runner, but finishes. */
class Slow extends Task<{ tag: string; ms?: number }> {
  static identifier = { name: "Slow", version: "v1.0" };
  async execute(context: ExecutionContext) {
    await new Promise((r) => setTimeout(r, this.input.ms ?? 0));
    ran.push(`${this.input.tag} lease ${context.attempt}`);
  }
}

describe("leases", () => {
  // Short leases, found quickly once they run out.
  const box = useSandbox({ leaseTtlMs: 1_000, leaseExpiry: { maxIntervalMs: 250, minIntervalMs: 50, batchSize: 1_000 } });

  /**
   * Runs a runner until the job completes. (runAll would return at once: the
   * task is not ready, it is held by a dead runner until its lease runs out.)
   */
  async function rescue(jobId: string, whileRunning?: () => Promise<void>) {
    const rescuer = box.client.runner("default", { tasks: [Slow], logger: quiet });
    const rescuing = rescuer.runForever();
    await whileRunning?.();
    await jobInState(box.client, jobId, ["completed"]);
    await rescuer.stop();
    await rescuing;
  }

  it("of a runner killed mid-task run out; another runner completes the task; the old holder is fenced out", async () => {
    ran.length = 0;
    const job = await box.client.jobs().submit("survives a crash", new Slow({ tag: "crash" }));
    const doomed = spawnNode([join(FIXTURES, "hang-runner.ts")], { SLUICE_URL: box.url });
    const [, taskId, lease] = await doomed.waitFor(/started task (\d+) lease (\d+)/);
    expect(lease).toBe("1");
    doomed.process.kill("SIGKILL");
    expect(await doomed.exited).toBe("SIGKILL");

    await rescue(job.id);
    expect(ran).toEqual(["crash lease 2"]);
    const done = await box.client.jobs().get(job.id);
    expect(done.tasks[0]).toMatchObject({ id: taskId, attempts: 2, failures: 0 });

    // The killed runner's result, had it sent one, is refused: lease 1 is gone.
    const res = await reportOnSession(box.api.runner, { results: [{ task: { taskId, lease: 1 }, jobId: job.id, outcome: { case: "failed", value: { message: "late", stack: "" } } }] }, crypto.randomUUID());
    expect(res.refused).toHaveLength(1);
    expect(res.refused[0]).toMatchObject({ taskId, code: "failed_precondition" });
    expect(res.refused[0].message).toMatch(/lease 1 expired and the task was leased again \(lease 2\)/);
    expect((await box.client.jobs().get(job.id)).tasks[0]).toMatchObject({ state: "computed", failures: 0 });
  });

  it("of a runner that extended them for a while, then was killed, run out too", async () => {
    ran.length = 0;
    const job = await box.client.jobs().submit("extended, then orphaned", new Slow({ tag: "orphan", ms: 1_000 }));
    const doomed = spawnNode([join(FIXTURES, "hang-runner.ts")], { SLUICE_URL: box.url });
    const [, taskId] = await doomed.waitFor(/started task (\d+) lease (\d+)/);
    // Past two lease periods: the lease row came due and was kept, moved to the extended end.
    await new Promise((r) => setTimeout(r, 2_500));
    expect((await box.client.jobs().get(job.id)).tasks[0]).toMatchObject({ id: taskId, state: "running", attempts: 1 });
    doomed.process.kill("SIGKILL");
    await doomed.exited;

    await rescue(job.id, async () => {
      // While the rescuer runs it under lease 2, a success reported under
      // lease 1 is refused and changes nothing.
      await eventually(async () => (await box.client.jobs().get(job.id)).tasks[0].attempts === 2, 10_000, "lease 2");
      const res = await reportOnSession(box.api.runner, { results: [{ task: { taskId, lease: 1 }, jobId: job.id, outcome: { case: "computed", value: { subtasks: [] } } }] }, crypto.randomUUID());
      expect(res.refused.map((r) => r.message)).toEqual([expect.stringMatching(/lease 1 expired and the task was leased again \(lease 2\)/)]);
      expect((await box.client.jobs().get(job.id)).tasks[0].state).toBe("running");
    });
    expect(ran).toEqual(["orphan lease 2"]);
  });

  it("are extended while a task runs longer than the lease", async () => {
    ran.length = 0;
    const job = await box.client.jobs().submit("long task", new Slow({ tag: "long", ms: 3_000 }));
    await box.client.runner("default", { tasks: [Slow], logger: quiet }).runAll();
    expect(ran).toEqual(["long lease 1"]);
    expect((await box.client.jobs().get(job.id)).tasks[0]).toMatchObject({ state: "computed", attempts: 1 });
  });

  it("start their job: it shows as started, from its task's start, and is listed as started", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let began!: () => void;
    const begun = new Promise<void>((r) => (began = r));
    class Held extends Task {
      static identifier = { name: "Held", version: "v1.0" };
      async execute() {
        began();
        await gate;
      }
    }
    const jobs = box.client.jobs();
    const job = await jobs.submit("held", new Held({}));
    const waiting = await jobs.submit("waiting", new (class extends Task {
      static identifier = { name: "NobodyRunsThis", version: "v1.0" };
      execute() {}
    })({}));
    expect((await jobs.get(job.id)).state).toBe("queued");
    const runner = box.client.runner("default", { tasks: [Held], logger: quiet });
    const running = runner.runForever();
    await begun;
    const shown = await jobs.get(job.id);
    expect(shown.state).toBe("started");
    expect(shown.startedAt).toEqual(shown.tasks[0].startedAt);
    const ids = async (state: "queued" | "started") => (await jobs.list({ states: [state] })).map((j) => j.id);
    expect(await ids("started")).toContain(job.id);
    expect(await ids("queued")).not.toContain(job.id);
    expect(await ids("queued")).toContain(waiting.id);
    release();
    await runner.stop();
    await running;
    const done = await jobs.get(job.id);
    expect(done.state).toBe("completed");
    expect(done.startedAt).toEqual(shown.startedAt);
    await jobs.cancel(waiting.id);
  });

  it("are handed back at once when a runner stops before starting its prefetched tasks", async () => {
    ran.length = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let began!: () => void;
    const begun = new Promise<void>((r) => (began = r));
    class Gated extends Task<{ tag: string }> {
      static identifier = { name: "Gated", version: "v1.0" };
      async execute() {
        began();
        await gate;
        ran.push(this.input.tag);
      }
    }
    const jobs = [];
    for (const tag of ["first", "second", "third"]) jobs.push(await box.client.jobs().submit(tag, new Gated({ tag })));
    const runner = box.client.runner("default", { tasks: [Gated], concurrency: 1, prefetch: 2, logger: quiet });
    const running = runner.runForever();
    // The runner holds all three: one running (it has begun), two prefetched.
    await begun;
    const held = async () => (await box.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM tasks WHERE state = 'running'`)[0].n;
    while ((await held()) < 3) await new Promise((r) => setTimeout(r, 20));
    const stopped = runner.stop();
    release();
    await stopped;
    await running;
    expect(ran).toEqual(["first"]);
    // The two it never started are queued again, without a failure, long before their leases would run out.
    const states = await Promise.all(jobs.map(async (j) => (await box.client.jobs().get(j.id)).tasks[0]));
    expect(states.map((t) => t.state)).toEqual(["computed", "queued", "queued"]);
    expect(states.map((t) => t.failures)).toEqual([0, 0, 0]);

    await box.client.runner("default", { tasks: [Gated], concurrency: 2, logger: quiet }).runAll();
    expect(ran.sort()).toEqual(["first", "second", "third"]);
  });
});
