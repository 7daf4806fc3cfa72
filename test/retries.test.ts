import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { type ExecutionContext, Task } from "../runner/index.js";
import { jobInState, quiet, useSandbox } from "./support/harness.js";

/** Attempts of each task: when each started and when it threw. */
const attempts = new Map<string, { started: number; threw: number }[]>();

class Flaky extends Task {
  static identifier = { name: "Flaky", version: "v1.0" };
  execute(context: ExecutionContext) {
    const list = attempts.get(context.taskId) ?? [];
    attempts.set(context.taskId, list);
    list.push({ started: Date.now(), threw: Date.now() });
    throw new Error(`attempt ${context.attempt} fails`);
  }
}

const aborts: string[] = [];

/** Runs until its signal aborts on the first attempt; the second finishes at once. */
class Slow extends Task {
  static identifier = { name: "Slow", version: "v1.0" };
  async execute(context: ExecutionContext) {
    if (context.attempt > 1) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 60_000);
      context.signal.addEventListener("abort", () => {
        aborts.push(String((context.signal.reason as Error).message));
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

describe("retry backoff and time limits", () => {
  const box = useSandbox();

  it("waits between attempts, each delay within its bounds, growing to the maximum", async () => {
    const runner = box.client.runner("default", { tasks: [Flaky], logger: quiet });
    const running = runner.runForever();
    try {
      const job = await box.client.jobs().submit("flaky", new Flaky(), {
        maxRetries: 3,
        retryBackoff: { initialDelayMs: 300, factor: 2, maxDelayMs: 500 },
      });
      await jobInState(box.client, job.id, ["failed"]);
      const [task] = (await box.client.jobs().get(job.id)).tasks;
      expect(task.failures).toBe(4);
      const times = attempts.get(task.id)!;
      expect(times).toHaveLength(4);
      // Retry n waits min(500, 300 * 2^(n-1)) with jitter: half of it to all of it.
      const delays = [300, 500, 500];
      for (let n = 1; n < times.length; n++) {
        const waited = times[n].started - times[n - 1].threw;
        const d = delays[n - 1];
        expect(waited, `wait before retry ${n}`).toBeGreaterThanOrEqual(d / 2 - 5);
        // Generous above: the machine may be busy, but not by a whole backoff.
        expect(waited, `wait before retry ${n}`).toBeLessThan(d + 1_500);
      }
    } finally {
      await runner.stop();
      await running;
    }
  });

  it("aborts an attempt at its time limit, fails it with a timeout error and retries it", async () => {
    const runner = box.client.runner("default", { tasks: [Slow], logger: quiet });
    const running = runner.runForever();
    try {
      const job = await box.client.jobs().submit("slow", new Slow(), { maxRetries: 1, timeoutMs: 200 });
      await jobInState(box.client, job.id, ["completed"]);
      const [task] = (await box.client.jobs().get(job.id)).tasks;
      expect(task.attempts).toBe(2);
      expect(task.failures).toBe(1);
      expect(task.lastError?.message).toBe("the task ran longer than its time limit of 200 ms");
      expect(task.lastError?.attempt).toBe(1);
      expect(aborts).toEqual(["the task ran longer than its time limit of 200 ms"]);

      // Without retries left, the timeout fails the job.
      const once = await box.client.jobs().submit("slow once", new Slow(), { timeoutMs: 100 });
      await jobInState(box.client, once.id, ["failed"]);
    } finally {
      await runner.stop();
      await running;
    }
  });

  it("refuses backoff and time limits out of range, saying what to use", async () => {
    const submit = (fields: object) =>
      box.api.jobs
        .submitJob({ name: "bad", tasks: [{ identifier: { name: "Flaky", version: "v1.0" }, input: new TextEncoder().encode("{}"), ...fields }] })
        .then(
          () => undefined,
          (e) => ConnectError.from(e),
        );
    const ms = (n: number) => ({ seconds: BigInt(Math.floor(n / 1000)), nanos: (n % 1000) * 1e6 });
    const factor = await submit({ retryBackoff: { initialDelay: ms(100), factor: 11 } });
    expect(factor?.code).toBe(Code.InvalidArgument);
    expect(factor?.rawMessage).toMatch(/retry_backoff\.factor is 11; use 1 to 10/);
    const noDelay = await submit({ retryBackoff: { factor: 2 } });
    expect(noDelay?.rawMessage).toMatch(/retry_backoff\.initial_delay is missing/);
    const small = await submit({ retryBackoff: { initialDelay: ms(1000), maxDelay: ms(10) } });
    expect(small?.rawMessage).toMatch(/retry_backoff\.max_delay is 10 ms; use 1000 ms to 1 day/);
    const timeout = await submit({ timeout: ms(0) });
    expect(timeout?.rawMessage).toMatch(/timeout is 0 ms; use 1 ms to 7 days/);
  });
});
