import { randomUUID } from "node:crypto";
import type { Sql } from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { recordResults } from "../server/store/complete-tasks.js";
import { leaseTasks } from "../server/store/lease-tasks.js";
import { expireLeases, extendLeases } from "../server/store/leases.js";
import { submitJobs } from "../server/store/submit-job.js";
import postgres from "postgres";
import { LEASE_SETTINGS } from "../server/build-server.js";
import { noopRows, storeDatabase } from "./support/harness.js";

/**
 * The server's statements against a table whose statistics were taken while
 * every task was queued (an ANALYZE of a full queue, as autovacuum does), on a
 * connection set up as the server's. The work of a statement must follow the
 * rows it names, not the size of the table.
 */
describe("statements on a large queue", () => {
  const TASKS = 20_000;
  const REPORTED = 1_000;
  let store: Awaited<ReturnType<typeof storeDatabase>>;
  let sql: Sql;

  beforeAll(async () => {
    store = await storeDatabase();
    sql = store.sql;
    await submitJobs(sql, [{ name: "large queue", clusterId: 1, plan: { rows: noopRows(TASKS), depFrom: [], depTo: [] } }], 30_000);
    await sql`ANALYZE`;
  });

  afterAll(async () => {
    await store?.close();
  });

  /** The runner the tasks are leased to. */
  const runner = randomUUID();

  /** Leases `REPORTED` tasks, in batches of 500 as a work stream does. */
  async function leaseSome() {
    const noop = [{ name: "Noop", major: 1, minor: 0 }];
    const leased: { id: string; lease: number; job_id: string }[] = [];
    let after = "0";
    for (let i = 0; i < 2; i++) {
      const batch = await leaseTasks(sql, 1, noop, 500, runner, 30_000, after);
      batch.ids.forEach((id, j) => leased.push({ id, lease: batch.leases[j], job_id: batch.jobIds[j] }));
      after = batch.lastId;
    }
    expect(leased).toHaveLength(REPORTED);
    return leased;
  }

  /** Runs `fn` in a transaction; returns its result and the tuples of `tasks` it read, by any scan. */
  function counting<T>(fn: (tx: Sql) => Promise<T>): Promise<{ result: T; tuplesRead: number }> {
    return sql.begin(async (tx) => {
      // The counts of this connection since its last report to the
      // statistics system, which never happens inside a transaction: read
      // before and after.
      const reads = async () => {
        const [r] = await tx<{ n: string }[]>`
          SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) AS n
          FROM pg_stat_xact_user_tables WHERE relname = 'tasks'`;
        return Number(r.n);
      };
      const before = await reads();
      const result = await fn(tx as unknown as Sql);
      return { result, tuplesRead: (await reads()) - before };
    }) as Promise<{ result: T; tuplesRead: number }>;
  }

  async function taskStates() {
    const rows = await sql<{ state: string; n: string }[]>`SELECT state::text, count(*) AS n FROM tasks GROUP BY state ORDER BY state`;
    return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
  }

  it(`record ${REPORTED} results by looking up those tasks, not by reading all ${TASKS}`, async () => {
    const leased = await leaseSome();
    const recorded = await counting((tx) =>
      recordResults(tx, runner, leased.map((t) => ({ taskId: t.id, lease: t.lease, jobId: t.job_id }))),
    );
    expect(recorded.result.refused).toEqual([]);
    expect(await taskStates()).toEqual({ computed: REPORTED, queued: TASKS - REPORTED });
    // A few reads per reported task (its lookup by key, the update's), where
    // a walk of the table reads every one of its tasks (21,000 here).
    expect(recorded.tuplesRead).toBeGreaterThanOrEqual(REPORTED);
    expect(recorded.tuplesRead).toBeLessThanOrEqual(3 * REPORTED);
  });

  it(`extend ${REPORTED} leases, and expire them, by looking up those tasks`, async () => {
    const leased = await leaseSome();
    const extended = await counting((tx) => extendLeases(tx, runner, leased.map((t) => ({ taskId: t.id, lease: t.lease })), 60_000));
    expect(extended.result.lost).toEqual([]);
    expect(extended.tuplesRead).toBeGreaterThanOrEqual(REPORTED);
    expect(extended.tuplesRead).toBeLessThanOrEqual(3 * REPORTED);

    // The runner went away: its leases end.
    await sql`UPDATE tasks SET lease_expires_at = now() - interval '1 second' WHERE state = 'running'`;
    const due = await sql<{ id: string; n: number }[]>`
      UPDATE task_leases SET expires_at = now() - interval '1 second' RETURNING id, cardinality(task_ids) AS n`;
    const named = due.reduce((sum, r) => sum + r.n, 0);
    const expired = await counting((tx) => expireLeases(tx, 100));
    expect(expired.result).toBe(due.length);
    expect(await sql`SELECT id FROM task_leases`).toEqual([]);
    expect(await taskStates()).toEqual({ computed: REPORTED, queued: TASKS - REPORTED });
    expect(expired.tuplesRead).toBeGreaterThanOrEqual(REPORTED);
    expect(expired.tuplesRead).toBeLessThanOrEqual(3 * named);
  });

  it(`record ${REPORTED} mixed results (successes, failures to retry, tasks given back) by looking up those tasks`, async () => {
    // Failures with retries left are queued again; none fails its job.
    await sql`UPDATE tasks SET max_retries = 3 WHERE state = 'queued'`;
    const before = await taskStates();
    const leased = await leaseSome();
    const results = leased.map((t, i) => ({
      taskId: t.id,
      lease: t.lease,
      jobId: t.job_id,
      ...(i % 3 === 1 ? { failure: { message: `failure ${i}`, stack: "" } } : i % 3 === 2 ? { released: true } : {}),
    }));
    const recorded = await counting((tx) => recordResults(tx, runner, results));
    expect(recorded.result.refused).toEqual([]);
    const computed = results.filter((r) => !("failure" in r) && !("released" in r)).length;
    expect(await taskStates()).toEqual({ computed: before.computed + computed, queued: before.queued - computed });
    const [{ failures }] = await sql<{ failures: string }[]>`SELECT count(*) AS failures FROM tasks WHERE error_message LIKE 'failure %'`;
    expect(Number(failures)).toBe(results.filter((r) => "failure" in r).length);
    expect(recorded.tuplesRead).toBeGreaterThanOrEqual(REPORTED);
    expect(recorded.tuplesRead).toBeLessThanOrEqual(3 * REPORTED);
  });
});

