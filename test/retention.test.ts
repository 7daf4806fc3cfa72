import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { Task } from "../runner/index.js";
import { eventually, quiet, useSandbox } from "./support/harness.js";

class Quick extends Task {
  static identifier = { name: "Quick", version: "v1.0" };
  execute() {}
}

class Waiting extends Task {
  static identifier = { name: "Waiting", version: "v1.0" };
  execute() {}
}

describe("job retention", () => {
  const box = useSandbox({ jobRetention: { retentionMs: 1_000, intervalMs: 200, batchSize: 2 } });

  it("deletes finished jobs with their tasks once they are older than the retention, and keeps unfinished ones", async () => {
    const jobs = box.client.jobs();
    const done = await Promise.all([1, 2, 3].map((i) => jobs.submit(`done ${i}`, new Quick())));
    const waiting = await jobs.submit("waiting", new Waiting());
    await box.client.runner("default", { tasks: [Quick], logger: quiet }).runAll();
    expect((await jobs.get(done[0].id)).state).toBe("completed");

    await eventually(async () => {
      const err = await jobs.get(done[2].id).then(() => undefined, ConnectError.from);
      return err?.code === Code.NotFound;
    }, 20_000, "the finished jobs to be deleted");
    for (const j of done) await expect(jobs.get(j.id)).rejects.toThrow(/does not exist/);
    const [{ n }] = await box.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM tasks WHERE job_id = ANY(${done.map((j) => j.id)}::bigint[])`;
    expect(n).toBe(0);
    expect((await jobs.get(waiting.id)).state).toBe("queued");
  });
});
