import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import type { TestProject } from "vitest/node";
import { startEmbeddedDatabase } from "../../server/database/embedded.js";
import { migrate } from "../../server/database/migrate.js";
import { buildConsoleIfStale } from "./browser.js";
import { createDatabaseOn } from "./databases.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** A URL of the test PostgreSQL server's maintenance database; tests create their own databases there. */
    adminUrl: string;
    /** Prefix of the databases this run creates, so they can be dropped at the end. */
    dbPrefix: string;
    /** A database of that prefix with every migration applied, which test databases are copied from. */
    templateDb: string;
  }
}

/**
 * Tests run against DATABASE_URL when it is set, otherwise against an embedded
 * PostgreSQL started here for the run. Every test file creates databases of
 * its own on that server; they are dropped at the end.
 */
export default async function setup(project: TestProject) {
  let adminUrl = process.env.DATABASE_URL;
  let stopEmbedded: (() => Promise<void>) | undefined;
  let dataDir: string | undefined;
  if (!adminUrl) {
    dataDir = await mkdtemp(join(tmpdir(), "sluice-test-pg-"));
    // As root, PostgreSQL runs as a user of its own, which must reach the folder.
    await chmod(dataDir, 0o755);
    const db = await startEmbeddedDatabase(dataDir);
    adminUrl = db.url;
    stopEmbedded = db.stop;
  }
  // Once, before any file runs: the console's tests and the packaging test both read web/dist,
  // and two builds at once would write over each other.
  await buildConsoleIfStale();
  const dbPrefix = `sluice_t${process.pid}_`;
  // Migrated once: a test database is a copy of it, which is quicker than
  // running every migration again in each.
  const templateDb = `${dbPrefix}template`;
  const template = await createDatabaseOn(adminUrl, templateDb);
  const sql = postgres(template.url, { max: 1, onnotice: () => {} });
  try {
    await migrate(sql);
  } finally {
    await sql.end();
  }
  project.provide("adminUrl", adminUrl);
  project.provide("dbPrefix", dbPrefix);
  project.provide("templateDb", templateDb);

  return async () => {
    const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
    try {
      const left = await sql<{ datname: string }[]>`SELECT datname FROM pg_database WHERE starts_with(datname, ${dbPrefix})`;
      for (const { datname } of left) await sql.unsafe(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
    } finally {
      await sql.end({ timeout: 5 });
    }
    await stopEmbedded?.();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  };
}
