import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { Client, Task } from "../runner/index.js";
import { buildServer } from "../server/build-server.js";
import { migrate } from "../server/database/migrate.js";
import { createDatabase, jobInState, quiet } from "./support/harness.js";

const ran: string[] = [];

class Step extends Task<{ name: string }> {
  static identifier = { name: "Step", version: "v1.0" };
  execute() {
    ran.push(this.input.name);
  }
}

describe("upgrading a database", () => {
  it("keeps the work an older server left queued, waiting and leased, and runs all of it", async () => {
    const db = await createDatabase({ empty: true });
    const old = postgres(db.url, { max: 1, onnotice: () => {} });
    let jobId: string;
    try {
      // The schema before ready work had a table of its own (migration 0008).
      await migrate(old, "0008");
      // One job as an older server left it: a queued task, a task waiting on
      // it, and a task leased to a runner that died (its lease ran out).
      const input = (name: string) => Buffer.from(JSON.stringify({ name }));
      const [job] = await old<{ id: string }[]>`
        INSERT INTO jobs (name, cluster_id, open_tasks, state, started_at)
        VALUES ('before the upgrade', 1, 3, 'started', now()) RETURNING id`;
      jobId = job.id;
      const [queued] = await old<{ id: string }[]>`
        INSERT INTO tasks (job_id, cluster_id, name, major, minor, input, has_dependents)
        VALUES (${jobId}, 1, 'Step', 1, 0, ${input("queued")}, true) RETURNING id`;
      const [waiting] = await old<{ id: string }[]>`
        INSERT INTO tasks (job_id, cluster_id, name, major, minor, input, deps_left)
        VALUES (${jobId}, 1, 'Step', 1, 0, ${input("waiting")}, 1) RETURNING id`;
      await old`INSERT INTO task_dependencies (depends_on, task_id) VALUES (${queued.id}, ${waiting.id})`;
      await old`
        INSERT INTO tasks (job_id, cluster_id, name, major, minor, input, state, lease, runner_id, lease_expires_at, started_at)
        VALUES (${jobId}, 1, 'Step', 1, 0, ${input("leased")}, 'running', 1, gen_random_uuid(), now() - interval '1 minute', now())`;
    } finally {
      await old.end();
    }

    // The new server applies the rest of the migrations as it starts.
    const server = await buildServer({
      host: "127.0.0.1",
      port: 0,
      databaseUrl: db.url,
      leaseExpiry: { maxIntervalMs: 250, minIntervalMs: 50, batchSize: 100 },
    });
    const client = new Client({ url: server.url });
    try {
      const runner = client.runner("default", { tasks: [Step], logger: quiet });
      const running = runner.runForever();
      await jobInState(client, jobId, ["completed", "failed"]);
      const job = await client.jobs().get(jobId);
      await runner.stop();
      await running;
      expect(job.state).toBe("completed");
      expect([...ran].sort()).toEqual(["leased", "queued", "waiting"]);
      expect(ran.indexOf("queued")).toBeLessThan(ran.indexOf("waiting"));
      // The expired lease counts as a lost attempt, not a failure.
      expect(job.tasks.map((t) => t.failures)).toEqual([0, 0, 0]);
    } finally {
      client.close();
      await server.stop();
      await db.drop();
    }
  });
});
