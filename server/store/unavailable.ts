/**
 * Node's codes for a connection that could not be made or was lost, and
 * postgres.js's own for a connection it closed or could not open.
 */
const CONNECTION_CODES = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/**
 * Whether an error means the database could not be reached or dropped the
 * connection, so that the same request may succeed when tried again: a
 * connection error (SQLSTATE class 08), an administrator's or a crash's
 * shutdown of the backend (57P01 to 57P03), too many connections (53300), or
 * a socket error.
 */
export function isDatabaseUnavailable(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== "string") return false;
  return CONNECTION_CODES.has(code) || code.startsWith("08") || code.startsWith("57P0") || code === "53300";
}
