import postgres from "postgres";

/** A database made for a test, and how to drop it. */
export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/**
 * Creates the database `name` on the PostgreSQL server of `adminUrl`, empty or
 * as a copy of `template`, and returns its URL. Outside vitest too (the long
 * fault suite).
 */
export async function createDatabaseOn(adminUrl: string, name: string, template?: string): Promise<TestDatabase> {
  const admin = () => postgres(adminUrl, { max: 1, onnotice: () => {} });
  const a = admin();
  try {
    await a.unsafe(template ? `CREATE DATABASE "${name}" TEMPLATE "${template}"` : `CREATE DATABASE "${name}"`);
  } finally {
    await a.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const d = admin();
      try {
        await d.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await d.end();
      }
    },
  };
}
