import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ClusterService } from "../gen/sluice/v1/cluster_service_pb.js";
import { type ExecutionContext, Task } from "../runner/index.js";
import { jobInState, quiet, useSandbox } from "./support/harness.js";

let release: () => void = () => {};
let started: () => void = () => {};

/** Runs until the test releases it. */
class Hold extends Task {
  static identifier = { name: "Hold", version: "v1.0" };
  async execute(_context: ExecutionContext) {
    started();
    await new Promise<void>((r) => (release = r));
  }
}

class Quick extends Task<{ n: number }> {
  static identifier = { name: "Quick", version: "v1.0" };
  execute() {}
}

async function refused(call: Promise<unknown>): Promise<ConnectError> {
  const err = await call.then(() => undefined, ConnectError.from);
  expect(err).toBeInstanceOf(ConnectError);
  return err!;
}

describe("the numbers the console shows", () => {
  const box = useSandbox();

  it("counts jobs per state for a cluster, a name and a time range", async () => {
    await box.client.clusters().create("counted", "Counted");
    const jobs = box.client.jobs();
    const a = await jobs.submit("nightly a", new Quick({ n: 1 }), { cluster: "counted" });
    await jobs.submit("nightly b", new Quick({ n: 2 }), { cluster: "counted" });
    await jobs.submit("hourly", new Quick({ n: 3 }), { cluster: "counted" });
    await jobs.cancel(a.id);

    const all = await box.api.jobs.countJobs({ cluster: "counted" });
    expect(all).toMatchObject({ scheduled: 0, queued: 2, started: 0, completed: 0, failed: 0, cancelled: 1 });
    expect(await box.api.jobs.countJobs({ cluster: "counted", name: "NIGHTLY" })).toMatchObject({ queued: 1, cancelled: 1 });
    const later = timestampFromDate(new Date(Date.now() + 60_000));
    expect(await box.api.jobs.countJobs({ cluster: "counted", createdAfter: later })).toMatchObject({ queued: 0, cancelled: 0 });

    const missing = await refused(box.api.jobs.countJobs({ cluster: "nowhere" }));
    expect(missing.code).toBe(Code.NotFound);
    expect((await refused(box.api.jobs.countJobs({ name: "a\0b" }))).code).toBe(Code.InvalidArgument);
  });

  it("reports ready and running tasks per cluster, and the jobs finished per minute", async () => {
    const stats = createClient(ClusterService, box.client.transport);
    await box.client.clusters().create("busy", "Busy");
    const holding = new Promise<void>((r) => (started = r));
    const held = await box.client.jobs().submit("held", new Hold(), { cluster: "busy" });
    for (let n = 0; n < 2; n++) await box.client.jobs().submit(`waits ${n}`, new Quick({ n }), { cluster: "busy" });
    const runner = box.client.runner("busy", { tasks: [Hold], concurrency: 1, logger: quiet });
    const running = runner.runForever();
    await holding;

    const during = (await stats.getQueueStats({})).queues.find((q) => q.cluster === "busy")!;
    expect(during).toMatchObject({ ready: 2, running: 1, completedLastHour: 0, failedLastHour: 0 });
    expect(during.throughput).toHaveLength(15);
    expect((await box.api.jobs.countJobs({ cluster: "busy" })).started).toBe(1);

    release();
    await jobInState(box.client, held.id, ["completed"]);
    await runner.stop();
    await running;
    const after = (await stats.getQueueStats({ minutes: 5 })).queues.find((q) => q.cluster === "busy")!;
    expect(after).toMatchObject({ ready: 2, running: 0, completedLastHour: 1 });
    expect(after.throughput).toHaveLength(5);
    expect(after.throughput.reduce((n, b) => n + b.completed, 0)).toBe(1);

    const err = await refused(stats.getQueueStats({ minutes: 61 }));
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toMatch(/ask for 1 to 60 minutes/);
  });
});
