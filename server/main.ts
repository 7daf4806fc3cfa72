import { type ServerConfig, configFromEnv } from "./config.js";
import { buildServer } from "./build-server.js";

/**
 * Runs a server until SIGINT or SIGTERM: then it stops taking work, lets
 * in-flight requests finish, stops the embedded PostgreSQL and exits 0.
 */
export async function runServer(overrides: Partial<ServerConfig> = {}): Promise<void> {
  const config = { ...configFromEnv(), ...overrides };
  const server = await buildServer(config, {
    info: (m) => console.log(m),
    error: (m, e) => console.error(m, e instanceof Error ? (e.stack ?? e.message) : (e ?? "")),
  });
  await new Promise<void>((resolve) => {
    let stoppingSince = 0;
    // Listeners stay installed: tsx (which runs the CLI) exits the process on a
    // signal that has no listener left, as a `once` listener would leave it.
    // A repeat within two seconds is the same request (Ctrl-C reaches npm and
    // node both, and npm passes it on); a later one means "now".
    const shutdown = (signal: NodeJS.Signals) => {
      if (stoppingSince > 0) {
        if (Date.now() - stoppingSince < 2_000) return;
        console.log(`${signal} again: exiting without waiting`);
        process.exit(1);
      }
      stoppingSince = Date.now();
      console.log(`${signal}: shutting down`);
      server.stop().then(resolve, (e) => {
        console.error("shutdown failed", e);
        process.exitCode = 1;
        resolve();
      });
    };
    process.on("SIGINT", shutdown);
    process.on("SIGTERM", shutdown);
  });
  console.log("stopped");
}
