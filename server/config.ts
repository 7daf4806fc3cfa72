import type { TlsFiles } from "./http/listen-tls.js";
import { LeaseExpiryDefaults, type LeaseExpiryConfig } from "./maintenance/lease-expiry.js";
import { JobRetentionDefaults, type JobRetentionConfig } from "./maintenance/job-retention.js";
import { type Clock, systemClock } from "./maintenance/clock.js";
import { type SchedulerConfig, SchedulerDefaults } from "./maintenance/scheduler.js";
import { type ObservabilityConfig, ObservabilityDefaults } from "./observe/config.js";
import { type ConnectionLimits, ConnectionLimitsDefaults, LIMIT_SETTINGS, type RequestLimits, RequestLimitsDefaults } from "./limits.js";

export interface ServerConfig {
  /** Interface to listen on. */
  host: string;
  /** Port to listen on; 0 picks a free one. */
  port: number;
  /** PostgreSQL to use; when absent an embedded one is started in `dataDir`. */
  databaseUrl?: string;
  /** Where the embedded PostgreSQL keeps its data. */
  dataDir: string;
  /** How long a lease lasts unless the runner extends it. */
  leaseTtlMs: number;
  /** Connections in the pool for API requests and leasing. */
  poolSize: number;
  leaseExpiry: LeaseExpiryConfig;
  scheduler: SchedulerConfig;
  /** How long finished jobs are kept. */
  jobRetention: JobRetentionConfig;
  /** The GCS JSON API endpoint (a local emulator); Google's when unset. */
  gcsApiEndpoint?: string;
  connections: ConnectionLimits;
  requests: RequestLimits;
  /**
   * Bearer tokens: "auto" needs them once the server listens beyond loopback,
   * "required" always, "off" never (beyond loopback only when asked for by name:
   * `--insecure-no-auth`).
   */
  auth: "auto" | "required" | "off";
  /** A static admin token (SLUICE_ADMIN_TOKEN); when empty, one is created on first start if none exists. */
  adminToken: string;
  /** Whether gRPC reflection answers without a token. */
  openReflection: boolean;
  /**
   * The folders under which folder storage locations may be registered; none
   * given: the data folder and the folder the server started in.
   */
  fsRoots?: string[];
  /** Serve TLS (HTTP/2 and HTTP/1.1 by ALPN) with this certificate; cleartext when absent. */
  tls?: TlsFiles;
  /** URL prefixes besides SNS's own whose SubscriptionConfirmation the server visits (SNS-compatible services). */
  snsConfirmUrls: string[];
  /** The scheduler's clock, for cron ticks and scheduled starts; tests pass one they move. */
  clock: Clock;
  /** The built web console served at /ui/; web/dist of the repository when unset. */
  consoleDir?: string;
  /** Task logs, the runner registry and /metrics. */
  observability: ObservabilityConfig;
  /**
   * The URL processes reach the server at, for JOB_HOOK and the file URLs of
   * the job hook (SLUICE_PUBLIC_URL); the server's own address when unset.
   */
  publicUrl?: string;
  /** Where content uploaded through job hooks is kept (default: DATA_DIR/job-files). */
  jobFilesDir?: string;
  /** Keep that content in this S3 storage location (its id) instead (SLUICE_JOB_FILES_LOCATION). */
  jobFilesLocation?: string;
  /** The largest file a process may upload through its job hook, in bytes (SLUICE_JOB_FILE_MAX_BYTES). */
  jobFileMaxBytes: number;
}

export const ServerDefaults: ServerConfig = {
  host: "127.0.0.1",
  port: 8080,
  dataDir: ".sluice",
  leaseTtlMs: 30_000,
  poolSize: 10,
  leaseExpiry: LeaseExpiryDefaults,
  scheduler: SchedulerDefaults,
  jobRetention: JobRetentionDefaults,
  connections: ConnectionLimitsDefaults,
  requests: RequestLimitsDefaults,
  auth: "auto",
  adminToken: "",
  openReflection: true,
  snsConfirmUrls: [],
  clock: systemClock,
  observability: ObservabilityDefaults,
  jobFileMaxBytes: 10 * 1024 ** 3,
};

