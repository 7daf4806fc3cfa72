import { type ServerConfig, configFromEnv } from "./config.js";
import { buildServer } from "./build-server.js";
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
    console.error("unhandled rejection (a bug: please report it)", e);
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
