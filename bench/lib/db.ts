import postgres, { type Sql } from "postgres";

/** Creates and drops the benchmark's databases on one PostgreSQL server. */
export class Databases {
  private counter = 0;
  readonly prefix = `sluice_bench_${process.pid}_`;
  private readonly created = new Set<string>();

  constructor(readonly adminUrl: string) {}

  admin(): Sql {
    return postgres(this.adminUrl, { max: 1, onnotice: () => {} });
  }

  /** A fresh, empty database named `sluice_bench_<pid>_<n>_<label>`. */
  async create(label: string): Promise<{ name: string; url: string }> {
    const name = `${this.prefix}${++this.counter}_${label.replace(/[^a-z0-9_]/g, "_")}`;
    const sql = this.admin();
    try {
      await sql.unsafe(`CREATE DATABASE "${name}"`);
    } finally {
      await sql.end({ timeout: 5 });
    }
    this.created.add(name);
    const url = new URL(this.adminUrl);
    url.pathname = `/${name}`;
    return { name, url: url.toString() };
  }

  async drop(name: string): Promise<void> {
    const sql = this.admin();
    try {
      await sql.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      this.created.delete(name);
    } finally {
      await sql.end({ timeout: 5 });
    }
  }

  /** Drops every database this run created (and any left by an earlier run of the same pid). */
  async dropAll(): Promise<void> {
    const sql = this.admin();
    try {
      const left = await sql<{ datname: string }[]>`SELECT datname FROM pg_database WHERE starts_with(datname, ${this.prefix})`;
      for (const { datname } of left) await sql.unsafe(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
      this.created.clear();
    } finally {
      await sql.end({ timeout: 5 });
    }
  }
}

/** Polls `check` every `intervalMs` until it returns true; throws after `timeoutMs`. */
export async function waitUntil(check: () => Promise<boolean>, what: string, timeoutMs: number, intervalMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Waits for the emulated fan-out's counter row `id` (bench_fanout, used by the
 * peers without dependencies between jobs) to be stamped finished, and returns
 * its duration in milliseconds from the database's own timestamps.
 */
export async function fanoutCounterTime(sql: Sql, id: number, timeoutMs: number): Promise<number> {
  let ms = NaN;
  await waitUntil(
    async () => {
      const [row] = await sql<{ ms: number | null }[]>`
        SELECT (extract(epoch FROM finished_at - created_at) * 1000)::float8 AS ms FROM bench_fanout WHERE id = ${id}`;
      if (row.ms === null) return false;
      ms = row.ms;
      return true;
    },
    "the fan-out final job to run",
    timeoutMs,
    20,
  );
  return ms;
}
