import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import postgres, { type Sql } from "postgres";
import { afterAll, beforeAll, inject } from "vitest";
import { ClusterService } from "../../gen/sluice/v1/cluster_service_pb.js";
import { JobService } from "../../gen/sluice/v1/job_service_pb.js";
import { RunnerService } from "../../gen/sluice/v1/runner_service_pb.js";
import { ObservabilityService } from "../../gen/sluice/v1/observability_service_pb.js";
import { Client, type Job, type JobStateName } from "../../runner/index.js";
import { SESSION_SETTINGS, type SluiceServer, buildServer } from "../../server/build-server.js";
import type { ServerConfig } from "../../server/config.js";
import { migrate } from "../../server/database/migrate.js";
import { type TestDatabase, createDatabaseOn } from "./databases.js";
import type { TaskRow } from "../../server/task-plan.js";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const FIXTURES = join(ROOT, "test", "fixtures");

/**
 * Creates a database on the test PostgreSQL server: a copy of the run's
 * migrated template (see global-setup.ts), or an empty one for tests of
 * migrating itself.
 */
export function createDatabase({ empty = false }: { empty?: boolean } = {}): Promise<TestDatabase> {
  const name = `${inject("dbPrefix")}${randomBytes(5).toString("hex")}`;
  return createDatabaseOn(inject("adminUrl"), name, empty ? undefined : inject("templateDb"));
}

/**
 * A new database with Sluice's tables and one connection set up as the
 * server's, for tests of the statements themselves (no server).
 */
export async function storeDatabase(): Promise<{ sql: Sql; url: string; close(): Promise<void> }> {
  const db = await createDatabase();
  const admin = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    await migrate(admin);
  } finally {
    await admin.end();
  }
  const sql = postgres(db.url, { max: 1, onnotice: () => {}, connection: SESSION_SETTINGS });
  return {
    sql,
    url: db.url,
    close: async () => {
      await sql.end();
      await db.drop();
    },
  };
}

/** `n` ready root tasks "Noop" v1.0 of cluster 1 (the default), as `submitJobs` takes them. */
export function noopRows(n: number, input: Uint8Array = new Uint8Array()): TaskRow[] {
  return Array.from({ length: n }, (_, i) => ({
    ord: i + 1,
    jobId: null,
    parentId: null,
    clusterId: 1,
    name: "Noop",
    major: 1,
    minor: 0,
    display: null,
    input,
    maxRetries: 0,
    depsLeft: 0,
    hasDependents: false,
    trigger: null,
  }));
}

/** A server, its database and clients, for one test file. */
export interface Sandbox {
  databaseUrl: string;
  server: SluiceServer;
  url: string;
  /** The server's database pool, for looking at state directly. */
  sql: Sql;
  client: Client;
  /** Generated Connect clients, for calls the SDK does not make. */
  api: {
    jobs: ReturnType<typeof createClient<typeof JobService>>;
    clusters: ReturnType<typeof createClient<typeof ClusterService>>;
    runner: ReturnType<typeof createClient<typeof RunnerService>>;
    observability: ReturnType<typeof createClient<typeof ObservabilityService>>;
  };
}

/**
 * Starts a database and a server in beforeAll and stops them in afterAll. The
 * returned object is filled in once beforeAll has run.
 */
export function useSandbox(config: Partial<ServerConfig> = {}): Sandbox {
  const box = {} as Sandbox;
  let drop: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    const db = await createDatabase();
    drop = db.drop;
    // Tests register folders in the system's temporary folder.
    const server = await buildServer({ host: "127.0.0.1", port: 0, databaseUrl: db.url, fsRoots: [tmpdir()], ...config });
    const client = new Client({ url: server.url });
    Object.assign(box, {
      databaseUrl: db.url,
      server,
      url: server.url,
      sql: server.sql,
      client,
      api: {
        jobs: createClient(JobService, client.transport),
        clusters: createClient(ClusterService, client.transport),
        runner: createClient(RunnerService, client.transport),
        observability: createClient(ObservabilityService, client.transport),
      },
    } satisfies Sandbox);
  });
  afterAll(async () => {
    box.client?.close();
    await box.server?.stop();
    await drop?.();
  });
  return box;
}

/** Waits until `check` returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Waits until a job is in one of the given states. */
export function jobInState(client: Client, id: string, states: JobStateName[], timeoutMs = 20_000): Promise<Job> {
  return eventually(
    async () => {
      const job = await client.jobs().get(id);
      return states.includes(job.state) ? job : undefined;
    },
    timeoutMs,
    `job ${id} to be ${states.join(" or ")}`,
  );
}

/** A child process with its output collected. */
export interface Child {
  process: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves when a line matching `pattern` was written to stdout or stderr. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
}

/** Runs a TypeScript file (or `bin/sluice.js`) with Node and tsx, from the repository root. */
export function spawnNode(args: string[], env: NodeJS.ProcessEnv = {}): Child {
  // bin/sluice.js registers tsx itself, as it does for users.
  const nodeArgs = args[0]?.endsWith(".js") ? args : ["--import", "tsx", ...args];
  const proc = spawn(process.execPath, nodeArgs, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return childOf(proc);
}

/** A spawned process (stdout and stderr piped) with its output collected. */
export function childOf(proc: ChildProcess): Child {
  let out = "";
  let err = "";
  const waiters: (() => void)[] = [];
  const notify = () => waiters.splice(0).forEach((w) => w());
  proc.stdout!.on("data", (d) => {
    out += d;
    notify();
  });
  proc.stderr!.on("data", (d) => {
    err += d;
    notify();
  });
  const exited = new Promise<number | string>((resolve) => proc.once("exit", (code, signal) => resolve(code ?? signal ?? -1)));
  exited.then(notify);
  return {
    process: proc,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor(pattern, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        let finished = false;
        const timer = setTimeout(() => {
          finished = true;
          reject(new Error(`timed out waiting for ${pattern} in output:\n${out}\n${err}`));
        }, timeoutMs);
        const check = () => {
          if (finished) return;
          const m = out.match(pattern) ?? err.match(pattern);
          if (m) {
            finished = true;
            clearTimeout(timer);
            resolve(m);
          } else if (proc.exitCode !== null || proc.signalCode !== null) {
            finished = true;
            clearTimeout(timer);
            reject(new Error(`process exited (${proc.exitCode ?? proc.signalCode}) before printing ${pattern}:\n${out}\n${err}`));
          } else {
            waiters.push(check);
          }
        };
        check();
      });
    },
  };
}

/** Runs the `sluice` CLI to the end. */
export async function sluice(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const child = spawnNode([join(ROOT, "bin", "sluice.js"), ...args], env);
  const code = await child.exited;
  return { code, stdout: child.stdout(), stderr: child.stderr() };
}

/** Starts `sluice server` as a separate process on a free port. */
export async function serverProcess(env: NodeJS.ProcessEnv): Promise<Child & { url: string }> {
  const child = spawnNode([join(ROOT, "bin", "sluice.js"), "server"], { SLUICE_PORT: "0", ...env });
  const [, url] = await child.waitFor(/listening on (http:\/\/\S+)/, 60_000);
  return Object.assign(child, { url });
}

/** A runner logger that keeps test output clean; warnings are kept for failed assertions to show. */
export const quiet = { info() {}, warn() {}, error() {} };
