import parse, { type Family } from "parse-prometheus-text-format";
import { describe, expect, it } from "vitest";
import { Client, type ExecutionContext, Task } from "../runner/index.js";
import { eventually, jobInState, quiet, useSandbox } from "./support/harness.js";
import { openSession } from "./support/session.js";

class Work extends Task<{ fail?: boolean }> {
  static identifier = { name: "Work", version: "v1.0" };
  execute(context: ExecutionContext) {
    context.logger.info("working");
    if (this.input.fail) throw new Error("asked to fail");
  }
}

async function scrape(url: string, token?: string): Promise<Family[]> {
  const res = await fetch(`${url}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  return parse(await res.text());
}

/** The value of a counter or gauge sample whose labels include `labels` (0 when absent). */
function value(families: Family[], name: string, labels: Record<string, string> = {}): number {
  const family = families.find((f) => f.name === name);
  if (!family) throw new Error(`no metric ${name} in ${families.map((f) => f.name).join(", ")}`);
  const sample = family.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return sample ? Number(sample.value ?? sample.count) : 0;
}

describe("/metrics", () => {
  const box = useSandbox({ leaseTtlMs: 300 });

  it("shows the queue, then counters moving as jobs run, in Prometheus's text format", async () => {
    const before = await scrape(box.url);
    for (const name of ["sluice_tasks_leased_total", "sluice_task_results_total", "sluice_tasks_retried_total", "sluice_lease_expiries_total"]) {
      expect(before.find((f) => f.name === name)?.type).toBe("COUNTER");
    }
    expect(before.find((f) => f.name === "sluice_task_execution_seconds")?.type).toBe("HISTOGRAM");
    expect(before.find((f) => f.name === "sluice_task_wait_seconds")?.type).toBe("HISTOGRAM");
    expect(value(before, "sluice_db_pool_size")).toBe(10);
    expect(value(before, "sluice_db_connections", { state: "active" })).toBeGreaterThan(0);

    // Queued work and no runner: depth and age of the oldest ready task.
    const jobs = [];
    for (let i = 0; i < 5; i++) jobs.push(await box.client.jobs().submit(`ok ${i}`, new Work({})));
    const failing = await box.client.jobs().submit("failing", new Work({ fail: true }), { maxRetries: 2 });
    const queued = await eventually(async () => {
      const m = await scrape(box.url);
      return value(m, "sluice_queue_oldest_ready_seconds", { cluster: "default" }) > 0 ? m : undefined;
    });
    expect(value(queued, "sluice_queue_ready_tasks", { cluster: "default" })).toBe(6);
    expect(value(queued, "sluice_runners_connected", { cluster: "default" })).toBe(0);

    const runner = box.client.runner("default", { tasks: [Work], logger: quiet, echoTaskLogs: false });
    const running = runner.runForever();
    try {
      for (const j of jobs) await jobInState(box.client, j.id, ["completed"]);
      await jobInState(box.client, failing.id, ["failed"]);
      const after = await eventually(async () => {
        const m = await scrape(box.url);
        return value(m, "sluice_runners_connected", { cluster: "default" }) === 1 ? m : undefined;
      });
      const d = (name: string, labels?: Record<string, string>) => value(after, name, labels) - value(before, name, labels);
      // 5 successes, and 3 attempts of the failing task (2 retries).
      expect(d("sluice_tasks_leased_total", { cluster: "default" })).toBe(8);
      expect(d("sluice_task_results_total", { cluster: "default", outcome: "computed" })).toBe(5);
      expect(d("sluice_task_results_total", { cluster: "default", outcome: "failed" })).toBe(3);
      expect(d("sluice_tasks_retried_total", { cluster: "default" })).toBe(2);
      expect(d("sluice_jobs_failed_total")).toBe(1);
      expect(d("sluice_task_log_lines_total")).toBe(8);
      expect(value(after, "sluice_queue_ready_tasks", { cluster: "default" })).toBe(0);
      expect(value(after, "sluice_server_runners_connected")).toBe(1);
      const execution = after.find((f) => f.name === "sluice_task_execution_seconds")!.metrics[0];
      expect(Number(execution.buckets?.["+Inf"])).toBe(8);
      expect(Number(execution.buckets?.["600"])).toBe(8);
      const waited = after.find((f) => f.name === "sluice_task_wait_seconds")!.metrics[0];
      // First leases only: the retries are not waits from creation.
      expect(Number(waited.buckets?.["+Inf"])).toBe(6);
    } finally {
      await runner.stop();
      await running;
    }

    // A runner that goes silent holding a task: its lease runs out.
    const job = await box.client.jobs().submit("abandoned", new Work({}));
    const session = openSession(box.api.runner, { cluster: "default", tasks: [{ name: "Work", version: "v1.0" }], concurrency: 1 });
    const assigned = await session.until("assignment");
    expect(assigned.jobIds).toEqual([job.id]);
    session.close();
    await session.ended;
    await eventually(async () => value(await scrape(box.url), "sluice_lease_expiries_total") === 1, 20_000, "a lease expiry counted");
  });
});

describe("/metrics on a server that needs tokens", () => {
  const admin = "an-admin-secret-for-metrics-tests";
  const box = useSandbox({ auth: "required", adminToken: admin });

  it("needs a token with the read scope", async () => {
    const tokens = new Client({ url: box.url, token: admin }).tokens();
    const reader = await tokens.create("prometheus", ["read"]);
    const runner = await tokens.create("a runner", ["runner"]);
    expect((await fetch(`${box.url}/metrics`)).status).toBe(401);
    const denied = await fetch(`${box.url}/metrics`, { headers: { authorization: `Bearer ${runner.secret}` } });
    expect(denied.status).toBe(403);
    expect(await denied.text()).toContain("needs a token with the read scope");
    expect(value(await scrape(box.url, reader.secret), "sluice_db_pool_size")).toBe(10);
  });
});
