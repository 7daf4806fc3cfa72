import { randomBytes } from "node:crypto";
import type { Sql } from "postgres";

/** The key attempts' secrets derive from: made by the first server to start, read by all. */
export async function loadJobHookKey(sql: Sql): Promise<Buffer> {
  await sql`INSERT INTO job_hook_keys (id, key) VALUES (1, ${randomBytes(32)}) ON CONFLICT (id) DO NOTHING`;
  const [row] = await sql<{ key: Buffer }[]>`SELECT key FROM job_hook_keys WHERE id = 1`;
  return row.key;
}
