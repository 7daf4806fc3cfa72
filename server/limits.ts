/**
 * The limits that keep callers from using up the server: on connections
 * (`http/listen.ts`) and on requests (`http/api-handler.ts`), with their
 * defaults and the settings that change them. No imports: the CLI reads
 * this for its help without loading the server.
 */

/** Limits on connections, so that no client can hold the server's sockets or streams. */
export interface ConnectionLimits {
  /** How long a new connection may take to send enough to tell HTTP/2 from HTTP/1.1. */
  firstBytesTimeoutMs: number;
  /**
   * How long a connection may stay open with no request in progress: an
   * HTTP/1.1 keep-alive connection, or an HTTP/2 session with no open stream
   * (a runner's long-lived work stream keeps its session open).
   */
  idleTimeoutMs: number;
  /** Connections open at once; further ones are closed as soon as they are accepted. */
  maxConnections: number;
  /** Streams open at once on one HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS). */
  maxStreamsPerConnection: number;
  /** TCP keep-alive probes find peers that went away without closing (a runner's machine lost). */
  tcpKeepAliveMs: number;
}

export const ConnectionLimitsDefaults: ConnectionLimits = {
  firstBytesTimeoutMs: 10_000,
  idleTimeoutMs: 120_000,
  maxConnections: 4_096,
  // As Go's HTTP/2 server: plenty for one client's runners and submits; an
  // HTTP/2 client queues streams beyond it rather than failing them.
  maxStreamsPerConnection: 250,
  tcpKeepAliveMs: 60_000,
};

/** Limits on what callers may send and have handled at once. */
export interface RequestLimits {
  /**
   * The largest request message, in bytes. The largest valid ones are a
   * batch the SDK sends (up to 16 MiB of task inputs, plus one more input of
   * up to 1 MiB) and a completion whose task submits many subtasks (up to
   * 100,000 in one completion); room beyond them costs memory per request.
   */
  maxRequestBytes: number;
  /**
   * Requests handled at once (unary calls and submit streams); the rest wait
   * their turn, unread. Runners' work streams do not count.
   */
  maxConcurrentRequests: number;
}

export const RequestLimitsDefaults: RequestLimits = {
  maxRequestBytes: 64 * 1024 * 1024,
  // Enough to keep the database pool busy several times over; each one
  // handled costs its request's memory until it is answered.
  maxConcurrentRequests: 64,
};

/** The environment variable and command-line flag of each limit. */
export const LIMIT_SETTINGS = {
  firstBytesTimeoutMs: { env: "SLUICE_FIRST_BYTES_TIMEOUT_MS", flag: "--first-bytes-timeout-ms" },
  idleTimeoutMs: { env: "SLUICE_IDLE_TIMEOUT_MS", flag: "--idle-timeout-ms" },
  maxConnections: { env: "SLUICE_MAX_CONNECTIONS", flag: "--max-connections" },
  maxStreamsPerConnection: { env: "SLUICE_MAX_STREAMS_PER_CONNECTION", flag: "--max-streams-per-connection" },
  maxRequestBytes: { env: "SLUICE_MAX_REQUEST_BYTES", flag: "--max-request-bytes" },
  maxConcurrentRequests: { env: "SLUICE_MAX_CONCURRENT_REQUESTS", flag: "--max-concurrent-requests" },
} as const;
