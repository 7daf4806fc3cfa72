/**
 * Calls `stop` on the first SIGINT or SIGTERM. A repeat within two seconds is
 * the same request (Ctrl-C reaches npm and node both, and npm passes it on);
 * a later one exits at once. The listeners stay installed: tsx, which runs the
 * CLI, exits the process on a signal that has no listener left, as a `once`
 * listener would leave it.
 */
export function onStopSignal(stop: (signal: NodeJS.Signals) => void): void {
  let since = 0;
  const handle = (signal: NodeJS.Signals) => {
    if (since > 0) {
      if (Date.now() - since < 2_000) return;
      console.error(`${signal} again: exiting without waiting`);
      process.exit(1);
    }
    since = Date.now();
    stop(signal);
  };
  process.on("SIGINT", handle);
  process.on("SIGTERM", handle);
}
