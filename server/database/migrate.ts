import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { Sql } from "postgres";

const migrationsDir = fileURLToPath(new URL("../migrations/", import.meta.url));

/** Any constant: it only has to be the same in every Sluice process. */
const MIGRATION_LOCK_KEY = 7_203_514_662;

/**
 * Applies the numbered `.sql` files of `server/migrations` that the database has
 * not seen yet, in order, in one transaction under an advisory lock, so that
 * several servers starting at once apply each migration exactly once.
 * Returns the names of the migrations applied.
 */
export async function migrate(
  sql: Sql,
  /** Only the migrations whose names sort before this one (for upgrade tests). */
  before?: string,
): Promise<string[]> {
  const files = (await readdir(migrationsDir))
    .filter((f) => /^\d{4}_.+\.sql$/.test(f) && (before === undefined || f < before))
    .sort();
  return sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`;
    await tx`CREATE TABLE IF NOT EXISTS sluice_migrations (
      name text PRIMARY KEY,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`;
    const done = new Set((await tx<{ name: string }[]>`SELECT name FROM sluice_migrations`).map((r) => r.name));
    const applied: string[] = [];
    for (const file of files) {
      if (done.has(file)) continue;
      // No parameters: postgres.js sends it with the simple protocol, so one
      // file may hold many statements.
      await tx.unsafe(await readFile(migrationsDir + file, "utf8"));
      await tx`INSERT INTO sluice_migrations (name) VALUES (${file})`;
      applied.push(file);
    }
    return applied;
  });
}
