import { describe, expect, it } from "vitest";
import { JobState } from "../gen/sluice/v1/job_pb.js";
import { Dispatcher } from "../server/dispatch/dispatcher.js";
import type { RunnerStream } from "../server/dispatch/runner-stream.js";
import { type SubmittedJob, submitJobs } from "../server/store/submit-job.js";
import type { TaskRow } from "../server/task-plan.js";
import { eventually, useSandbox } from "./support/harness.js";
import { openSession } from "./support/session.js";

const encode = (x: unknown) => new TextEncoder().encode(JSON.stringify(x));
const count = (n: number, version = "v1.0") => ({ identifier: { name: "Count", version }, input: encode({ n }) });

/** A runner's session that registered Count v1.0, with no prefetch. */
function openStream(box: ReturnType<typeof useSandbox>, cluster: string, concurrency: number) {
  return openSession(box.api.runner, { cluster, tasks: [{ name: "Count", version: "v1.0" }], concurrency, prefetch: 0 });
}

describe("a job submitted while a runner waits for work", () => {
  const box = useSandbox();

  it("goes straight to the runner, up to its free slots, and says so in the submit's answer", async () => {
    await box.api.clusters.createCluster({ slug: "direct" });
    const stream = openStream(box, "direct", 2);
    await stream.until("idle");

    // Three one-task jobs at once for a runner with two slots: two are handed
    // over as they are inserted, the third is queued.
    const { results } = await box.api.jobs.submitJobs({
      jobs: [1, 2, 3].map((n) => ({ name: `direct ${n}`, cluster: "direct", tasks: [count(n)] })),
    });
    const jobs = results.map((r) => (r.result.case === "job" ? r.result.value : expect.fail(`job refused: ${JSON.stringify(r.result)}`)));
    const started = jobs.filter((j) => j.state === JobState.STARTED);
    const queued = jobs.filter((j) => j.state === JobState.QUEUED);
    expect(started).toHaveLength(2);
    expect(queued).toHaveLength(1);
    for (const j of started) {
      expect(j.taskCounts).toMatchObject({ queued: 0, running: 1 });
      expect(j.startedAt).toEqual(j.createdAt);
    }
    expect(queued[0].taskCounts).toMatchObject({ queued: 1, running: 0 });

    // What the answer said is what the database holds, and what the runner got.
    for (const j of jobs) {
      const stored = await box.api.jobs.getJob({ id: j.id });
      expect(stored.job!.state).toBe(j.state);
      expect(stored.job!.taskCounts).toEqual(j.taskCounts);
    }
    const handed = (await stream.until("assignment"));
    expect([...handed.jobIds].sort()).toEqual(started.map((j) => j.id).sort());
    expect(handed.leases).toEqual([1, 1]);
    expect(handed.failures).toEqual([0, 0]);
    expect(handed.identifiers[handed.identifierIndexes[0]]).toMatchObject({ name: "Count", version: "v1.0" });
    const inputs = handed.inputs.map((b) => JSON.parse(new TextDecoder().decode(b)).n);
    const byJob = new Map(jobs.map((j, i) => [j.id, i + 1]));
    expect(inputs).toEqual(handed.jobIds.map((id) => byJob.get(id)));

    // Their results free the slots, and the queued one is leased as usual.
    const done = await stream.record({ computed: { taskIds: handed.ids, leases: handed.leases, jobIds: handed.jobIds } });
    expect(done.refused).toEqual([]);
    const leased = (await stream.until("assignment"));
    expect(leased.jobIds).toEqual([queued[0].id]);
    await stream.record({ computed: { taskIds: leased.ids, leases: leased.leases, jobIds: leased.jobIds } });
    for (const j of jobs) expect((await box.api.jobs.getJob({ id: j.id })).job!.state).toBe(JobState.COMPLETED);
    stream.close();
  });

  it("stays queued when the waiting runner cannot execute it, or waits on another cluster", async () => {
    await box.api.clusters.createCluster({ slug: "picky" });
    const stream = openStream(box, "picky", 4);
    await stream.until("idle");
    const newer = await box.api.jobs.submitJob({ name: "newer minor", cluster: "picky", tasks: [count(1, "v1.1")] });
    const elsewhere = await box.api.jobs.submitJob({ name: "other cluster", tasks: [count(2)] });
    for (const { job } of [newer, elsewhere]) {
      expect(job!.state).toBe(JobState.QUEUED);
      expect(job!.taskCounts).toMatchObject({ queued: 1, running: 0 });
    }
    // A task it can run still goes straight to it.
    const fits = await box.api.jobs.submitJob({ name: "fits", cluster: "picky", tasks: [count(3)] });
    expect(fits.job!.state).toBe(JobState.STARTED);
    expect((await stream.until("assignment")).jobIds).toEqual([fits.job!.id]);
    stream.close();
  });

  it("is queued again if the runner's stream closed before the insert committed", async () => {
    const { sql } = box;
    const dispatcher = new Dispatcher(sql, (e) => {
      throw e;
    });
    await box.api.clusters.createCluster({ slug: "gone" });
    const [{ id: clusterId }] = await sql<{ id: number }[]>`SELECT id FROM clusters WHERE slug = 'gone'`;
    const stream: RunnerStream = dispatcher.attach({
      runnerId: crypto.randomUUID(),
      clusterId,
      clusterSlug: "gone",
      capabilities: [{ name: "Count", major: 1, minor: 0 }],
      capacity: 4,
      held: new Map(),
      leaseTtlMs: 30_000,
    });
    for await (const e of stream.events) if (e.event.case === "idle") break;
    await eventually(() => stream.canTake("Count", 1, 0), 5_000, "the stream to wait for work");

    const row: TaskRow = {
      ord: 1,
      jobId: null,
      parentId: null,
      clusterId,
      name: "Count",
      major: 1,
      minor: 0,
      display: null,
      input: encode({ n: 1 }),
      maxRetries: 0,
      depsLeft: 0,
      hasDependents: false,
      trigger: null,
    };
    const handOffs = dispatcher.reserveHandOffs([row]);
    expect(row.leaseTo).toBe(stream.runnerId);
    dispatcher.detach(stream);
    const [job] = (await submitJobs(sql, [{ name: "orphan", clusterId, plan: { rows: [row], depFrom: [], depTo: [] } }], 30_000)) as SubmittedJob[];
    dispatcher.handOver(handOffs, new Map([[row, { id: job.handed!, jobId: job.id }]]));

    const task = await eventually(async () => {
      const [t] = await sql<{ state: string; lease: number; ready: boolean }[]>`
        SELECT state, lease, EXISTS (SELECT 1 FROM ready_tasks r WHERE r.id = t.id) AS ready FROM tasks t WHERE job_id = ${job.id}`;
      return t.state === "queued" && t;
    });
    expect(task).toEqual({ state: "queued", lease: 1, ready: true });
    await dispatcher.stop();
  });
});
