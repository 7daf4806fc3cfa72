import type { DescService } from "@bufbuild/protobuf";
import { type ConnectRouter } from "@connectrpc/connect";
import type { ServerResponse } from "node:http";
import { join, resolve } from "node:path";
import postgres, { type Sql } from "postgres";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ReflectionV1 } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ReflectionV1alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { ClusterService } from "../gen/sluice/v1/cluster_service_pb.js";
import { FileService } from "../gen/sluice/v1/file_service_pb.js";
import { JobService } from "../gen/sluice/v1/job_service_pb.js";
import { RecurrentTaskService } from "../gen/sluice/v1/recurrent_task_service_pb.js";
import { RunnerService } from "../gen/sluice/v1/runner_service_pb.js";
import { StorageService } from "../gen/sluice/v1/storage_service_pb.js";
import { writeFile } from "node:fs/promises";
import { TokenService } from "../gen/sluice/v1/token_service_pb.js";
import { Authenticator } from "./auth/authenticator.js";
import { type ServerConfig, ServerDefaults, isLoopback } from "./config.js";
import { authInterceptor } from "./interceptors/auth.js";
import { issueToken, tokenService } from "./services/token-service.js";
import { anyAdminToken } from "./store/tokens.js";
import { type EmbeddedDatabase, startEmbeddedDatabase } from "./database/embedded.js";
import { migrate } from "./database/migrate.js";
import { Dispatcher } from "./dispatch/dispatcher.js";
import { consoleHandler, isConsolePath } from "./http/console.js";
import { Admission } from "./http/admission.js";
import { apiHandler } from "./http/api-handler.js";
import { LIMIT_SETTINGS } from "./limits.js";
import { errorsInterceptor } from "./interceptors/errors.js";
import { type Listener, listen } from "./http/listen.js";
import { listenTls } from "./http/listen-tls.js";
import { correctProtocolErrors, parseErrors } from "./http/protocol-errors.js";
import { storableText } from "./interceptors/storable-text.js";
import { LeaseExpiry } from "./maintenance/lease-expiry.js";
import { JobRetention } from "./maintenance/job-retention.js";
import { StagedPathsCleanup, StagedPathsDefaults } from "./maintenance/staged-paths.js";
import { Scheduler } from "./maintenance/scheduler.js";
import { clusterService } from "./services/cluster-service.js";
import { fileService } from "./services/file-service.js";
import { type StorageDeps, storageService } from "./services/storage-service.js";
import { pushHandler } from "./sources/push.js";
import { ServerWatchers } from "./sources/watchers.js";
import { Reconciler } from "./sources/reconciler.js";
import { SqsPollers } from "./sources/sqs.js";
import { LOCATIONS_CHANNEL } from "./store/channels.js";
import { HealthState } from "./services/health-service.js";
import { jobService } from "./services/job-service.js";
import { Reflection } from "./services/reflection-service.js";
import { recurrentTaskService } from "./services/recurrent-task-service.js";
import { runnerService } from "./services/runner-service.js";
import { ClusterDirectory } from "./store/clusters.js";
import { ObservabilityService } from "../gen/sluice/v1/observability_service_pb.js";
import { observabilityService } from "./services/observability-service.js";
import { JobFollowers } from "./observe/job-followers.js";
import { RunnerRegistry, freshnessMs } from "./observe/runner-registry.js";
import { ServerMetrics } from "./observe/metrics.js";
import { SessionObserver } from "./observe/session-observer.js";
import { metricsHandler } from "./http/metrics.js";
import { startTracing } from "../runner/wire/tracing.js";
import { RetryScheduler, RetrySchedulerDefaults } from "./maintenance/retry-scheduler.js";
import { AttemptKeys } from "./hook/attempt-keys.js";
import { JobFiles } from "./hook/job-files.js";
import { FolderBlobStore, S3BlobStore } from "./hook/blob-store.js";
import { JOB_HOOK_PATH, isJobHookPath, jobHookHandler } from "./hook/job-hook-handler.js";
import { loadJobHookKey } from "./store/job-hook-key.js";

export interface SluiceServer {
  /** Base URL of the API, e.g. http://127.0.0.1:8080. */
  url: string;
  port: number;
  /** The database pool (tests read state through it). */
  sql: Sql;
  /**
   * Runs a pass of the scheduler now and resolves once it has finished: a test
   * that moves the server's clock waits on it to know the new time was handled.
   */
  schedulerPass(): Promise<void>;
  /** Stops taking work, lets in-flight requests finish, closes the database. */
  stop(): Promise<void>;
}

