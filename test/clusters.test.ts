import postgres, { type Sql } from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SESSION_SETTINGS } from "../server/build-server.js";
import { createCluster, deleteCluster } from "../server/store/clusters.js";
import { submitJobs } from "../server/store/submit-job.js";
import { eventually, noopRows, storeDatabase } from "./support/harness.js";

/**
 * Tasks name their cluster without a foreign key (migration 0011): each
 * statement that inserts tasks locks the clusters they name once, as the key's
 * check did per task. A cluster with tasks cannot be deleted, even by a delete
 * that runs while the tasks are being inserted, and tasks naming a deleted
 * cluster are refused with nothing of their job written.
 */
describe("clusters and the tasks that name them", () => {
  let store: Awaited<ReturnType<typeof storeDatabase>>;
  let sql: Sql;
  /** A second connection, for the statement that runs beside a transaction of `sql`, and its backend. */
  let other: Sql;
  let otherPid: number;

  beforeAll(async () => {
    store = await storeDatabase();
    sql = store.sql;
    other = postgres(store.url, { max: 1, onnotice: () => {}, connection: SESSION_SETTINGS });
    [{ pid: otherPid }] = await other<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
  });

  afterAll(async () => {
    await other?.end();
    await store?.close();
  });

  /** A job on the default cluster whose one task runs on `clusterId`. */
  function jobWithTaskOn(clusterId: number) {
    const rows = noopRows(1).map((r) => ({ ...r, clusterId }));
    return { name: "j", clusterId: 1, plan: { rows, depFrom: [], depTo: [] } };
  }

  async function counts(): Promise<{ jobs: number; tasks: number }> {
    const [r] = await sql<{ jobs: number; tasks: number }[]>`
      SELECT (SELECT count(*) FROM jobs)::int AS jobs, (SELECT count(*) FROM tasks)::int AS tasks`;
    return r;
  }

  /** Waits (asking on `tx`) until the statement sent on `other` waits for a lock. */
  async function otherWaitsForLock(tx: Sql): Promise<void> {
    await eventually(
      async () => {
        const [r] = await tx<{ waiting: boolean }[]>`
          SELECT wait_event_type = 'Lock' AS waiting FROM pg_stat_activity WHERE pid = ${otherPid}`;
        return r?.waiting;
      },
      10_000,
      "the statement on the other connection to wait for the lock",
    );
  }

  it("refuses to delete a cluster that tasks name, and deletes one that none names", async () => {
    const used = (await createCluster(sql, "gpu", "GPU"))!;
    await createCluster(sql, "spare", "Spare");
    await submitJobs(sql, [jobWithTaskOn(used.id)], 30_000);
    expect(await deleteCluster(sql, "gpu")).toBe("in-use");
    expect(await deleteCluster(sql, "spare")).toBe("deleted");
    expect(await deleteCluster(sql, "spare")).toBe("missing");
  });

  it("refuses tasks naming a deleted cluster, writing nothing of their job", async () => {
    const gone = (await createCluster(sql, "gone", "Gone"))!;
    expect(await deleteCluster(sql, "gone")).toBe("deleted");
    const before = await counts();
    // The server holds a cluster id from before the delete (its directory caches them).
    await expect(submitJobs(sql, [jobWithTaskOn(gone.id)], 30_000)).rejects.toMatchObject({ code: "23503" });
    expect(await counts()).toEqual(before);
  });

  it("lets a delete that starts while tasks naming the cluster are inserted wait for them, and then refuse", async () => {
    const c = (await createCluster(sql, "busy", "Busy"))!;
    let deleting: Promise<string> | undefined;
    await sql.begin(async (tx) => {
      await submitJobs(tx as unknown as Sql, [jobWithTaskOn(c.id)], 30_000);
      deleting = deleteCluster(other, "busy");
      await otherWaitsForLock(tx as unknown as Sql);
    });
    expect(await deleting).toBe("in-use");
  });

  it("lets an insert that starts while the cluster is being deleted wait, and then refuse its tasks", async () => {
    const c = (await createCluster(sql, "leaving", "Leaving"))!;
    const before = await counts();
    let inserting: Promise<unknown> | undefined;
    await sql.begin(async (tx) => {
      await tx`SELECT id FROM clusters WHERE id = ${c.id} FOR UPDATE`;
      await tx`DELETE FROM clusters WHERE id = ${c.id}`;
      inserting = submitJobs(other, [jobWithTaskOn(c.id)], 30_000).catch((e) => e);
      await otherWaitsForLock(tx as unknown as Sql);
    });
    expect(await inserting).toMatchObject({ code: "23503" });
    expect(await counts()).toEqual(before);
  });
});
