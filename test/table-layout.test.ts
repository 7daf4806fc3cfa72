import { randomUUID } from "node:crypto";
import type { Sql } from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { recordResults } from "../server/store/complete-tasks.js";
import { leaseTasks } from "../server/store/lease-tasks.js";
import { type SubmittedJob, submitJobs } from "../server/store/submit-job.js";
import { noopRows, storeDatabase } from "./support/harness.js";

/**
 * Where the rows of `tasks` live on disk as tasks go through it. A task row
 * gets a new version when it is leased and when it completes; each version
 * must fit on the row's own page (an update that does not is written on
 * another page, with an entry in every index of the table). And a VACUUM of a
 * table full of finished tasks must not make new tasks land a few per old
 * page all over it (every such page is one more page to read, dirty and write
 * in full to the WAL after a checkpoint). The same holds for a job's row and
 * the completion that finishes the job.
 */
describe("the pages of the tasks and jobs tables", () => {
  const noop = [{ name: "Noop", major: 1, minor: 0 }];
  let store: Awaited<ReturnType<typeof storeDatabase>>;
  let sql: Sql;

  beforeAll(async () => {
    store = await storeDatabase();
    sql = store.sql;
  });

  afterAll(async () => {
    await store?.close();
  });

  /** Queues `n` no-op tasks in one job (inputs like the benchmark's), and returns their ids. */
  async function queue(n: number): Promise<{ first: bigint; last: bigint }> {
    const input = new TextEncoder().encode(JSON.stringify({ t: 1_764_590_000_000.123 }));
    const rows = noopRows(n, input);
    const [job] = (await submitJobs(sql, [{ name: "layout", clusterId: 1, plan: { rows, depFrom: [], depTo: [] } }], 30_000)) as SubmittedJob[];
    const [r] = await sql<{ first: string; last: string }[]>`SELECT min(id) AS first, max(id) AS last FROM tasks WHERE job_id = ${job.id}`;
    return { first: BigInt(r.first), last: BigInt(r.last) };
  }

  /** Leases every queued task in batches of 500, as a work stream does, and records each batch as computed. */
  async function runAll(): Promise<number> {
    const runner = randomUUID();
    let done = 0;
    for (;;) {
      const batch = await leaseTasks(sql, 1, noop, 500, runner, 30_000);
      if (batch.ids.length === 0) return done;
      const results = batch.ids.map((id, i) => ({ taskId: id, lease: batch.leases[i], jobId: batch.jobIds[i] }));
      await settled();
      expect((await recordResults(sql, runner, results)).refused).toEqual([]);
      await settled();
      done += results.length;
    }
  }

  /**
   * Waits until every transaction of the PostgreSQL server that was running
   * when the last write committed has ended. A row's previous version can
   * only be pruned from its page once no snapshot can see it, and a snapshot
   * is held back by any transaction with an id in the whole server, in any
   * database: another test file's long insert (the likely cause of one red CI run) made updates here
   * leave their page for reasons that are not the table's layout.
   */
  async function settled(): Promise<void> {
    const [{ xid }] = await sql<{ xid: string }[]>`SELECT pg_current_xact_id()::text AS xid`;
    for (;;) {
      const [{ past }] = await sql<{ past: boolean }[]>`SELECT pg_snapshot_xmin(pg_current_snapshot()) > ${xid}::xid8 AS past`;
      if (past) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  /** The heap page of each task with an id in the range, in id order. */
  async function pages(range: { first: bigint; last: bigint }): Promise<number[]> {
    const rows = await sql<{ page: number }[]>`
      SELECT (ctid::text::point)[0]::int AS page FROM tasks
      WHERE id BETWEEN ${String(range.first)} AND ${String(range.last)} ORDER BY id`;
    return rows.map((r) => r.page);
  }

  it("keeps every task on the page it was inserted on through its lease and completion, and puts tasks queued after a VACUUM on new pages", async () => {
    const old = await queue(3_000);
    const inserted = await pages(old);
    expect(await runAll()).toBe(3_000);
    // Rows queued in id order sit on pages in id order; a version that did
    // not fit on its page went to a later one, out of that order.
    expect(await pages(old)).toEqual(inserted);

    await sql.unsafe("VACUUM tasks");
    const fresh = await queue(500);
    const lastOld = Math.max(...inserted);
    const newPages = await pages(fresh);
    expect(newPages.filter((p) => p <= lastOld)).toEqual([]);
    expect(await runAll()).toBe(500);
  });

  /** Pages of each index of `jobs`. */
  async function jobIndexPages(): Promise<Record<string, number>> {
    const rows = await sql<{ name: string; pages: number }[]>`
      SELECT indexrelname AS name, (pg_relation_size(indexrelid) / 8192)::int AS pages
      FROM pg_stat_user_indexes WHERE relname = 'jobs' ORDER BY 1`;
    return Object.fromEntries(rows.map((r) => [r.name, r.pages]));
  }

  // Completing a job rewrites its row (state, open tasks, finish time). An
  // update that changes no indexed column and fits on the row's page is HOT:
  // no index gets an entry. Otherwise every index of jobs gets one per job,
  // and vacuum has the old ones to remove.
  it("completes one-task jobs without writing to any index of jobs, and counts them for the console", async () => {
    const input = new TextEncoder().encode(JSON.stringify({ t: 1_764_590_000_000.123 }));
    const n = 3_000;
    const submitted = await submitJobs(
      sql,
      Array.from({ length: n }, (_, i) => ({ name: `one task ${i}`, clusterId: 1, plan: { rows: noopRows(1, input), depFrom: [], depTo: [] } })),
      30_000,
    );
    expect(submitted).toHaveLength(n);
    await settled();
    const [{ counted: countedBefore }] = await sql<{ counted: number }[]>`SELECT coalesce(sum(completed), 0)::int AS counted FROM job_finish_counts`;
    const before = await jobIndexPages();
    expect(await runAll()).toBe(n);
    expect(await jobIndexPages()).toEqual(before);
    const [{ completed }] = await sql<{ completed: number }[]>`SELECT count(*)::int AS completed FROM jobs WHERE name LIKE 'one task %' AND state = 'completed'`;
    expect(completed).toBe(n);
    const [{ counted }] = await sql<{ counted: number }[]>`SELECT coalesce(sum(completed), 0)::int AS counted FROM job_finish_counts`;
    expect(counted - countedBefore).toBe(n);
  });

  // A foreign key to a table makes every UPDATE of it read each rewritten row's
  // old version again (PostgreSQL checks whether the key changed): leasing and
  // completing rewrite every task row, and completing its job's row.
  it("has no foreign key to tasks or jobs: the rows that name them go with job retention", async () => {
    const keys = await sql<{ key: string }[]>`
      SELECT conrelid::regclass || '.' || conname AS key FROM pg_constraint
      WHERE contype = 'f' AND confrelid IN ('tasks'::regclass, 'jobs'::regclass) ORDER BY 1`;
    expect(keys.map((k) => k.key)).toEqual([]);
  });
});
