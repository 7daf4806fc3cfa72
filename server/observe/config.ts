/** Settings of what the server shows about what runs (docs/observability.md). */
export interface ObservabilityConfig {
  /** Characters of log lines kept per task attempt; later lines are not kept (a line says so). */
  taskLogChars: number;
  /** How often a server writes when its runners were last heard and what they hold. */
  runnerTouchIntervalMs: number;
  /**
   * Who may read /metrics when the server needs tokens: "token" (a token with
   * the read scope, as a bearer token) or "open" (anyone who reaches the port).
   * Without tokens, anyone may.
   */
  metrics: "token" | "open";
}

export const ObservabilityDefaults: ObservabilityConfig = {
  taskLogChars: 1024 * 1024,
  runnerTouchIntervalMs: 5_000,
  metrics: "token",
};