export interface ServerLogger {
  info(message: string): void;
  error(message: string, error?: unknown): void;
}

/** Connections for listings and reports (ListJobs, CountJobs, the console's statistics). */
const READ_POOL_SIZE = 4;

/** Connections for the runner streams' lease statements (LEASE_SETTINGS). */
const LEASE_POOL_SIZE = 4;

const quietLogger: ServerLogger = { info() {}, error() {} };

/**
 * What every pool of the server shares. A connection that closes on an error
 * is opened again after `backoff(n)` seconds, `n` counting the pool's error
 * closes since a connection last opened; postgres.js's default grows as 3^n
 * up to 20 s, so a burst of dropped connections (a failover, a restart of a
 * connection pooler) left the pool waiting up to 20 s with the database long
 * back. Here the wait doubles from 20 ms up to half a second.
 */
export const POOL_OPTIONS = {
  onnotice: () => {},
  backoff: (n: number) => Math.min(0.02 * 2 ** n, 0.5),
};

/**
 * Settings of the connections of the queue's pool: the statements that submit,
 * lease, complete, extend and expire, each of which must find its rows through
 * an index whatever the statistics say (test/statement-plans.test.ts keeps
 * them so). Listings and reports run on a pool of their own with PostgreSQL's
 * own settings, so that a query written for a person is planned normally.
 */
export const SESSION_SETTINGS = {
  // Plans
  // are kept per connection (PostgreSQL's generic plans, after five
  // executions), and one made while the tables of a new database were
  // nearly empty chose what is cheapest on an empty table: a sequential
  // scan of tasks to lease five of them, or a bitmap scan of the ready
  // queue, which visits every entry that leasing left dead (until vacuum)
  // and, unlike a plain index scan, never marks them so that later scans
  // skip them. Leases cost 1.6 ms, growing with the table, for the first
  // minute of a new database. Statements that have no index to use still
  // scan the table.
  enable_seqscan: "off",
  enable_bitmapscan: "off",
  // A disabled scan that is still used counts as very expensive, which is
  // over the JIT threshold: compiling took 130 ms for a catalog query that
  // runs in under 1 ms. No statement of a queue gains from JIT.
  jit: "off",
};

/**
 * The connections that lease tasks: the session settings, and one plan for
 * the lease statement whatever its parameters. PostgreSQL keeps a prepared
 * statement's generic plan only while it looks no dearer than the custom
 * plans of its first executions; the lease's LIMIT is a parameter, which a
 * generic plan costs as a tenth of the table, so every lease was planned
 * again. Other statements keep PostgreSQL's choice: for some, such as the
 * path lists of file tasks, a generic plan is far worse.
 */
export const LEASE_SETTINGS = { ...SESSION_SETTINGS, plan_cache_mode: "force_generic_plan" };

/**
 * Builds and starts a server: database (embedded unless a URL is given),
 * migrations, the dispatcher, background duties and the HTTP listener. Tests
 * start it on port 0; `sluice server` starts it from the command line.
 */