describe("the lease statement on the server's lease connections", () => {
  it("is planned once per connection, not at every lease", async () => {
    const store = await storeDatabase();
    const leases = postgres(store.url, { max: 1, onnotice: () => {}, connection: LEASE_SETTINGS });
    try {
      await submitJobs(store.sql, [{ name: "queue", clusterId: 1, plan: { rows: noopRows(5_000), depFrom: [], depTo: [] } }], 30_000);
      await store.sql`ANALYZE`;
      const noop = [{ name: "Noop", major: 1, minor: 0 }];
      const runner = randomUUID();
      let after = "0";
      let leased = 0;
      // Different sizes and floors, as work streams lease.
      for (let i = 1; i <= 12; i++) {
        const batch = await leaseTasks(leases, 1, noop, i, runner, 30_000, after);
        leased += batch.ids.length;
        after = i % 4 === 0 ? "0" : batch.lastId;
      }
      expect(leased).toBe(78);
      const [plans] = await leases<{ generic_plans: string; custom_plans: string }[]>`
        SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE '%FROM ready_tasks r%'`;
      expect({ generic: Number(plans.generic_plans) > 0, custom: Number(plans.custom_plans) }).toEqual({ generic: true, custom: 0 });
    } finally {
      await leases.end();
      await store.close();
    }
  });
});
