import { type ServerConfig, configFromEnv } from "./config.js";
import { buildServer } from "./build-server.js";
import { isDatabaseUnavailable } from "./store/unavailable.js";
import { onStopSignal } from "./signals.js";

/**
 * Runs a server until SIGINT or SIGTERM: then it stops taking work, lets
 * in-flight requests finish, stops the embedded PostgreSQL and exits 0.
 */
export async function runServer(overrides: Partial<ServerConfig> = {}): Promise<void> {
  const config = { ...configFromEnv(), ...overrides };
  // Every query's failure is handled where it is awaited; one that is not is a
  // bug, logged here rather than ending the process with every request in it.
  process.on("unhandledRejection", (e) => {
    // postgres.js reads the array types on every new connection and leaves
    // that query's rejection unhandled when the database terminates the
    // connection meanwhile: the pool opens another.
    const query = typeof e === "object" && e !== null && "query" in e ? String((e as { query: unknown }).query) : "";
    if (isDatabaseUnavailable(e) && /^\s*select b\.oid, b\.typarray/.test(query)) {
      console.error(`a database connection was dropped (${(e as Error).message}); the pool replaces it`);
      return;
    }
    console.error("unhandled rejection (a bug: please report it)", e);
  });
  // postgres.js 3.4 can throw from a timer when the database terminates a
  // connection it is writing to (porsager/postgres#1154): that connection is
  // gone and the pool opens another, so the server goes on. Anything else
  // still ends the process.
  process.on("uncaughtException", (e) => {
    if (e instanceof TypeError && /postgres[\\/](cjs[\\/])?src[\\/]connection\.js/.test(e.stack ?? "")) {
      console.error("a database connection failed inside postgres.js; the pool replaces it", e);
      return;
    }
    console.error(e);
    process.exit(1);
  });
  const server = await buildServer(config, {
    info: (m) => console.log(m),
    error: (m, e) => console.error(m, e instanceof Error ? (e.stack ?? e.message) : (e ?? "")),
  });
  await new Promise<void>((resolve) => {
    onStopSignal((signal) => {
      console.log(`${signal}: shutting down`);
      server.stop().then(resolve, (e) => {
        console.error("shutdown failed", e);
        process.exitCode = 1;
        resolve();
      });
    });
  });
  console.log("stopped");
}