export async function buildServer(overrides: Partial<ServerConfig> = {}, logger: ServerLogger = quietLogger): Promise<SluiceServer> {
  const config: ServerConfig = {
    ...ServerDefaults,
    ...overrides,
    connections: { ...ServerDefaults.connections, ...overrides.connections },
    requests: { ...ServerDefaults.requests, ...overrides.requests },
  };
  const admission = new Admission(config.requests.maxConcurrentRequests);
  const authOn = config.auth === "required" || (config.auth === "auto" && !isLoopback(config.host));
  let embedded: EmbeddedDatabase | undefined;
  let databaseUrl = config.databaseUrl;
  if (!databaseUrl) {
    embedded = await startEmbeddedDatabase(config.dataDir);
    logger.info(`started embedded PostgreSQL with its data in ${embedded.databaseDir}`);
    databaseUrl = embedded.url;
  }
  const sql = postgres(databaseUrl, { ...POOL_OPTIONS, max: config.poolSize, connection: SESSION_SETTINGS });
  const reads = postgres(databaseUrl, { ...POOL_OPTIONS, max: READ_POOL_SIZE, connection: { jit: "off" } });
  const leases = postgres(databaseUrl, { ...POOL_OPTIONS, max: LEASE_POOL_SIZE, connection: LEASE_SETTINGS });
  // Migrations run on a connection with PostgreSQL's own planner settings: one
  // that rewrites a whole table should be free to scan it.
  const migrations = postgres(databaseUrl, { ...POOL_OPTIONS, max: 1 });
  try {
    const applied = await migrate(migrations);
    if (applied.length > 0) logger.info(`applied migrations: ${applied.join(", ")}`);
  } catch (e) {
    await sql.end({ timeout: 1 });
    await reads.end({ timeout: 1 });
    await leases.end({ timeout: 1 });
    await embedded?.stop();
    throw e;
  } finally {
    await migrations.end({ timeout: 5 });
  }

  const onError = (e: unknown) => logger.error("background error", e);
  // Loads the OpenTelemetry SDK only when OTEL_EXPORTER_OTLP_ENDPOINT is set.
  const tracing = await startTracing("sluice-server");
  const clusters = new ClusterDirectory(sql);
  const dispatcher = new Dispatcher(sql, onError, leases);
  await dispatcher.start();
  const scheduler = new Scheduler(sql, config.scheduler, onError, config.clock);
  await scheduler.start();
  const retention = new JobRetention(sql, config.jobRetention, onError);
  retention.start();
  const retries = new RetryScheduler(sql, RetrySchedulerDefaults, onError);
  retries.start();
  const followers = new JobFollowers(sql, onError);
  await followers.start();
  const registryConfig = { touchIntervalMs: config.observability.runnerTouchIntervalMs };
  const runnerRegistry = new RunnerRegistry(sql, registryConfig, onError);
  runnerRegistry.start();
  const metrics = new ServerMetrics(reads, () => runnerRegistry.connected, config.poolSize, freshnessMs(registryConfig));
  const observer = new SessionObserver(sql, followers, runnerRegistry, metrics, config.observability, onError);
  const leaseExpiry = new LeaseExpiry(sql, config.leaseExpiry, onError, (n) => metrics.leaseExpiries.inc(n));
  leaseExpiry.start();
  const stagedPaths = new StagedPathsCleanup(sql, StagedPathsDefaults, onError);
  stagedPaths.start();

  // Folders registered as FS locations are watched by every server; a NOTIFY
  // on LOCATIONS_CHANNEL tells them all when locations change.
  const watchers = new ServerWatchers(sql, join(resolve(config.dataDir), "watch"), onError);
  const storageClients = { gcsApiEndpoint: config.gcsApiEndpoint, fsRoots: config.fsRoots ?? [resolve(config.dataDir), process.cwd()] };
  const pollers = new SqsPollers(sql, onError);
  const reconciler = new Reconciler(sql, storageClients, onError);
  const locationsChanged = () => {
    void watchers.sync();
    void pollers.sync();
    reconciler.wake(0);
  };
  const locations = await sql.listen(LOCATIONS_CHANNEL, locationsChanged, locationsChanged);

  const attemptKeys = new AttemptKeys(await loadJobHookKey(sql));
  let publicUrl = config.publicUrl ?? "";
  const jobFilesDir = config.jobFilesDir ?? join(resolve(config.dataDir), "job-files");
  const blobs = config.jobFilesLocation ? new S3BlobStore(sql, config.jobFilesLocation) : new FolderBlobStore(jobFilesDir, attemptKeys, () => publicUrl);
  const jobFiles = new JobFiles(sql, jobFilesDir, blobs, () => publicUrl);
  const deps: StorageDeps = {
    sql,
    reads,
    attemptKeys,
    clusters,
    dispatcher,
    leaseTtlMs: config.leaseTtlMs,
    clock: config.clock,
    storage: {
      ...storageClients,
      onChange: async () => {
        await Promise.all([watchers.sync(), pollers.sync()]);
        await sql.notify(LOCATIONS_CHANNEL, "").catch(onError);
      },
    },
  };
  let authenticator: Authenticator | undefined;
  if (authOn) {
    authenticator = new Authenticator(sql, config.adminToken);
    await authenticator.start();
    if (config.adminToken === "" && !(await anyAdminToken(sql))) {
      const { secret } = await issueToken(sql, { name: "bootstrap admin", scopes: ["admin"], clusters: [], expiresAt: null });
      logger.info(`created an admin token, shown this once (create others with: sluice tokens create): ${secret}`);
      if (embedded) {
        const file = join(resolve(config.dataDir), "admin-token");
        await writeFile(file, `${secret}\n`, { mode: 0o600 });
        logger.info(`the admin token is also in ${file}`);
      }
    }
  } else if (!isLoopback(config.host)) {
    logger.info(`WARNING: authentication is off while listening on ${config.host}: anyone who reaches the port may do anything`);
  }
  const apiServices: DescService[] = [
    JobService,
    ClusterService,
    RecurrentTaskService,
    StorageService,
    RunnerService,
    TokenService,
    FileService,
    ObservabilityService,
  ];
  const health = new HealthState(apiServices.map((s) => s.typeName));
  const reflection = new Reflection([...apiServices, Health, ReflectionV1, ReflectionV1alpha]);
  const routes = (router: ConnectRouter) => {
    router.service(JobService, jobService(deps));
    router.service(ClusterService, clusterService(deps));
    router.service(RecurrentTaskService, recurrentTaskService(deps));
    router.service(StorageService, storageService(deps));
    router.service(RunnerService, runnerService({ ...deps, observer, retries }));
    router.service(ObservabilityService, observabilityService({ ...deps, followers, runnerFreshMs: freshnessMs(registryConfig) }));
    router.service(TokenService, tokenService(deps));
    router.service(FileService, fileService(deps));
    router.service(Health, health.service());
    router.service(ReflectionV1, reflection.v1());
    router.service(ReflectionV1alpha, reflection.v1alpha());
    correctProtocolErrors(router);
  };
  const { env, flag } = LIMIT_SETTINGS.maxRequestBytes;
  const api = apiHandler({
    routes,
    // Protobuf's JSON mapping refuses unknown fields and enum values; Connect-ES
    // ignores them unless told, and a misspelt filter then matches everything.
    jsonOptions: { ignoreUnknownFields: false },
    interceptors: [
      errorsInterceptor(logger),
      ...(authenticator ? [authInterceptor(authenticator, config.openReflection)] : []),
      parseErrors(),
      storableText([RunnerService, JobService.method.submitJob, JobService.method.submitJobs, JobService.method.submitStream]),
    ],
    maxRequestBytes: config.requests.maxRequestBytes,
    maxRequestBytesSetting: `${env} or ${flag}`,
    admission,
    // Calls and submit streams take turns; runners' work streams, health
    // watches and reflection streams last as long as their clients want and
    // would hold turns for good.
    admitted: (method) => method.methodKind === "unary" || method === JobService.method.submitStream,
  });
  const push = pushHandler(sql, onError, config.snsConfirmUrls);
  const ui = consoleHandler(config.consoleDir);
  const serveMetrics = metricsHandler(metrics, authOn && config.observability.metrics === "token" ? authenticator : undefined);
  const hook = jobHookHandler({ sql, keys: attemptKeys, files: jobFiles, maxFileBytes: config.jobFileMaxBytes, onError });
  const handler: typeof api = (req, res) =>
    req.url?.startsWith("/events/")
      ? void push(req, res as ServerResponse)
      : isJobHookPath(req.url)
        ? hook(req, res as ServerResponse)
        : isConsolePath(req.url)
          ? ui(req, res as ServerResponse)
          : req.url === "/metrics"
            ? void serveMetrics(req, res as ServerResponse)
            : api(req, res);
  const listener: Listener = config.tls
    ? await listenTls(handler, config.host, config.port, config.connections, config.tls)
    : await listen(handler, config.host, config.port, config.connections);
  const host = listener.host.includes(":") ? `[${listener.host}]` : listener.host;
  const url = `${config.tls ? "https" : "http"}://${host}:${listener.port}`;
  publicUrl ||= url;
  attemptKeys.hookUrl = `${publicUrl}${JOB_HOOK_PATH}`;
  await watchers.sync();
  await pollers.sync();
  reconciler.start();
  logger.info(`Sluice is listening on ${url}`);

  let stopping: Promise<void> | undefined;
  return {
    url,
    port: listener.port,
    sql,
    schedulerPass: () => scheduler.passNow(),
    stop: () =>
      (stopping ??= (async () => {
        health.shutDown();
        leaseExpiry.stop();
        await scheduler.stop();
        retention.stop();
        runnerRegistry.stop();
        retries.stop();
        await followers.stop();
        stagedPaths.stop();
        await locations.unlisten().catch(() => {});
        await authenticator?.stop();
        await watchers.stop();
        await pollers.stop();
        reconciler.stop();
        // Ends the work streams, so that connections can drain.
        await dispatcher.stop();
        await listener.close();
        await tracing?.shutdown().catch(onError);
        await sql.end({ timeout: 5 });
        await reads.end({ timeout: 5 });
        await leases.end({ timeout: 5 });
        await embedded?.stop();
      })()),
  };
}
