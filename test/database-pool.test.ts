import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { POOL_OPTIONS } from "../server/build-server.js";
import { createDatabase } from "./support/harness.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// The server's pools with their own options; connect_timeout is lifted so that
// a connection that never opens shows as a query that never settles, not one
// that fails after the timeout.
describe("the server's database pool under terminated connections", () => {
  let db: Awaited<ReturnType<typeof createDatabase>>;
  let admin: postgres.Sql;

  beforeAll(async () => {
    db = await createDatabase();
    admin = postgres(db.url, { max: 1, onnotice: () => {} });
  });

  afterAll(async () => {
    await admin?.end({ timeout: 1 });
    await db?.drop();
  });

  it("answers every query after bursts of terminated backends: no connection is left waiting to open", { timeout: 90_000 }, async () => {
    const name = "sluice-terminated-pool";
    const pool = postgres(db.url, { ...POOL_OPTIONS, max: 8, connect_timeout: 3_600, connection: { application_name: name } });
    let storming = true;
    let answered = 0;
    let failed = 0;
    const worker = async () => {
      while (storming) {
        try {
          await pool`SELECT pg_sleep(0.001)`;
          answered++;
        } catch {
          failed++;
        }
      }
    };
    const workers = Array.from({ length: 32 }, worker);
    const terminate = () => admin`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = ${name}`;
    // Bursts of three, as a failover or a pooler restart drops them.
    for (let burst = 0; burst < 12; burst++) {
      for (let k = 0; k < 3; k++) {
        await terminate();
        await sleep(100);
      }
      await sleep(300);
    }
    storming = false;
    // Every query in flight settles, and the pool still answers on all its connections.
    await Promise.all(workers);
    const after = await Promise.all(Array.from({ length: 16 }, (_, i) => pool<{ n: number }[]>`SELECT ${i}::int AS n`));
    expect(after.map(([r]) => r.n)).toEqual(Array.from({ length: 16 }, (_, i) => i));
    expect(failed).toBeGreaterThan(0);
    expect(answered).toBeGreaterThan(failed);
    await pool.end({ timeout: 1 });
  });
});
