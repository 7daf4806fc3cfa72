import { createClient } from "@connectrpc/connect";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JobService } from "../gen/sluice/v1/job_service_pb.js";
import { Client, type ExecutionContext, Task } from "../runner/index.js";
import { type Child, createDatabase, eventually, quiet, serverProcess } from "./support/harness.js";

/** Executions per task id, across every runner. */
const executions = new Map<string, number>();

class Count extends Task<{ i: number }> {
  static identifier = { name: "Count", version: "v1.0" };
  execute(context: ExecutionContext) {
    executions.set(context.taskId, (executions.get(context.taskId) ?? 0) + 1);
  }
}

class Spread extends Task<{ n: number }> {
  static identifier = { name: "Spread", version: "v1.0" };
  execute(context: ExecutionContext) {
    executions.set(context.taskId, (executions.get(context.taskId) ?? 0) + 1);
    for (let i = 0; i < this.input.n; i++) context.submitSubtask(new Count({ i }));
  }
}

describe("two server processes and four runners on one database", () => {
  let db: Awaited<ReturnType<typeof createDatabase>>;
  const servers: (Child & { url: string })[] = [];
  beforeAll(async () => {
    db = await createDatabase();
    // One at a time: the first applies the migrations.
    servers.push(await serverProcess({ DATABASE_URL: db.url }));
    servers.push(await serverProcess({ DATABASE_URL: db.url }));
  });
  afterAll(async () => {
    for (const s of servers) if (s.process.exitCode === null) s.process.kill("SIGKILL");
    await db?.drop();
  });

  it("wake a waiting runner on one server for a job submitted through the other", async () => {
    const [a, b] = servers.map((s) => new Client({ url: s.url }));
    const runner = b.runner("default", { tasks: [Count], logger: quiet });
    const running = runner.runForever();
    try {
      // The runner's stream on server B is idle before the submit; nothing
      // polls, so only server A's NOTIFY after its commit can wake it.
      await eventually(async () => (await b.clusters().list()).length > 0 && runner.inFlight === 0, 5_000, "the runner to connect");
      const job = await a.jobs().submit("across servers", new Count({ i: -1 }));
      await eventually(async () => (await a.jobs().get(job.id)).state === "completed", 15_000, "the job to run on server B's runner");
    } finally {
      await runner.stop();
      await running;
      a.close();
      b.close();
    }
    executions.clear();
  });

  it("execute every one of 10,000 tasks exactly once", async () => {
    const clients = servers.map((s) => new Client({ url: s.url }));
    const runners = clients.flatMap((c) => [0, 1].map(() => c.runner("default", { tasks: [Count, Spread], concurrency: 16, logger: quiet })));
    const running = runners.map((r) => r.runForever());

    // Five jobs of 1,000 tasks submitted at once, and five whose root task submits 999 subtasks;
    // half through each server.
    const encoder = new TextEncoder();
    const jobIds: string[] = [];
    for (let j = 0; j < 10; j++) {
      const client = clients[j % 2];
      if (j < 5) {
        const api = createClient(JobService, client.transport);
        const tasks = Array.from({ length: 1000 }, (_, i) => ({
          identifier: { name: "Count", version: "v1.0" },
          input: encoder.encode(JSON.stringify({ i })),
        }));
        jobIds.push((await api.submitJob({ name: `batch ${j}`, tasks })).job!.id);
      } else {
        jobIds.push((await client.jobs().submit(`spread ${j}`, new Spread({ n: 999 }))).id);
      }
    }

    await eventually(
      async () => {
        const done = await clients[0].jobs().list({ states: ["completed"] });
        return done.filter((j) => jobIds.includes(j.id)).length === 10;
      },
      120_000,
      "all ten jobs to complete",
    );
    await Promise.all(runners.map((r) => r.stop()));
    await Promise.all(running);

    expect(executions.size).toBe(10_000);
    const twice = [...executions].filter(([, n]) => n !== 1);
    expect(twice).toEqual([]);

    const sql = postgres(db.url, { max: 1 });
    try {
      const [row] = await sql<{ computed: number; first_lease: number; jobs: number }[]>`
        SELECT (SELECT count(*) FROM tasks WHERE state = 'computed' AND job_id = ANY(${jobIds}::bigint[]))::int AS computed,
               (SELECT count(*) FROM tasks WHERE lease = 1 AND job_id = ANY(${jobIds}::bigint[]))::int AS first_lease,
               (SELECT count(*) FROM jobs WHERE state = 'completed' AND id = ANY(${jobIds}::bigint[]))::int AS jobs`;
      expect(row).toEqual({ computed: 10_000, first_lease: 10_000, jobs: 10 });
    } finally {
      await sql.end();
    }
    for (const c of clients) c.close();

    // Both servers shut down cleanly on SIGTERM.
    for (const s of servers) s.process.kill("SIGTERM");
    expect(await Promise.all(servers.map((s) => s.exited))).toEqual([0, 0]);
  });
});