/**
 * Settings from the environment: SLUICE_HOST, SLUICE_PORT, DATABASE_URL, SLUICE_DATA_DIR,
 * SLUICE_LEASE_TTL_MS, SLUICE_DB_POOL_SIZE, SLUICE_JOB_RETENTION_HOURS, SLUICE_GCS_ENDPOINT, SLUICE_AUTH,
 * SLUICE_INSECURE_NO_AUTH, SLUICE_ADMIN_TOKEN, SLUICE_REFLECTION ("token" to require one for reflection),
 * SLUICE_TASK_LOG_CHARS, SLUICE_METRICS ("open" to serve /metrics without a token), and the limits of
 * LIMIT_SETTINGS.
 * SLUICE_PUBLIC_URL, SLUICE_JOB_FILES_DIR, SLUICE_JOB_FILES_LOCATION, SLUICE_JOB_FILE_MAX_BYTES,
 * and the limits of LIMIT_SETTINGS.
 */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const int = (name: string, fallback: number) => {
    const raw = env[name];
    if (raw === undefined || raw === "") return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got "${raw}"`);
    return n;
  };
  return {
    ...ServerDefaults,
    host: env.SLUICE_HOST || ServerDefaults.host,
    port: int("SLUICE_PORT", ServerDefaults.port),
    databaseUrl: env.DATABASE_URL || undefined,
    dataDir: env.SLUICE_DATA_DIR || ServerDefaults.dataDir,
    leaseTtlMs: int("SLUICE_LEASE_TTL_MS", ServerDefaults.leaseTtlMs),
    poolSize: int("SLUICE_DB_POOL_SIZE", ServerDefaults.poolSize),
    gcsApiEndpoint: env.SLUICE_GCS_ENDPOINT || undefined,
    jobRetention: { ...JobRetentionDefaults, retentionMs: int("SLUICE_JOB_RETENTION_HOURS", 0) * 3_600_000 },
    connections: {
      ...ConnectionLimitsDefaults,
      firstBytesTimeoutMs: int(LIMIT_SETTINGS.firstBytesTimeoutMs.env, ConnectionLimitsDefaults.firstBytesTimeoutMs),
      idleTimeoutMs: int(LIMIT_SETTINGS.idleTimeoutMs.env, ConnectionLimitsDefaults.idleTimeoutMs),
      maxConnections: int(LIMIT_SETTINGS.maxConnections.env, ConnectionLimitsDefaults.maxConnections),
      maxStreamsPerConnection: int(LIMIT_SETTINGS.maxStreamsPerConnection.env, ConnectionLimitsDefaults.maxStreamsPerConnection),
    },
    requests: {
      maxRequestBytes: int(LIMIT_SETTINGS.maxRequestBytes.env, RequestLimitsDefaults.maxRequestBytes),
      maxConcurrentRequests: int(LIMIT_SETTINGS.maxConcurrentRequests.env, RequestLimitsDefaults.maxConcurrentRequests),
    },
    auth: env.SLUICE_INSECURE_NO_AUTH === "true" ? "off" : authMode(env.SLUICE_AUTH),
    adminToken: env.SLUICE_ADMIN_TOKEN ?? "",
    openReflection: env.SLUICE_REFLECTION !== "token",
    snsConfirmUrls: (env.SLUICE_SNS_CONFIRM_URLS ?? "").split(",").map((u) => u.trim()).filter(Boolean),
    tls: tlsFromEnv(env),
    fsRoots: env.SLUICE_FS_ROOTS ? env.SLUICE_FS_ROOTS.split(":").filter(Boolean) : undefined,
    observability: {
      ...ObservabilityDefaults,
      taskLogChars: int("SLUICE_TASK_LOG_CHARS", ObservabilityDefaults.taskLogChars),
      metrics: metricsMode(env.SLUICE_METRICS),
    },
    publicUrl: publicUrl(env.SLUICE_PUBLIC_URL),
    jobFilesDir: env.SLUICE_JOB_FILES_DIR || undefined,
    jobFilesLocation: env.SLUICE_JOB_FILES_LOCATION || undefined,
    jobFileMaxBytes: int("SLUICE_JOB_FILE_MAX_BYTES", ServerDefaults.jobFileMaxBytes),
  };
}

function publicUrl(raw: string | undefined): string | undefined {
  if (!raw) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`SLUICE_PUBLIC_URL must be a URL such as https://sluice.example.com, got "${raw}"`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error(`SLUICE_PUBLIC_URL must be http or https, got "${raw}"`);
  return raw.replace(/\/+$/, "");
}

function authMode(raw: string | undefined): ServerConfig["auth"] {
  if (raw === undefined || raw === "") return ServerDefaults.auth;
  if (raw === "auto" || raw === "required") return raw;
  throw new Error(`SLUICE_AUTH must be auto or required (SLUICE_INSECURE_NO_AUTH=true turns tokens off), got "${raw}"`);
}

function metricsMode(raw: string | undefined): ServerConfig["observability"]["metrics"] {
  if (raw === undefined || raw === "") return ObservabilityDefaults.metrics;
  if (raw === "open" || raw === "token") return raw;
  throw new Error(`SLUICE_METRICS must be token (a read token is needed when tokens are) or open, got "${raw}"`);
}

/** Whether a listening address reaches only this machine. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function tlsFromEnv(env: NodeJS.ProcessEnv): TlsFiles | undefined {
  const certFile = env.SLUICE_TLS_CERT || undefined;
  const keyFile = env.SLUICE_TLS_KEY || undefined;
  if (!certFile && !keyFile) return undefined;
  if (!certFile || !keyFile) throw new Error("SLUICE_TLS_CERT and SLUICE_TLS_KEY go together: set both for TLS, or neither");
  return { certFile, keyFile, clientCaFile: env.SLUICE_TLS_CLIENT_CA || undefined };
}
